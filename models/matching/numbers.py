"""Finders for numbers: quantities with their unit, currency, percent sign or scale word
("5 km", "$1.2 million", "15%"), number words ("twenty-one", "twice", "compounded
quarterly"), compound quantities ("5 ft 10 in"), ranges and runs of numbers.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.tables import (
    AMBIGUOUS_UNITS,
    CURRENCIES,
    NUMBER_WORDS,
    PER_YEAR,
    SCALES,
    WEAK_NUMBER_WORDS,
)
from bulwark.models.matching.units import convert_unit, unit_of

if TYPE_CHECKING:
    from bulwark.models.matching.request import Request

_QUANTITY = re.compile(
    r"(?<![\w.])(?P<sign>[-−])?(?P<cur>[$€£¥])?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)|\d*\.\d+|\d+)"
    r"(?P<exp>[eE][-+]?\d+)?"
    r"(?P<attached>[A-Za-zµ°][A-Za-zµ°²³]*(?:/[A-Za-z]+)*(?:\^?[23]|[²³])?)?"
    r"(?P<pct>\s*(?:%|percent\b|per\s?cent\b))?"
)
ORDINAL = frozenset({"st", "nd", "rd", "th"})
"""Suffixes of ordinal numbers ("1st", "22nd")."""
_RANGE_WORDS = re.compile(
    r"\b(?:from|between)\s+(?:[a-z]\s*=\s*)?(?P<a>-?\d+(?:\.\d+)?)\s*(?:[a-z]+\s+)?"
    r"(?:to|and|till|until|-)\s+(?:[a-z]\s*=\s*)?(?P<b>-?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_RANGE_DASH = re.compile(r"(?<![\w.-])(\d{1,4})-(\d{1,4})(?![\w.-])")


def add_ranges(request: Request) -> None:
    """Ranges written with a dash: "2019-2020", "5-10"."""
    for m in _RANGE_DASH.finditer(request.masked):
        a, b = int(m.group(1)), int(m.group(2))
        if a < b:
            parts = (
                Candidate(a, m.start(1), m.end(1), "quantity"),
                Candidate(b, m.start(2), m.end(2), "quantity"),
            )
            request.add(Candidate(m.group(), m.start(), m.end(), "range", parts=parts))


def add_quantities(request: Request) -> None:
    """Numbers in digits or words, with their unit, currency, percent sign or scale."""
    for m in _QUANTITY.finditer(request.masked):
        cand = _quantity(request, m)
        if cand is not None:
            request.add(cand)
    for m in re.finditer(
        r"\b(?P<w>" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
        r"(?:[\s-](?P<u>one|two|three|four|five|six|seven|eight|nine))?\b",
        request.masked,
        re.IGNORECASE,
    ):
        word = m.group("w").lower()
        value = NUMBER_WORDS[word] + (
            NUMBER_WORDS[m.group("u").lower()] if m.group("u") else 0
        )
        end = m.end()
        scale = re.match(r"\s+(thousand|million|billion)\b", request.masked[end:], re.I)
        if scale:
            value *= int(SCALES[scale.group(1).lower()])
            end += scale.end()
        unit, raw, end = _unit_after(request, end)
        weak = word in WEAK_NUMBER_WORDS or (word == "one" and not unit)
        request.add(
            Candidate(
                value, m.start(), end, "quantity", unit=unit, raw_unit=raw, weak=weak, word=True
            ),
            hide=not weak,
        )
    _merge_compound_quantities(request)
    _add_rest_phrases(request)
    for c in request.of_kind("range"):
        request.candidates.extend(c.parts)


def _merge_compound_quantities(request: Request) -> None:
    """ "5 ft 10 in", "2 hours 30 minutes": one quantity in the smaller unit."""
    quantities = request.of_kind("quantity")
    for a, b in itertools.pairwise(quantities):
        if not (a.unit and b.unit) or a not in request.candidates:
            continue
        if not re.fullmatch(r"\s*(?:and\s*)?", request.text[a.end : b.start]):
            continue
        converted = convert_unit(float(a.value), a.unit, b.unit)
        if converted is None or converted <= float(b.value):
            continue
        request.candidates.remove(a)
        b.value = converted + float(b.value)
        b.start = a.start
        b.integral = float(b.value).is_integer()


def _add_rest_phrases(request: Request) -> None:
    """Numbers said in words: "from rest" (a starting value of 0), "compounded
    quarterly" (4 times a year), "twice" (2 times)."""
    for m in re.finditer(r"\b(?:from|at)\s+rest\b", request.masked, re.IGNORECASE):
        cand = Candidate(
            0, m.start(), m.end(), "quantity", right=("initial", "velocity", "speed")
        )
        cand.raw_unit = "rest"
        request.add(cand)
    for m in re.finditer(r"\b(" + "|".join(PER_YEAR) + r")\b", request.masked, re.IGNORECASE):
        request.add(
            Candidate(
                PER_YEAR[m.group(1).lower()],
                m.start(),
                m.end(),
                "quantity",
                raw_unit="per_year",
                weak=True,
                word=True,
            )
        )
    for c in request.of_kind("quantity"):
        if c.word and request.text[c.start : c.end].lower() in ("once", "twice", "thrice"):
            c.right = ("times", *c.right)


