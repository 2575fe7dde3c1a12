"""Units of measure: surface forms ("km", "metres", "m/s^2") to canonical units, their
dimensions and conversions, and the unit words of a request.

The table is our own (``data/units.json``) rather than pint's, which the ``units`` tool
uses: the rules need to read loose surface forms ("sq.ft", "mpg", "kmh") and to tell a
unit from an ordinary word, not to compute with quantities.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.tables import AMBIGUOUS_UNITS, UNIT_ALIASES, UNITS
from bulwark.models.matching.text import words_between

if TYPE_CHECKING:
    from bulwark.models.matching.request import Request


def unit_of(token: str) -> str:
    """Canonical unit for a surface form (``"km/h"`` -> ``"kilometer/hour"``), or ``""``."""
    t = token.lower().strip(".,;:()")
    if not t:
        return ""
    if t in UNIT_ALIASES:
        return UNIT_ALIASES[t]
    if "/" in t:
        parts = [unit_of(p) or "" for p in t.split("/")]
        return "/".join(parts) if all(parts) else ""
    power = re.fullmatch(r"(.+?)(?:\^?([23])|([²³]))", t)
    if power:
        base = unit_of(power.group(1))
        exp = power.group(2) or {"²": "2", "³": "3"}[power.group(3)]
        return f"{base}^{exp}" if base else ""
    if t.endswith("s") and t[:-1] in UNIT_ALIASES and len(t) > 3:
        return UNIT_ALIASES[t[:-1]]
    return ""


def unit_dimension(unit: str) -> str:
    """Dimension of a canonical unit (compound units are their own dimension)."""
    entry = UNITS.get(unit)
    return entry[0] if entry else unit


def convert_unit(value: float, unit: str, target: str) -> float | None:
    """``value`` in ``unit`` expressed in ``target``, if both are known and comparable."""
    a, b = UNITS.get(unit), UNITS.get(target)
    if not a or not b or a[0] != b[0] or a[0] in ("temperature", "generic"):
        return None
    return value * a[1] / b[1]


def add_units(request: Request) -> None:
    """Unit words not attached to a number: "in km/h", "how many ounces"."""
    for m in re.finditer(r"[A-Za-zµ°][\w/^²³°]*", request.masked):
        tok = m.group()
        unit = unit_of(tok)
        if unit and tok.lower() not in AMBIGUOUS_UNITS:
            before = words_between(request.text, max(0, m.start() - 12), m.start())[-1:]
            roles = {"to"} if set(before) & {"in", "into", "to"} else set()
            request.add(Candidate(tok, m.start(), m.end(), "unit", unit=unit, roles=roles))
    for q in request.of_kind("quantity"):
        if q.raw_unit and q.unit and q.raw_unit != "rest" and not q.unit.startswith("clock_"):
            start = request.text.rfind(q.raw_unit, q.start, q.end)
            request.candidates.append(
                Candidate(
                    q.raw_unit,
                    start,
                    start + len(q.raw_unit),
                    "unit",
                    unit=q.unit,
                    roles={"from"},
                    attached=True,
                )
            )
