"""Pairing slots with candidate values: every candidate scored for every slot, the most
confident pairs settled first, each candidate (and its text) used once."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.evidence import EVIDENCE, Fit, context_score
from bulwark.models.matching.fits import score_quantity, score_text
from bulwark.models.matching.slots import Slot

OPTIONAL_PENALTY = 0.6
"""Optional arguments are less often meant: they lose close calls to required ones."""


def _score_array(slot: Slot, cand: Candidate) -> Fit | None:
    if cand.kind not in ("list", "range", "name_list"):
        return None
    values = (
        cand.value
        if cand.kind == "list" or cand.kind == "name_list"
        else [p.value for p in cand.parts]
    )
    if not isinstance(values, list) or not values:
        return None
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    nested = all(isinstance(v, list) for v in values)
    if slot.item_kind in ("integer", "number") and not numeric:
        return None
    if slot.item_kind == "array" and not nested:
        return None
    if slot.item_kind in ("string", "enum") and (numeric or nested) and cand.kind != "list":
        return None
    fit = context_score(slot, cand)
    score, evidence = fit.score + 1.0, fit.evidence
    if cand.kind == "range":
        ranged = re.search(
            r"\b(interval|range|limits?|bounds?|between|start|end|from)\b", slot.description, re.I
        )
        score += 2.0 if ranged else -2.0
        evidence += 2.0 if ranged else 0.0
    if cand.kind == "list":
        evidence += 1.0
    if cand.kind == "name_list" and all(p.kind == "phrase" for p in cand.parts):
        score -= 1.5
        evidence = 0.0
    if cand.kind == "name_list" and slot.examples:
        hits = sum(1 for v in values if str(v).lower() in slot.examples)
        score, evidence = score + 1.5 * hits, evidence + 1.5 * hits
    return Fit(score, evidence)


def score_candidate(slot: Slot, cand: Candidate) -> Fit | None:
    """How well ``cand`` fits ``slot``, by the slot's kind (None: it cannot go there)."""
    if slot.kind in ("integer", "number"):
        return score_quantity(slot, cand)
    if slot.kind in ("string", "timezone"):
        return score_text(slot, cand)
    if slot.kind == "array":
        return _score_array(slot, cand)
    return None


def _conflict(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates share text (a unit may go with the number it follows)."""
    if {a.kind, b.kind} in ({"unit", "quantity"}, {"enum", "quantity"}):
        return False
    return a.start < b.end and b.start < a.end


def assign(
    slots: Sequence[Slot], pool: Sequence[Candidate], used: list[Candidate]
) -> dict[str, Candidate]:
    """Pair slots with candidates, best score first, each candidate (and its text) once.

    Ties go to the pairing that keeps the order of the parameters and of the values.
    Optional slots take only values with :data:`EVIDENCE` that they are meant.
    """
    fits = {
        (slot.key, id(cand)): fit
        for slot in slots
        for cand in pool
        if (fit := score_candidate(slot, cand)) is not None
    }
    rivals: dict[int, list[str]] = {}  # candidate -> slots it fits, in parameter order
    for slot in slots:
        for cand in pool:
            if (slot.key, id(cand)) in fits:
                rivals.setdefault(id(cand), []).append(slot.key)
    pairs = []
    for slot in slots:
        mine = [c for c in pool if (slot.key, id(c)) in fits]
        kinds: dict[str, list[int]] = {}  # kind -> ids of the slot's candidates of that kind
        for cand in mine:
            kinds.setdefault(cand.kind, []).append(id(cand))
        rank = {i: n / len(ids) for ids in kinds.values() for n, i in enumerate(ids)}
        for cand in mine:
            fit = fits[(slot.key, id(cand))]
            if not slot.required and fit.evidence < EVIDENCE:
                continue
            score = fit.score - (0.0 if slot.required else OPTIONAL_PENALTY)
            # Ties: keep the order of the parameters and of the values of this kind.
            others = rivals[id(cand)]
            order = abs(others.index(slot.key) / len(others) - rank[id(cand)])
            # A list of several values is what an array parameter is for: settle those first.
            several = slot.kind == "array" and isinstance(cand.value, list) and len(cand.value) > 1
            pairs.append(
                (
                    0 if several else 1,
                    -score,
                    not slot.required,
                    order,
                    slot.index,
                    cand.start,
                    slot,
                    cand,
                )
            )
    pairs.sort(key=lambda p: p[:6])
    chosen: dict[str, Candidate] = {}
    for *_, slot, cand in pairs:
        if len(chosen) == len(slots):
            break
        if slot.key in chosen or any(_conflict(cand, u) for u in used):
            continue
        chosen[slot.key] = cand
        used.append(cand)
    return chosen
