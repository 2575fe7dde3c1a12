"""Spans of a request recognised by their shape: email addresses, IANA time zones, quoted
strings and arithmetic expressions (with operator words turned into symbols).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bulwark.models.matching.tables import TIMEZONE_AREAS

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|<EMAIL(?:_\d+)?>")
"""An address, or the PII vault's placeholder for one (the model never sees the real value)."""
_TZ = re.compile(
    r"\b(?:" + "|".join(TIMEZONE_AREAS) + r")/[A-Za-z0-9_+-]+(?:/[A-Za-z_-]+)?",
    re.IGNORECASE,
)
_UTC = re.compile(r"\b(?:UTC|GMT)\b", re.IGNORECASE)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<![\w'])'((?:[^']|'(?=[a-z]))+)'(?![\w'])")
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}/\d{1,2}/\d{4}$")
_EXPR_RUN = re.compile(r"[\d.()+\-*/%^\s]+")
_BINARY_OP = re.compile(r"[\d.)]\s*(?:\*\*|[-+*/%^])\s*[-(\s]*[\d.]")
_NUM = r"(-?\d+(?:\.\d+)?)"
_PHRASE_OPS: tuple[tuple[str, str], ...] = (
    (rf"\b(?:the\s+)?sum\s+of\s+{_NUM}\s+and\s+{_NUM}", r"\1 + \2"),
    (rf"\badd\s+{_NUM}\s+(?:and|to|plus)\s+{_NUM}", r"\1 + \2"),
    (rf"\b(?:the\s+)?product\s+of\s+{_NUM}\s+and\s+{_NUM}", r"\1 * \2"),
    (rf"\bmultiply\s+{_NUM}\s+(?:by|and|with)\s+{_NUM}", r"\1 * \2"),
    (rf"\bdivide\s+{_NUM}\s+by\s+{_NUM}", r"\1 / \2"),
    (rf"\bsubtract\s+{_NUM}\s+from\s+{_NUM}", r"\2 - \1"),
    (rf"\b(?:the\s+)?difference\s+between\s+{_NUM}\s+and\s+{_NUM}", r"\1 - \2"),
    (rf"{_NUM}\s*%\s+of\s+{_NUM}", r"\1 / 100 * \2"),
)
_WORD_OPS: tuple[tuple[str, str], ...] = (
    (r"multiplied\s+by", "*"),
    (r"divided\s+by", "/"),
    (r"to\s+the\s+power\s+of", "**"),
    (r"times", "*"),
    (r"plus", "+"),
    (r"minus", "-"),
    (r"over", "/"),
    (r"mod(?:ulo)?", "%"),
    (r"x", "*"),
    (r"×", "*"),
    (r"÷", "/"),
)


@dataclass(frozen=True)
class Span:
    """A piece of extracted text and where it sits in the source string."""

    value: str
    start: int
    end: int


def find_emails(text: str) -> list[Span]:
    """Email addresses in order of appearance."""
    return [Span(m.group().rstrip("."), m.start(), m.end()) for m in EMAIL.finditer(text)]


def find_timezones(text: str) -> list[Span]:
    """IANA-like ``Area/City`` zones (case normalised when typed in one case) and UTC."""
    found = []
    for m in _TZ.finditer(text):
        raw = m.group()
        if raw.islower() or raw.isupper():
            raw = "/".join(
                "_".join(p.capitalize() for p in seg.split("_")) for seg in raw.split("/")
            )
        found.append(Span(raw, m.start(), m.end()))
    found += [Span("UTC", m.start(), m.end()) for m in _UTC.finditer(text)]
    return sorted(found, key=lambda s: s.start)


def find_quoted(text: str) -> list[Span]:
    """Strings in single, double or curly quotes (apostrophes inside words are ignored)."""
    return [
        Span(next(g for g in m.groups() if g is not None), m.start(), m.end())
        for m in _QUOTED.finditer(text)
    ]


def mask(text: str, spans: Iterable[Span]) -> str:
    """``text`` with the given spans blanked out (same length, so offsets still hold)."""
    chars = list(text)
    for s in spans:
        chars[s.start : s.end] = " " * (s.end - s.start)
    return "".join(chars)


def normalize_arithmetic(text: str) -> str:
    """Turn ``3 x 4``, ``3 plus 4``, ``8 divided by 2``, ``2^3``, ``sum of 2 and 3``,
    ``15% of 80`` into symbolic operators.

    Operator words are replaced only between an operand (digit or parenthesis) on each
    side.
    """
    for pattern, repl in _PHRASE_OPS:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    for word, op in _WORD_OPS:
        text = re.sub(
            rf"(?<=[\d)])\s*(?<![A-Za-z]){word}(?![A-Za-z])\s*(?=[-\d(.])"
            if word in ("x", "×", "÷")
            else rf"(?<=[\d)])\s+{word}\s+(?=[-\d(.])",
            op if word in ("x", "×", "÷") else f" {op} ",
            text,
            flags=re.IGNORECASE,
        )
    return text.replace("^", "**")


def _trim_bounds(run: str) -> tuple[int, int]:
    """Bounds of ``run`` without dangling operators, dots, spaces or unmatched parens."""
    lo, hi = 0, len(run)
    while lo < hi:
        cand = run[lo:hi]
        if cand[0] in "+*/%)^. ":
            lo += 1
        elif cand[-1] in "+-*/%(^. ":
            hi -= 1
        elif cand.count("(") > cand.count(")") and cand[0] == "(":
            lo += 1
        elif cand.count(")") > cand.count("(") and cand[-1] == ")":
            hi -= 1
        else:
            break
    return lo, hi


def find_expression(text: str) -> Span | None:
    """The longest arithmetic expression in ``text`` (already operator-normalised).

    An expression has at least one binary operator between numbers and balanced
    parentheses; ISO or d/m/yyyy dates are not expressions. Runs of spaces inside the
    expression are collapsed to one.
    """
    best: Span | None = None
    for m in _EXPR_RUN.finditer(text):
        lo, hi = _trim_bounds(m.group())
        cand = " ".join(m.group()[lo:hi].split())
        if (
            not cand
            or not _BINARY_OP.search(cand)
            or cand.count("(") != cand.count(")")
            or _DATE.match(cand)
        ):
            continue
        if best is None or len(cand) > len(best.value):
            best = Span(cand, m.start() + lo, m.start() + hi)
    return best
