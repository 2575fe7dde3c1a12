"""Argument filling: build a tool's arguments from a request using its JSON schema.

:func:`fill_arguments` works in three steps:

1. analyse the request once (:class:`~bulwark.models.matching.request.Request`): quoted
   strings, emails, timezones, an arithmetic expression, quantities (numbers with their
   unit, currency, percent or scale word), lists, ranges, dates, names (capitalised
   phrases), identifiers and plain noun phrases - each a candidate that remembers the
   words around it;
2. describe every parameter (:class:`~bulwark.models.matching.slots.Slot`): what kind of
   value it takes, the words that announce its value (its name, its description,
   prepositions of its role such as "from" for a start location) and the units it is
   measured in;
3. give every slot the candidate that fits it best, most confident pairs first, each
   candidate used once. Optional slots are filled only when the request mentions them;
   schema defaults are never invented.

The candidate becomes the argument's value in the slot's terms: a number in its unit, a
date in its format, an option as the schema spells it, "City, ST" where it asks for one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bulwark.models.matching.assignment import assign
from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.dates import format_date
from bulwark.models.matching.fits import slot_number
from bulwark.models.matching.free_text import fill_free_text
from bulwark.models.matching.options import fill_mentioned
from bulwark.models.matching.request import Request, string_lists
from bulwark.models.matching.schemas import ToolSpec
from bulwark.models.matching.slots import Slot, build_slots
from bulwark.models.matching.spans import (
    EMAIL,
    find_emails,
    find_expression,
    find_quoted,
    find_timezones,
    mask,
    normalize_arithmetic,
)
from bulwark.models.matching.tables import US_CITIES
from bulwark.models.matching.text import stem
from bulwark.models.matching.units import unit_of


def fill_arguments(text: str, tool: ToolSpec) -> dict[str, Any]:
    """Fill the tool's arguments from ``text``; arguments that can't be filled are omitted.

    Schema defaults are never used. The module docstring says how values are found and
    matched to parameters.
    """
    request = Request(text)
    slots = build_slots(tool)
    used: list[Candidate] = []
    if any(s.kind == "expression" for s in slots):
        _add_expression(request, text)
    args = _fill(request, slots, used)
    fill_free_text(request, tool, slots, args, used)
    return {s.name: args[s.name] for s in slots if s.name in args}


def _add_expression(request: Request, text: str) -> None:
    """Add the request's arithmetic expression; the numbers in it are not reused."""
    masked = mask(text, find_quoted(text) + find_emails(text) + find_timezones(text))
    expression = find_expression(normalize_arithmetic(masked))
    if expression is None:
        return
    operands = re.findall(r"\d+(?:\.\d+)?", expression.value)
    kept = []
    for cand in request.candidates:
        raw = (
            f"{cand.value:g}"
            if cand.kind == "quantity" and isinstance(cand.value, int | float)
            else None
        )
        if raw is not None and raw in operands:
            operands.remove(raw)
            continue
        kept.append(cand)
    request.candidates = kept
    request.candidates.append(Candidate(expression.value, -1, -1, "expression"))


def _fill(request: Request, slots: Sequence[Slot], used: list[Candidate]) -> dict[str, Any]:
    """Arguments for ``slots`` from ``request``; ``used`` collects the candidates taken.

    Slots are settled in order of certainty: expressions and emails, then enum values,
    options the request names and booleans, then everything else in one assignment
    (the properties of nested objects take part in it like top-level slots).
    """
    nested = _nested_slots(slots)
    every = [*slots, *nested]
    args: dict[str, Any] = {}
    _fill_shaped(request, every, used, args)
    fill_mentioned(request, every, used, args)
    open_slots = [
        s
        for s in every
        if s.key not in args and s.kind in ("integer", "number", "string", "timezone", "array")
    ]
    pool = [c for c in request.candidates if c.kind not in ("email", "expression")] + string_lists(
        request
    )
    chosen = assign(open_slots, pool, used)
    for slot in open_slots:
        if slot.key in chosen:
            args[slot.key] = _value(slot, chosen[slot.key])
    _end_date_from_duration(every, chosen, request, args)
    for slot in slots:
        if slot.kind == "object":
            value = _object_value(slot, nested, request, args)
            if value:
                args[slot.key] = value
        elif slot.kind == "timezone" and slot.key not in args and slot.required:
            args[slot.key] = "UTC"
    return args


def _nested_slots(slots: Sequence[Slot]) -> list[Slot]:
    """Slots for the properties of object parameters (one level), keyed ``parent.child``."""
    nested = []
    for slot in slots:
        props = slot.schema.get("properties") if slot.kind == "object" else None
        if not props:
            continue
        schema = {
            "type": "object",
            "properties": props,
            "required": slot.schema.get("required") or [],
        }
        for child in build_slots(ToolSpec(slot.name, slot.description, schema)):
            child.parent = slot.name
            child.required = child.required and slot.required
            nested.append(child)
    return nested


