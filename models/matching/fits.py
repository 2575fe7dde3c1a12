"""How well a candidate fits a number or a string parameter.

A quantity fits a number parameter by its unit, currency or percent sign and the words
around it, and becomes the slot's number there (percent as a fraction, units converted,
"11 PM" in 24-hour time). Any other candidate fits a string parameter by its kind (a date,
a unit, a currency, a name, a place, a quoted string...) and the words around it.
"""

from __future__ import annotations

import re

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.evidence import EVIDENCE, Fit, context_score, cue_match
from bulwark.models.matching.names import is_region
from bulwark.models.matching.slots import Slot, param_words
from bulwark.models.matching.tables import (
    DURATION_WORDS,
    MONEY_CUE_WORDS,
    NAME_SLOT_WORDS,
    PERCENT_CUE_WORDS,
    STOPWORDS,
)
from bulwark.models.matching.text import stem, words
from bulwark.models.matching.units import convert_unit, unit_dimension, unit_of

_MONEY_CUES: frozenset[str] = frozenset(stem(w) for w in MONEY_CUE_WORDS)
_PERCENT_CUES: frozenset[str] = frozenset(stem(w) for w in PERCENT_CUE_WORDS)


def slot_number(slot: Slot, cand: Candidate) -> int | float | None:
    """The quantity as the slot's number: percent and units converted, ints kept whole."""
    value = float(cand.value)
    if cand.percent and slot.kind == "number" and not _keeps_percent(slot.description):
        value /= 100
    if cand.raw_unit == "pm" and value < 12 and re.search(r"24[- ]?h", slot.description, re.I):
        value += 12  # "11 PM" for a slot in 24-hour format
    if cand.unit and slot.units and cand.unit not in slot.units:
        for target in sorted(slot.units):
            converted = convert_unit(value, cand.unit, target)
            if converted is not None:
                value = converted
                break
    value = round(value, 10)
    if slot.kind == "integer":
        return int(value) if float(value).is_integer() else None
    return int(value) if cand.integral and float(value).is_integer() and not cand.percent else value


def _keeps_percent(description: str) -> bool:
    """Whether a rate is wanted as a percentage (5) rather than a fraction (0.05)."""
    return bool(re.search(r"\bpercent(age)?\b", description, re.I)) and not re.search(
        r"decimal|fraction|0\.\d", description, re.I
    )


def _unit_fit(slot: Slot, cand: Candidate) -> float:
    """Bonus for a quantity whose unit is the slot's (or converts to it), malus otherwise."""
    if not cand.unit:
        return 0.0
    if cand.unit.startswith("clock_"):
        return 2.5 if slot.has({cand.unit[6:], cand.unit[6:] + "s"}) else -1.0
    measured = {
        w
        for i, w in enumerate(param_words(slot.name))
        if param_words(slot.name)[i - 1 : i] != ["per"]
    }
    if cand.unit in slot.units or measured & {cand.unit, cand.unit + "s"}:
        return 2.5
    if any(unit_dimension(cand.unit) == unit_dimension(u) for u in slot.units):
        return 1.5
    return -1.5 if slot.units else 0.0


def score_quantity(slot: Slot, cand: Candidate) -> Fit | None:
    """Score a quantity for a number parameter (None: it cannot go there)."""
    if cand.kind != "quantity" or slot_number(slot, cand) is None:
        return None
    fit = context_score(slot, cand)
    score, evidence = fit.score, fit.evidence
    bonus = _unit_fit(slot, cand)
    cues = set(slot.cues)
    if cand.money:
        bonus += 1.5 if cues & _MONEY_CUES else -0.5
    if cand.percent:
        bonus += 1.5 if cues & _PERCENT_CUES else -0.5
    value = float(cand.value)
    if cand.integral and 1000 <= value <= 2100 and not cand.unit and not cand.money:
        if slot.has({"year", "date"}) or (
            "year" in slot.description.lower() and not slot.has({"years"})
        ):
            bonus += 1.5
        elif slot.has({"years"}):
            bonus -= 1.0
    if cand.word:
        bonus -= 0.5
        noun = next((w for w in cand.right[:3] if w not in STOPWORDS), None)
        if (
            noun
            and cand.raw_unit != "per_year"
            and not cand.unit
            and not any(cue_match(slot, w, None) for w in cand.right[:3] if w not in STOPWORDS)
        ):
            if not slot.required:
                return None  # "two sets of values": a count of sets, not this argument
            bonus -= 1.5
    if cand.raw_unit == "per_year" and re.search(
        r"compound|per year|a year|times|frequen", slot.description + " " + slot.name, re.I
    ):
        bonus += 2.0
    score += bonus
    evidence += max(bonus, 0.0)
    if cand.weak and evidence < EVIDENCE:
        return None
    return Fit(score, evidence)


_TEXT_AFFINITY: dict[str, float] = {
    "quoted": 1.5, "name": 0.8, "ident": 0.2, "phrase": -1.0, "range": 0.5, "date": -2.0,
}  # fmt: skip
"""Base score of each kind of candidate for a string slot (special kinds are handled in
:func:`_text_affinity`)."""


