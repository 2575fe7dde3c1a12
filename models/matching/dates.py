"""Dates and times: finding them in a request (ISO, numeric, "June 1st, 2022", "next
week", "11 PM") and writing a date in the format a parameter's description asks for.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.tables import MONTHS

if TYPE_CHECKING:
    from bulwark.models.matching.request import Request

_DATE_ISO = re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b")
_DATE_NUMERIC = re.compile(r"\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\b")
_MONTH_RE = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
    r"aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE_WORDS = re.compile(
    r"\b(?:(?P<y1>\d{4})\s+)?(?:(?P<d1>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?)?"
    + _MONTH_RE
    + r"(?:\s*(?P<d2>\d{1,2})(?:st|nd|rd|th)?\b)?(?:\s*,?\s*(?P<y2>\d{4})\b)?",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>[ap]\.m\.|[ap]m\b)|\b(?P<h2>\d{1,2}):(?P<m2>\d{2})\b",
    re.IGNORECASE,
)
_RELATIVE_DATE = re.compile(
    r"\b(?:today|tonight|tomorrow|yesterday|(?:this|next|last|coming|upcoming)\s+"
    r"(?:week|weekend|month|year|monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
    re.IGNORECASE,
)


def add_dates_and_times(request: Request) -> None:
    """Dates (ISO, numeric, "June 1st, 2022", "next week") and clock times ("11 PM")."""
    for m in _DATE_ISO.finditer(request.masked):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if 1 <= mo <= 12 and 1 <= d <= 31:
            request.add(Candidate(m.group(), m.start(), m.end(), "date", date=(y, mo, d)))
    for m in _DATE_NUMERIC.finditer(request.masked):
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        mo, d = (b, a) if a > 12 else (a, b)
        if 1 <= mo <= 12 and 1 <= d <= 31:
            request.add(Candidate(m.group(), m.start(), m.end(), "date", date=(y, mo, d)))
    for m in _DATE_WORDS.finditer(request.masked):
        month_word = m.group("month")
        day = m.group("d1") or m.group("d2")
        year = m.group("y1") or m.group("y2")
        if not (day or year) or not (month_word[0].isupper() or day):
            continue
        if month_word.lower() == "may" and not month_word[0].isupper():
            continue
        month = MONTHS[
            month_word.lower().rstrip(".")[:3] if month_word.lower()[:3] != "sep" else "sep"
        ]
        date = (int(year) if year else None, month, int(day) if day else None)
        if date[2] is not None and not 1 <= date[2] <= 31:
            continue
        request.add(Candidate(m.group().strip(), m.start(), m.end(), "date", date=date))
    years = [c.date[0] for c in request.of_kind("date") if c.date and c.date[0]]
    for c in request.of_kind("date"):
        if c.date and c.date[0] is None and years and c.date[2] is not None:
            c.date = (years[0], c.date[1], c.date[2])
    for m in _RELATIVE_DATE.finditer(request.masked):
        request.add(Candidate(m.group(), m.start(), m.end(), "date"), hide=False)
        days = {"week": 7, "month": 30, "year": 365}.get(m.group().split()[-1].lower())
        if days:  # "the next week" for a number of days
            request.candidates.append(
                Candidate(
                    days, m.start(), m.end(), "quantity", unit="day", weak=True, word=True
                )
            )
    for m in _TIME.finditer(request.masked):
        hour = int(m.group("h") or m.group("h2"))
        minute = int(m.group("m") or m.group("m2") or 0)
        if hour > 24 or minute > 59:
            continue
        time = request.add(Candidate(m.group().strip(), m.start(), m.end(), "time"))
        h_end = m.start() + len(m.group("h") or m.group("h2"))
        pm = (m.group("ampm") or "").lower().startswith("p")
        hour_part = Candidate(
            hour, m.start(), h_end, "quantity", unit="clock_hour", raw_unit="pm" if pm else ""
        )
        parts = [hour_part]
        if m.group("m") or m.group("m2"):
            m_start = m.start("m") if m.group("m") else m.start("m2")
            parts.append(
                Candidate(minute, m_start, m_start + 2, "quantity", unit="clock_minute")
            )
        time.parts = tuple(parts)
        request.candidates.extend(parts)


def format_date(date: tuple[int | None, int | None, int | None], description: str, raw: str) -> str:
    """A date in the format the description asks for (ISO ``YYYY-MM-DD`` by default)."""
    y, m, d = date
    desc = description.lower()
    if y is None or m is None:
        return raw
    if d is None:
        return f"{m:02d}-{y}" if "mm-yyyy" in desc else raw
    formats = [
        (r"mm-dd-yyy|month-day-year|mm-dd-yy", f"{m:02d}-{d:02d}-{y}"),
        (r"mm/dd/yyyy", f"{m:02d}/{d:02d}/{y}"),
        (r"dd-mm-yyyy", f"{d:02d}-{m:02d}-{y}"),
        (r"dd/mm/yyyy", f"{d:02d}/{m:02d}/{y}"),
    ]
    for pattern, value in formats:
        if re.search(pattern, desc):
            return value
    return f"{y}-{m:02d}-{d:02d}"
