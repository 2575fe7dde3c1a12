"""Tool choice: which bound tool fits a request, and the calls to make.

A tool is scored by IDF-weighted overlap of crudely stemmed words and concept synonyms
between the request and the tool's profile, plus bonuses when the request has the
*shape* of the tool's input (an arithmetic expression, an email address, an IANA
timezone) or clearly carries every required argument. :func:`plan_tool_calls` picks a
tool per clause ("... and ...", "then") or one for the whole request and fills its
arguments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bulwark.models.matching.assignment import score_candidate
from bulwark.models.matching.evidence import EVIDENCE
from bulwark.models.matching.filling import fill_arguments
from bulwark.models.matching.options import enum_mentions
from bulwark.models.matching.request import Request, string_lists
from bulwark.models.matching.schemas import ToolSpec
from bulwark.models.matching.slots import build_slots
from bulwark.models.matching.spans import (
    find_emails,
    find_expression,
    find_quoted,
    find_timezones,
    mask,
    normalize_arithmetic,
)
from bulwark.models.matching.text import WEAK_SYNONYMS, concepts_of, content_stems

CONCEPT_FACTOR = 0.5
"""A match through a concept synonym counts half as much as a literal word match."""
WEAK_CONCEPT_FACTOR = 0.2
"""...and a concept reached only through :data:`WEAK_SYNONYMS` counts less still."""
SHAPE_BONUS = 3.0
"""Added when the request *looks like* the tool's input (e.g. ``17*23`` for a calculator)."""
PREFIX_FACTOR = 0.5
"""A word matching a tool's term only by a shared prefix counts half."""
FIT_BONUS = 1.0
"""Added when the request clearly carries every required argument of the tool."""
SLOT_BONUS = 1.5
"""Added when the request contains an email / timezone and the tool takes one."""


def request_terms(text: str) -> dict[str, float]:
    """Terms of a request with their factor: literal stems 1.0, ``#concept`` tags less.

    Weak synonyms (``today``, ``current``...) add only a weak concept hint.
    """
    text = re.sub(r"\blook(?:ing)?\s+up\b", "lookup", text, flags=re.IGNORECASE)
    terms: dict[str, float] = {}
    for s in content_stems(text):
        weak = s in WEAK_SYNONYMS
        if not weak:
            terms[s] = 1.0
        for c in concepts_of(s):
            factor = WEAK_CONCEPT_FACTOR if weak else CONCEPT_FACTOR
            terms[f"#{c}"] = max(terms.get(f"#{c}", 0.0), factor)
    return terms


def score_tools(text: str, tools: Sequence[ToolSpec]) -> list[float]:
    """Score every tool for the request ``text`` (same order as ``tools``)."""
    if not tools:
        return []
    n = len(tools)
    df: dict[str, int] = {}
    for t in tools:
        for term in t.profile:
            df[term] = df.get(term, 0) + 1
    terms = request_terms(text)
    masked = mask(text, find_quoted(text) + find_emails(text))
    has_expr = find_expression(normalize_arithmetic(masked)) is not None
    has_email = bool(find_emails(text))
    has_tz = any("/" in s.value for s in find_timezones(text))
    request: Request | None = None  # analysed only if some tool needs it
    scores = []
    for t in tools:
        score = 0.0
        for term, factor in terms.items():
            if term in t.profile:
                idf = 1.0 + math.log(n / df[term])
                score += t.profile[term] * idf * factor
            elif not term.startswith("#") and (near := _prefix_match(term, t.profile)):
                idf = 1.0 + math.log(n / df[near])
                score += t.profile[near] * idf * factor * PREFIX_FACTOR
        if score > 0:
            request = request or Request(text)
            if _arguments_fit(request, t):
                score += FIT_BONUS
        kinds = set(t.param_kinds().values())
        if has_expr and "#arithmetic" in t.profile:
            score += SHAPE_BONUS
        if has_email and kinds & {"email", "emails"}:
            score += SLOT_BONUS
        if has_tz and "timezone" in kinds:
            score += SLOT_BONUS
        scores.append(round(score, 6))
    return scores


def _prefix_match(term: str, profile: Mapping[str, float]) -> str | None:
    """A profile term sharing a long prefix with ``term`` ("similar"/"similarity")."""
    if len(term) < 5:
        return None
    return next(
        (
            p
            for p in profile
            if len(p) >= 5 and p[:5] == term[:5] and (p.startswith(term) or term.startswith(p))
        ),
        None,
    )


def _arguments_fit(request: Request, tool: ToolSpec) -> bool:
    """Whether the request holds a value, clearly meant, for every required argument."""
    slots = [s for s in build_slots(tool) if s.required]
    if not slots:
        return False
    pool = request.candidates + string_lists(request)
    for slot in slots:
        if slot.kind in ("enum", "boolean", "object", "expression", "email", "emails"):
            return False
        if slot.kind == "string" and slot.options and enum_mentions(request.text, slot.options):
            continue
        fits = (score_candidate(slot, c) for c in pool)
        if not any(f is not None and f.evidence >= EVIDENCE for f in fits):
            return False
    return True


def best_tool(text: str, tools: Sequence[ToolSpec], min_score: float) -> ToolSpec | None:
    """The highest-scoring tool at or above ``min_score`` (first one wins ties)."""
    scores = score_tools(text, tools)
    if not scores:
        return None
    top = max(scores)
    return tools[scores.index(top)] if top >= min_score else None


_CLAUSE_SPLIT = re.compile(r"\s+and\s+|;|\?|\s+then\s+|,\s*then\s+", re.IGNORECASE)


def split_clauses(text: str) -> list[str]:
    """Split a request into clauses on ' and ', ';', '?', 'then' (never inside quotes)."""
    masked = mask(text, find_quoted(text))
    clauses, pos = [], 0
    for m in _CLAUSE_SPLIT.finditer(masked):
        clauses.append(text[pos : m.start()])
        pos = m.end()
    clauses.append(text[pos:])
    return [c.strip(" ,.!") for c in clauses if c.strip(" ,.!")]


def plan_tool_calls(
    text: str,
    tools: Sequence[ToolSpec],
    *,
    min_score: float,
    forced: str | None = None,
    parallel: bool = True,
    max_calls: int = 4,
) -> list[tuple[str, dict[str, Any]]]:
    """Choose tools for ``text`` and fill their arguments: ``[(name, args), ...]``.

    Args:
        text: the user's request.
        tools: bound tools.
        min_score: a tool must score at least this to be called.
        forced: a tool name to call regardless of score, ``"any"`` to call the best tool
            regardless of score, or ``None``.
        parallel: allow one call per clause when clauses match different tools.
        max_calls: cap on parallel calls.
    """
    if not tools:
        return []
    by_name = {t.name: t for t in tools}
    if forced and forced in by_name:
        return [(forced, fill_arguments(text, by_name[forced]))]
    if forced == "any":
        scores = score_tools(text, tools)
        top = tools[scores.index(max(scores))]
        return [(top.name, fill_arguments(text, top))]
    if parallel:
        chosen: list[tuple[ToolSpec, str]] = []
        for clause in split_clauses(text):
            match = best_tool(clause, tools, min_score)
            if match is not None and all(match is not c for c, _ in chosen):
                chosen.append((match, clause))
        if len(chosen) > 1:
            return [(t.name, fill_arguments(clause, t)) for t, clause in chosen[:max_calls]]
    single = best_tool(text, tools, min_score)
    return [] if single is None else [(single.name, fill_arguments(text, single))]