def _text_affinity(slot: Slot, cand: Candidate) -> tuple[float, float] | None:
    """(score, evidence) that the kind of ``cand`` alone gives a string slot, or None."""
    kind = cand.kind
    if slot.is_free_text:
        return (3.0, 3.0) if kind == "quoted" else None
    if slot.is_date:
        if kind == "date":
            return (4.0, 4.0) if cand.date else (3.5, 3.5)  # "next month" after real dates
        return (-1.0, 0.0) if kind in ("quoted", "phrase") else None
    if slot.is_unit:
        if kind == "unit" and not (
            cand.attached and not _accepts_measured_unit(slot) and "from" not in slot.roles
        ):
            return 2.0, 2.0
        return (0.0, 0.0) if kind == "quoted" else None
    special = {
        "currency": slot.has({"currency", "currencies"}),
        "color": slot.has({"color", "colour", "colors"}),
        "formula": slot.is_formula,
        "time": slot.has({"time", "hour"}),
        "timezone": slot.kind == "timezone",
        "unit": False,
        "list": False,
        "quantity": slot.is_identifier
        or slot.has({"year", "season", "id", "zip", "postal"})
        or (bool(cand.unit) and slot.has(DURATION_WORDS)),
    }
    if kind in special:
        if not special[kind]:
            return (-0.5, 0.0) if kind == "color" else None
        if kind == "quantity":
            year = cand.integral and 1000 <= float(cand.value) <= 2100
            if cand.unit and slot.has(DURATION_WORDS):
                return 2.0, 2.0  # "2 weeks" for a duration written as text
            return (2.0, 2.0) if year and slot.has({"year", "season"}) else (0.0, 0.0)
        return 3.0, 3.0
    base = _TEXT_AFFINITY.get(kind)
    if base is None:
        return None
    if kind == "ident" and (slot.is_identifier or slot.has({"name", "dataset", "data"})):
        return 1.5, 1.0
    if kind == "phrase" and slot.has({"country", "state", "nation"}):
        return None  # countries and states are names
    if kind == "name":
        if slot.has({"year", "season", "years"}):
            return -0.5, 0.0  # seasons and years are numbers, not names
        return _name_affinity(slot, cand, base)
    if kind == "range" and slot.has({"season", "year", "years", "period", "range", "span"}):
        return 3.0, 3.0  # "2019-2020 season"
    return base, 0.0


def _name_affinity(slot: Slot, cand: Candidate, base: float) -> tuple[float, float] | None:
    """Names suit name-like slots; known places suit places, "City, State" a lone place slot."""
    score, evidence = base, 0.0
    if slot.roles or slot.has(NAME_SLOT_WORDS):
        score += 0.5
    wants_region = slot.has({"country", "state", "nation", "region"})
    if "place" in cand.roles:
        if wants_region or slot.sibling_words & {"country", "state", "region"}:
            return None
        score += 0.6 if "in" in slot.roles else 0.0
        if re.search(r"city,? (?:and )?state|, [A-Z]{2}\b|state", slot.description, re.I):
            score += 1.5
    if wants_region:
        if is_region(str(cand.value)):
            score, evidence = score + 1.5, evidence + 1.5
        else:
            score -= 0.5
    return score, evidence


def score_text(slot: Slot, cand: Candidate) -> Fit | None:
    """Score a candidate for a string parameter (None: it cannot go there)."""
    affinity = _text_affinity(slot, cand)
    if affinity is None:
        return None
    value_stems = {stem(w) for w in words(str(cand.value))}
    if cand.kind in ("phrase", "name") and value_stems <= slot.name_stems:
        return None  # the parameter's own name is not its value
    if cand.kind == "phrase" and value_stems <= {stem(w) for w in slot.sibling_words}:
        return None  # ... nor another parameter's name
    fit = context_score(slot, cand)
    score, evidence = fit.score + affinity[0], fit.evidence + affinity[1]
    value = str(cand.value).lower()
    if cand.kind == "name" and {stem(w) for w in words(value)} & (slot.name_stems - {"name"}):
        score, evidence = score + 2.5, evidence + 2.5  # "Hilton Hotel" for a hotel_name
    if slot.options and any(
        str(o).lower() == value or (cand.kind == "unit" and unit_of(str(o)) == cand.unit)
        for o in slot.options
    ):
        score, evidence = score + 2.0, evidence + 2.0
    elif slot.examples and value in slot.examples and cand.kind != "name":
        score, evidence = score + 1.5, evidence + 1.5
    if cand.kind == "phrase":
        score += _phrase_shape(cand)
    return Fit(score, evidence)


def _phrase_shape(cand: Candidate) -> float:
    """In "the boiling point of ethanol" the thing is "ethanol", not "boiling point"; a
    whole phrase beats a part of it."""
    bonus = 0.3 if cand.left[-1:] == ("of",) else 0.0
    if cand.right[:1] == ("of",):
        bonus -= 0.3
    return bonus - (0.1 if cand.sub else 0.0)


def _accepts_measured_unit(slot: Slot) -> bool:
    """Whether a unit slot is about the unit the request's numbers are given in (not the
    unit of the result)."""
    desc = slot.description.lower()
    if re.search(r"\b(return|result|output|desired|convert|resulting|display)\b", desc):
        return False
    if re.search(r"unit of measure|measurement unit", desc):
        return True
    return any(w in desc for w in slot.sibling_words)
