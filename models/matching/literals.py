"""Finders for values recognised by their form or by a word list: quoted strings, emails
and time zones, formulas (and a polynomial's coefficients), bracketed lists and
coordinates, identifiers (codes, paths, file names), currency names and colour names.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.numbers import ORDINAL
from bulwark.models.matching.spans import find_emails, find_quoted, find_timezones
from bulwark.models.matching.tables import COLORS, CURRENCIES, FILE_EXTENSIONS, SCALES
from bulwark.models.matching.text import words_between
from bulwark.models.matching.units import unit_of

if TYPE_CHECKING:
    from bulwark.models.matching.request import Request

_COORD = re.compile(
    r"\(\s*(-?\d+(?:\.\d+)?)\s*°?\s*([NSns])?\s*,\s*(-?\d+(?:\.\d+)?)\s*°?\s*([EWew])?\s*\)"
)
_FORMULA_SEED = re.compile(r"(?<![A-Za-z])[\d.]*[a-z](?:\^|\*\*)\d+")
_FORMULA_TERM = re.compile(
    r"\s*[-+*/]\s*(?:(?:\d+(?:\.\d+)?)?[a-z](?:(?:\^|\*\*)\d+)?|\d+(?:\.\d+)?)(?![\w])"
)
_TOKEN = re.compile(r"[^\s,;()\[\]{}\"`=]+")
_FILE_EXT = re.compile(r"\.(?:" + "|".join(FILE_EXTENSIONS) + r")$", re.I)


def polynomial_coefficients(formula: str) -> list[float] | None:
    """Coefficients of a one-variable polynomial, highest power first: ``3x**2 + 2x - 4``
    -> ``[3.0, 2.0, -4.0]``; None if it is not such a polynomial."""
    terms = re.findall(
        r"([-+]?)\s*(\d+(?:\.\d+)?)?\s*\*?\s*([a-z])?(?:\*\*(\d+))?", formula.replace(" ", "")
    )
    by_power: dict[int, float] = {}
    variables = set()
    for sign, number, var, power in terms:
        if not (number or var):
            continue
        coefficient = float(number) if number else 1.0
        if var:
            variables.add(var)
        exponent = int(power) if power else (1 if var else 0)
        by_power[exponent] = by_power.get(exponent, 0.0) + (
            -coefficient if sign == "-" else coefficient
        )
    if len(variables) != 1 or not by_power:
        return None
    return [by_power.get(p, 0.0) for p in range(max(by_power), -1, -1)]


def add_quoted(request: Request) -> None:
    """Quoted and back-quoted strings."""
    for span in find_quoted(request.text):
        request.add(Candidate(span.value.strip(), span.start, span.end, "quoted"))
    for m in re.finditer(r"`([^`]+)`", request.masked):
        request.add(Candidate(m.group(1).strip(), m.start(), m.end(), "quoted"))


def add_contacts(request: Request) -> None:
    """Email addresses and time zones."""
    for span in find_emails(request.masked):
        request.add(Candidate(span.value, span.start, span.end, "email"))
    for span in find_timezones(request.masked):
        request.add(Candidate(span.value, span.start, span.end, "timezone"))


def add_formulas(request: Request) -> None:
    """Math functions such as ``y = 3x^2 + 2x - 1`` (``^`` written as ``**``)."""
    for seed in _FORMULA_SEED.finditer(request.masked):
        start, end = seed.start(), seed.end()
        while term := _FORMULA_TERM.match(request.masked, end):
            end = term.end()
        lead = re.search(
            r"(?:\b[a-z]\s*=\s*|\b[a-z]\([a-z]\)\s*=\s*)?([\d.]*\s*[-+]\s*)?$",
            request.masked[:start],
        )
        value = " ".join(request.masked[start:end].split()).replace("^", "**")
        if lead and lead.group(0).strip():
            request.hide(lead.start(), start)
        request.add(Candidate(value, start, end, "formula"))
        coefficients = polynomial_coefficients(value)
        if coefficients:
            request.candidates.append(Candidate(coefficients, start, end, "list", integral=False))


def add_lists(request: Request) -> None:
    """Bracketed lists (``[1, 2]``, ``['a', 'b']``) and coordinates (``(40.7 N, 74 W)``)."""
    for m in re.finditer(r"\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\]", request.masked):
        value = _parse_list(m.group())
        if value is not None:
            request.add(Candidate(value, m.start(), m.end(), "list"))
    for m in _COORD.finditer(request.masked):
        lat, ns, lon, ew = m.groups()
        a = -float(lat) if (ns or "").lower() == "s" else float(lat)
        b = -float(lon) if (ew or "").lower() == "w" else float(lon)
        request.add(Candidate([a, b], m.start(), m.end(), "list", integral=False))


def add_identifiers(request: Request) -> None:
    """Codes, ids, file paths and snake_case names: ``rs6034464``, ``C:/data/x.csv``."""
    for m in _TOKEN.finditer(request.masked):
        tok = m.group().rstrip(".!?:'")
        tok = tok.lstrip("'")
        if not tok or not _is_identifier(tok):
            continue
        start = m.start() + m.group().index(tok)
        request.add(Candidate(tok, start, start + len(tok), "ident"))


def add_currencies(request: Request) -> None:
    """Currency names as ISO codes; the one after an amount is the source, the one
    after "in"/"to"/"into" the target."""
    low = request.masked.lower()
    amounts = request.of_kind("quantity")
    for name in sorted(CURRENCIES, key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(name)}\b", low):
            cand = request.add(Candidate(CURRENCIES[name], m.start(), m.end(), "currency"))
            low = low[: m.start()] + " " * (m.end() - m.start()) + low[m.end() :]
            before = words_between(request.text, max(0, m.start() - 12), m.start())[-1:]
            if any(
                q.end <= m.start() and not request.text[q.end : m.start()].strip() for q in amounts
            ):
                cand.roles.add("from")
            elif set(before) & {"in", "to", "into"}:
                cand.roles.add("to")


def add_colors(request: Request) -> None:
    """Colour names."""
    for m in re.finditer(r"[A-Za-z]+", request.masked):
        if m.group().lower() in COLORS:
            request.add(Candidate(m.group(), m.start(), m.end(), "color"))


def _is_identifier(tok: str) -> bool:
    """Ids, codes, paths, file names, snake_case words - not numbers with units."""
    if not re.search(r"[A-Za-z]", tok) or len(tok) < 2:
        return False
    if re.fullmatch(r"-?\$?\d[\d,.]*[A-Za-zµ°]{1,3}", tok):
        return False
    if re.fullmatch(r"-?\$?\d[\d,.]*(?:[eE][-+]?\d+)?[A-Za-zµ°²³/^]*\d?%?", tok):
        tail = re.sub(r"^-?\$?[\d,.]+(?:[eE][-+]?\d+)?", "", tok)
        if not tail or tail.lower() in ORDINAL or unit_of(tail) or tail.lower() in SCALES:
            return False
    if unit_of(tok):
        return False
    has_digit = bool(re.search(r"\d", tok))
    return (
        has_digit
        or "_" in tok
        or ("/" in tok and len(tok) > 4)
        or bool(_FILE_EXT.search(tok))
        or tok.startswith("~")
    )


def _parse_list(text: str) -> list[Any] | None:
    """``[1, 2, 3]``, ``['a', 'b']`` or ``[[1, 2], [3, 4]]`` as a Python list."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        inner = text.strip()[1:-1]
        items = [i.strip().strip("'\"") for i in inner.split(",") if i.strip()]
        value = [_number_or_text(i) for i in items]
    return list(value) if isinstance(value, list | tuple) else None


def _number_or_text(item: str) -> Any:
    try:
        number = float(item.replace(",", ""))
    except ValueError:
        return item
    return int(number) if number.is_integer() and "." not in item else number