def _unit_after(request: Request, end: int) -> tuple[str, str, int]:
    """Unit written after a number (``5 meters``, ``4 m/s^2``, ``15 m³``, ``350 sq.ft``)."""
    rest = request.masked[end:]
    m = re.match(r"\s*(square|sq\.?|cubic|light)[\s-]+([A-Za-z.]+)", rest, re.I)
    if m:
        base = unit_of(m.group(2))
        if base:
            kind = {
                "square": "square_",
                "sq": "square_",
                "sq.": "square_",
                "cubic": "cubic_",
                "light": "light_",
            }
            unit = kind[m.group(1).lower()] + base
            return unit, m.group().strip(), end + m.end()
    m = re.match(r"\s*(?:degrees?\s+)?(°\s?[CFcf]|celsius|fahrenheit|kelvin)\b", rest, re.I)
    if m:
        return (
            unit_of(m.group(1).replace(" ", "")) or unit_of(m.group(1)),
            m.group().strip(),
            end + m.end(),
        )
    m = re.match(r"\s?([A-Za-zµ°/^²³0-9.-]+)", rest)
    if m:
        tok = m.group(1).rstrip(".-")
        unit = unit_of(tok)
        if unit and tok.lower() not in AMBIGUOUS_UNITS:
            return unit, tok, end + m.start(1) + len(tok)
    return "", "", end


def _quantity(request: Request, m: re.Match[str]) -> Candidate | None:
    num = m.group("num").replace(",", "")
    value = float(num + (m.group("exp") or ""))
    integral = "." not in num and not m.group("exp")
    attached = m.group("attached") or ""
    unit, raw_unit, end = "", "", m.end()
    if attached:
        if request.masked[m.end() : m.end() + 1].isalnum():
            return None  # "12x18": a size or code, not a quantity
        if attached.lower() in ORDINAL:
            attached = ""
        elif attached == "K":
            unit, raw_unit = "kelvin", "K"
        elif attached in ("k", "bn", "mn") or (attached in ("m", "M") and m.group("cur")):
            value *= SCALES[attached.lower()]
            attached = ""
        else:
            unit, raw_unit = unit_of(attached), attached
    scale = re.match(r"\s*(thousand|million|billion|trillion|bn)\b", request.masked[end:], re.I)
    if scale:
        value *= SCALES[scale.group(1).lower()]
        end += scale.end()
    if m.group("sign"):
        value = -value
    percent = bool(m.group("pct"))
    if not unit and not percent:
        unit, raw_unit, end = _unit_after(request, end)
    cand = Candidate(
        value,
        m.start(),
        end,
        "quantity",
        unit=unit,
        raw_unit=raw_unit,
        money=bool(m.group("cur")),
        percent=percent,
        integral=integral or float(value).is_integer(),
    )
    following = request.masked[end : end + 30].lower()
    if not m.group("cur") and any(
        re.match(rf"\s*{re.escape(name)}\b", following) for name in CURRENCIES
    ):
        cand.money = True
    return cand


def add_number_lists(request: Request) -> None:
    """Runs like ``85, 90, 88 and 92`` (two or more numbers) become list candidates."""
    quantities = [c for c in request.of_kind("quantity") if not c.weak and not c.unit]
    run: list[Candidate] = []
    for q in [*quantities, None]:  # type: ignore[list-item]
        if (
            q is not None
            and run
            and re.fullmatch(r"\s*(?:,|,?\s*and|,?\s*or)\s*", request.text[run[-1].end : q.start])
        ):
            run.append(q)
            continue
        if len(run) >= 3 or (len(run) == 2 and "," in request.text[run[0].end : run[1].start]):
            request.candidates.append(
                Candidate(
                    [c.value for c in run],
                    run[0].start,
                    run[-1].end,
                    "list",
                    integral=all(c.integral for c in run),
                    parts=tuple(run),
                )
            )
        run = [q] if q is not None else []
    for m in _RANGE_WORDS.finditer(request.text):
        parts = tuple(
            c for c in request.of_kind("quantity") if m.start() <= c.start and c.end <= m.end()
        )
        if len(parts) == 2:
            request.candidates.append(
                Candidate(
                    [p.value for p in parts], parts[0].start, parts[1].end, "range", parts=parts
                )
            )