def _fill_shaped(
    request: Request, slots: Sequence[Slot], used: list[Candidate], args: dict[str, Any]
) -> None:
    """Expressions and email addresses, recognisable by their shape."""
    for slot in slots:
        if slot.kind == "expression":
            expr = next((c for c in request.of_kind("expression") if c not in used), None)
            if expr is not None:
                args[slot.key] = expr.value
                used.append(expr)
            else:
                slot.kind = "string"  # "the molecular formula": a plain string after all
        elif slot.kind in ("email", "emails"):
            emails = [
                c
                for c in request.of_kind("email", "quoted")
                if c not in used and (c.kind == "email" or EMAIL.fullmatch(str(c.value)))
            ]
            if emails:
                args[slot.key] = (
                    [e.value for e in emails] if slot.kind == "emails" else emails[0].value
                )
                used.extend(emails if slot.kind == "emails" else emails[:1])


def _object_value(
    slot: Slot, nested: Sequence[Slot], request: Request, args: dict[str, Any]
) -> dict[str, Any] | None:
    """An object from its filled properties; without properties, ``'key': 'value'`` pairs."""
    children = [c for c in nested if c.parent == slot.name]
    if children:
        value = {c.name: args.pop(c.key) for c in children if c.key in args}
        return value or None
    pairs = re.findall(r"['\"]?(\w+)['\"]?\s*[:=]\s*['\"]([^'\"]+)['\"]", request.text)
    return dict(pairs) or None


def _end_date_from_duration(
    slots: Sequence[Slot], chosen: Mapping[str, Candidate], request: Request, args: dict[str, Any]
) -> None:
    """ "3 nights starting from 1st June 2022": an end date slot gets June 4."""
    import datetime as dt

    starts = [c for c in chosen.values() if c.kind == "date" and c.date and None not in c.date]
    stays = [c for c in request.of_kind("quantity") if c.unit in ("night", "day", "week")]
    if len(starts) != 1 or not stays:
        return
    y, m, d = starts[0].date  # type: ignore[misc]
    for slot in slots:
        cand = chosen.get(slot.key)
        if (
            slot.is_date
            and slot.has({"end", "until", "out", "checkout"})
            and (cand is None or cand.kind != "date")
        ):
            try:
                end = dt.date(y, m, d) + dt.timedelta(
                    days=float(stays[0].value) * (7 if stays[0].unit == "week" else 1)
                )
            except (ValueError, OverflowError, TypeError):
                return
            args[slot.key] = format_date((end.year, end.month, end.day), slot.description, str(end))


def _text_value(slot: Slot, cand: Candidate) -> Any:
    if cand.kind == "date" and cand.date:
        return format_date(cand.date, slot.description, cand.value)
    if cand.kind == "quantity":
        value = cand.value
        number = str(int(value)) if float(value).is_integer() else str(value)
        return f"{number} {cand.raw_unit}" if cand.raw_unit and cand.unit else number
    if cand.kind == "range":
        return (
            cand.value
            if isinstance(cand.value, str)
            else "-".join(str(p.value) for p in cand.parts)
        )
    if slot.options:
        match = next((o for o in slot.options if str(o).lower() == str(cand.value).lower()), None)
        if match is None and cand.kind == "unit":
            match = next((o for o in slot.options if unit_of(str(o)) == cand.unit), None)
        if match is not None:
            return match
    value = str(cand.value)
    parts = value.split()
    if len(parts) >= 2 and parts[-1].islower() and stem(parts[-1]) in slot.name_stems:
        return " ".join(parts[:-1])  # "Santa Clara county" for a county
    if cand.kind == "name" and "," not in value and slot.wants_city_state:
        code = US_CITIES.get(value.lower())
        if code:
            return f"{value}, {code}"
    return cand.value


def _array_value(slot: Slot, cand: Candidate) -> list[Any]:
    values = list(cand.value) if cand.kind != "range" else [p.value for p in cand.parts]
    if slot.item_kind == "integer":
        return [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    if slot.item_kind == "number":
        return [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
            for v in values
        ]
    if slot.item_kind in ("string", "enum"):
        return [v if isinstance(v, str) else str(v) for v in values]
    return values


def _value(slot: Slot, cand: Candidate) -> Any:
    if slot.kind in ("integer", "number"):
        return slot_number(slot, cand)
    if slot.kind == "array":
        return _array_value(slot, cand)
    return _text_value(slot, cand)
