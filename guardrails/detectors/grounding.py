"""Grounding: do an answer's numbers, dates, names and quotes appear in its sources?

:func:`check_grounding` extracts the checkable claims of an answer and looks each up in the
evidence the answer rests on (tool results, knowledge passages, the user's own messages):

- **numbers** with their unit, thousands separators and trailing zeros normalised
  (``1,234.5`` = ``1234.5``, ``391.0`` = ``391``), scale words (``3.1 million``),
  percentages (``12%`` = ``12 percent`` = ``0.12``), currency symbols, and rounding
  (``3.11 miles`` is supported by ``3.10686 mile``);
- **dates** (ISO, ``5 March 2024``, ``March 5th, 2024``, ``03/05/2024`` either way round,
  ``March 2024``) and **times** (``14:05`` = ``2:05 pm``; ``6 pm`` is supported by an
  hour ``18``);
- **names**: runs of capitalised words (``Ada Lovelace``, ``Bank of England``) and
  capitalised words inside a sentence; a sentence's first word is skipped when it is a
  common word, and so are weekdays and months. A name is supported when it appears in the
  evidence, or each of its words does (``Lovelace, Ada``), or it is an acronym of a name
  there;
- **quotes** of two words or more, which must appear word for word (case and punctuation
  aside).

Words that are not numbers, names or quotes are not checked: a paraphrase passes, and an
extra claim made only of common words is not caught. This is a lexical check written for
this project (no NLI model: none installs offline within the rails' latency budget); it
runs in well under a millisecond on a typical answer (``bench/grounding.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

ClaimKind = Literal["number", "date", "time", "name", "quote"]


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable claim of an answer."""

    kind: ClaimKind
    text: str
    """As written in the answer."""
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Grounding:
    """The claims of an answer, split into those the evidence supports and those it does not."""

    claims: tuple[Claim, ...]
    supported: tuple[Claim, ...]
    unsupported: tuple[Claim, ...]

    @property
    def grounded(self) -> bool:
        """Whether every claim is supported (an answer with no claims is)."""
        return not self.unsupported


_MONTHS = {
    name: i
    for i, names in enumerate(
        [("January", "Jan"), ("February", "Feb"), ("March", "Mar"), ("April", "Apr"), ("May",),
         ("June", "Jun"), ("July", "Jul"), ("August", "Aug"), ("September", "Sept", "Sep"),
         ("October", "Oct"), ("November", "Nov"), ("December", "Dec")],
        start=1,
    )
    for name in names
}
_WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
             "Mon", "Tue", "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat", "Sun"}
_MONTH = r"(?P<{}>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<{}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{}>\d{{4}})"
_DATES = re.compile(
    "|".join([
        r"\b(?P<iy>\d{4})-(?P<im>[01]\d)-(?P<id>[0-3]\d)"
        r"(?:[T ](?P<ih>[0-2]\d):(?P<imin>[0-5]\d)(?::\d\d(?:\.\d+)?)?)?(?:Z|[+-]\d\d:?\d\d)?",
        r"\b" + _MONTH.format("am") + r"\s+" + _DAY.format("ad") + r"\b(?:,?\s+" + _YEAR.format("ay") + r")?",
        r"\b" + _DAY.format("bd") + r"(?:\s+of)?\s+" + _MONTH.format("bm") + r"(?:,?\s+" + _YEAR.format("by") + r")?",
        r"\b" + _MONTH.format("cm") + r",?\s+" + _YEAR.format("cy"),
        r"\b(?P<n1>[0-3]?\d)[/.](?P<n2>[0-3]?\d)[/.](?P<ny>\d{4})\b",
    ])
)
_TIMES = re.compile(
    r"\b(?P<h>[0-2]?\d):(?P<m>[0-5]\d)(?::[0-5]\d)?(?:\s*(?P<ap>[AaPp])\.?[Mm]\.?(?!\w))?"
    r"|\b(?P<h2>1[0-2]|0?[1-9])\s*(?P<ap2>[AaPp])\.?[Mm]\.?(?!\w)"
)
_UNITS = {
    "%": "%", "percent": "%", "per cent": "%", "pct": "%",
    "°c": "°c", "° c": "°c", "c": "°c", "celsius": "°c", "degrees celsius": "°c", "degrees c": "°c",
    "°f": "°f", "° f": "°f", "f": "°f", "fahrenheit": "°f", "degrees fahrenheit": "°f", "degrees f": "°f",
    "km": "km", "kilometer": "km", "kilometre": "km", "kilometers": "km", "kilometres": "km",
    "mi": "mi", "mile": "mi", "miles": "mi", "m": "m", "meter": "m", "metre": "m", "meters": "m",
    "metres": "m", "cm": "cm", "centimeter": "cm", "centimetre": "cm", "centimeters": "cm",
    "centimetres": "cm", "mm": "mm", "millimeter": "mm", "millimetre": "mm", "millimeters": "mm",
    "millimetres": "mm", "kg": "kg", "kilogram": "kg", "kilograms": "kg", "g": "g", "gram": "g",
    "grams": "g", "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "ft": "ft", "feet": "ft",
    "foot": "ft", "inch": "in", "inches": "in", "l": "l", "liter": "l", "litre": "l", "liters": "l",
    "litres": "l", "ml": "ml", "mph": "mph", "km/h": "km/h", "kph": "km/h",
    "hour": "h", "hours": "h", "hr": "h", "hrs": "h", "minute": "min", "minutes": "min",
    "min": "min", "mins": "min", "second": "s", "seconds": "s", "sec": "s", "secs": "s",
    "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
    "months": "month", "year": "year", "years": "year",
    "usd": "usd", "dollar": "usd", "dollars": "usd", "$": "usd", "us$": "usd",
    "eur": "eur", "euro": "eur", "euros": "eur", "€": "eur", "gbp": "gbp", "£": "gbp",
}
_SCALES = {"thousand": 10**3, "k": 10**3, "million": 10**6, "mn": 10**6,
           "billion": 10**9, "bn": 10**9, "trillion": 10**12}
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True) if u not in {"$", "€", "£", "us$"})
_NUMBERS = re.compile(
    r"(?<![\w.])(?P<cur>US\$|[$€£])?\s?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?![\d])"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn|k)\b)?"
    r"(?:\s?(?P<unit>" + _UNIT_ALT + r")(?![a-zA-Z]))?",
    re.IGNORECASE,
)
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS |= {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                  "ninety": 90, "hundred": 100, "dozen": 12}
# A spelled-out count and the word it counts ("four stars"); "one" and "hundred" are too
# often not a count. It is unsupported only when the evidence counts that word differently:
# answers count what a tool listed ("two meetings") without the tool saying "two".
_COUNTS = re.compile(
    r"\b(?:" + "|".join(w for w in _NUMBER_WORDS if w not in {"zero", "one", "hundred"}) + r")\s+[a-z]+\b",
    re.IGNORECASE,
)
_QUOTES = re.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’|(?<!\w)'([^'\n]+)'(?!\w)")
_PLACEHOLDERS = re.compile(r"<[A-Z][A-Z_]*\d*>|\[[a-z][^\]\n]*\]")  # <EMAIL_1>, [source: a.md#2]
_ENUMERATION = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s", re.MULTILINE)
_WORD = re.compile(r"[^\W_](?:[\w’'&.-]*[^\W_])?")
_CONNECTORS = {"of", "de", "da", "di", "del", "der", "van", "von", "la", "le", "du"}
# Common words that start a sentence with a capital without being a name.
_STARTERS = frozenset(
    "a an the this that these those it its it's i i'm i've i'd we you your yours my our he she they "
    "his her their there here in on at for from to by with without of as about around after before "
    "during since until according based per both each every all some most many any no yes not "
    "note please sure ok okay sorry unfortunately currently now then today tomorrow yesterday "
    "also however so and but or if when while where what which who whom whose how why let let's "
    "approximately roughly nearly almost over under above below between within overall total "
    "sources source result results answer there's that's here's what's "
    "one two three first second third next last finally meanwhile therefore thus hence "
    "great good hello hi thanks thank done certainly absolutely".split()
)
_STRIP = re.compile(r"[^\w\s%]|_")
_HEADINGS = re.compile(r"^[ \t]*(?:#{1,6}[ \t].*|\*\*[^*\n]+\*\*:?|__[^_\n]+__:?)[ \t]*$", re.MULTILINE)
_POSSESSIVE = re.compile(r"['’]s\b")
_TRAILING = re.compile(r"(?:['’]s|['’.])$")


def check_grounding(answer: str, evidence: Sequence[str]) -> Grounding:
    """Which of ``answer``'s numbers, dates, times, names and quotes ``evidence`` supports.

    Pass every text the answer may rest on: tool results, knowledge passages and the
    user's own messages (so numbers the user gave count as supported).
    """
    index = _Evidence(evidence)
    claims = list(_claims(answer))
    supported = tuple(c for c in claims if index.supports(c))
    unsupported = tuple(c for c in claims if c not in supported)
    return Grounding(claims=tuple(claims), supported=supported, unsupported=unsupported)


# -- claims ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Number:
    value: Decimal
    decimals: int
    unit: str | None
    scale: int


@dataclass(frozen=True, slots=True)
class _Date:
    year: int | None
    month: int | None
    day: int | None


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _claims(answer: str) -> Iterator[Claim]:
    text = _mask(answer, [m.span() for m in _PLACEHOLDERS.finditer(answer)])
    text = _mask(text, [(m.start(), m.end() - 1) for m in _ENUMERATION.finditer(text)])
    text = _mask(text, [m.span() for m in _HEADINGS.finditer(text)])  # Markdown headings are Title Case
    quoted = []
    for m in _QUOTES.finditer(text):
        inner = next(g for g in m.groups() if g is not None)
        words = _tokens(inner)
        if len(words) >= 2 or (words and re.search(r"[\d_.]", inner)):  # a phrase, or an identifier
            quoted.append(m.span())
            yield Claim("quote", inner, m.start(), m.end())
    text = _mask(text, quoted)
    dates = [m.span() for m in _DATES.finditer(text)]
    for start, end in dates:
        yield Claim("date", answer[start:end], start, end)
    text = _mask(text, dates)
    times = [m.span() for m in _TIMES.finditer(text)]
    for start, end in times:
        yield Claim("time", answer[start:end], start, end)
    text = _mask(text, times)
    numbers = [m.span() for m in _NUMBERS.finditer(text)]
    numbers += [m.span() for m in _COUNTS.finditer(text)]
    for start, end in numbers:
        yield Claim("number", answer[start:end].strip(), start, end)
    yield from _names(_mask(text, numbers), answer)


def _names(text: str, answer: str) -> Iterator[Claim]:
    """Capitalised spans of ``text`` (the answer with other claims masked)."""
    span: list[re.Match[str]] = []

    def close() -> Iterator[Claim]:
        while span and span[-1].group().lower() in _CONNECTORS:
            span.pop()
        if span:
            first = span[0]
            initial = _starts_sentence(text, first.start())
            words = [w.group() for w in span]
            if initial and (_bare(words[0]).lower() in _STARTERS or len(words) == 1):
                del span[0]
                while span and span[0].group().lower() in _CONNECTORS:
                    del span[0]
            # A lone short word (US, EU, AI, JSON) says too little to check.
            if span and not (len(span) == 1 and _short(_bare(span[0].group()))):
                yield Claim("name", answer[span[0].start() : span[-1].end()], span[0].start(), span[-1].end())
        span.clear()

    for word in _WORD.finditer(text):
        token = word.group()
        adjacent = bool(span) and text[span[-1].end() : word.start()].strip() == ""
        if span and not adjacent:
            yield from close()
        if token[0].isupper() and not (_bare(token) in _WEEKDAYS or _bare(token) in _MONTHS):
            span.append(word)
        elif span and token.lower() in _CONNECTORS:
            span.append(word)
        else:
            yield from close()
    yield from close()


def _starts_sentence(text: str, at: int) -> bool:
    """Whether the word at ``at`` opens a sentence, a line, a bracket or a quote."""
    before = text[max(0, at - 40) : at]
    stripped = before.rstrip(" \t")
    if not stripped:
        return at <= 40 or not text[:at].strip(" \t")
    return stripped[-1] in "\n(\"“‘*" or (stripped[-1] in ".!?:;" and stripped != before)


def _short(word: str) -> bool:
    """Whether a word is an acronym-like word of three letters, or four in capitals."""
    return word.isalpha() and (len(word) <= 3 or (len(word) == 4 and word.isupper()))


def _bare(word: str) -> str:
    """A word without a possessive ``'s`` or a trailing dot."""
    return _TRAILING.sub("", word)


def _tokens(text: str) -> list[str]:
    return _STRIP.sub(" ", _POSSESSIVE.sub("", text.lower())).split()


def _parse_number(m: re.Match[str]) -> _Number | None:
    digits = m.group("int").replace(",", "")
    frac = m.group("frac") or ""
    try:
        value = Decimal(f"{digits}.{frac}" if frac else digits)
    except InvalidOperation:  # pragma: no cover - the pattern only matches digits
        return None
    unit = m.group("unit") or m.group("cur")
    scale = _SCALES.get((m.group("scale") or "").lower(), 1)
    canonical = _UNITS.get(unit.lower()) if unit else None
    return _Number(value=value, decimals=len(frac), unit=canonical, scale=scale)


def _parse_date(m: re.Match[str]) -> list[_Date]:
    g = m.groupdict()
    if g["iy"]:
        return [_Date(int(g["iy"]), int(g["im"]), int(g["id"]))]
    if g["am"]:
        return [_Date(_int(g["ay"]), _MONTHS[g["am"]], int(g["ad"]))]
    if g["bm"]:
        return [_Date(_int(g["by"]), _MONTHS[g["bm"]], int(g["bd"]))]
    if g["cm"]:
        return [_Date(int(g["cy"]), _MONTHS[g["cm"]], None)]
    a, b, year = int(g["n1"]), int(g["n2"]), int(g["ny"])
    return [_Date(year, month, day) for month, day in {(a, b), (b, a)} if 1 <= month <= 12 and 1 <= day <= 31]


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _parse_time(m: re.Match[str]) -> tuple[int, int]:
    hour = int(m.group("h") or m.group("h2"))
    minute = int(m.group("m") or 0)
    half = (m.group("ap") or m.group("ap2") or "").lower()
    if half == "p" and hour < 12:
        hour += 12
    elif half == "a" and hour == 12:
        hour = 0
    return hour, minute


# -- evidence --------------------------------------------------------------------------------


class _Evidence:
    """What the evidence texts say, indexed for the claim lookups."""

    def __init__(self, texts: Sequence[str]) -> None:
        joined = "\n".join(texts)
        self.words = " " + " ".join(_tokens(joined)) + " "
        self.vocabulary = {_singular(w) for w in self.words.split()}
        self.dates: list[_Date] = []
        self.times: set[tuple[int, int]] = set()
        for m in _DATES.finditer(joined):
            self.dates += _parse_date(m)
            if m.group("ih"):
                self.times.add((int(m.group("ih")), int(m.group("imin"))))
        self.times |= {_parse_time(m) for m in _TIMES.finditer(joined)}
        self.numbers = [n for m in _NUMBERS.finditer(joined) if (n := _parse_number(m))]
        self.numbers += [_Number(Decimal(n), 0, None, 1) for w in self.words.split() if (n := _NUMBER_WORDS.get(w)) is not None]
        self.numbers += [_Number(Decimal(part), 0, None, 1) for d in self.dates for part in (d.year, d.month, d.day) if part]
        self.numbers += [_Number(Decimal(part), 0, None, 1) for t in self.times for part in t]
        self.acronyms = {
            "".join(w[0] for w in m.group().split() if w[0].isupper()).lower()
            for m in re.finditer(r"[A-Z][\w'-]*(?:\s+(?:of|the|and|for|de)?\s*[A-Z][\w'-]*)+", joined)
        }

    def supports(self, claim: Claim) -> bool:
        if claim.kind == "quote":
            return f" {' '.join(_tokens(claim.text))} " in self.words
        if claim.kind == "name":
            return self._name(claim.text)
        if claim.kind == "date":
            return any(self._date(d) for m in _DATES.finditer(claim.text) for d in _parse_date(m))
        if claim.kind == "time":
            m = _TIMES.search(claim.text)
            hour, minute = _parse_time(m) if m else (-1, -1)
            return (hour, minute) in self.times or (minute == 0 and self._value(Decimal(hour), 0, None))
        count, _, noun = claim.text.lower().partition(" ")
        if count in _NUMBER_WORDS:
            seen = {_count(w) for w in re.findall(rf" (\S+) {re.escape(_singular(noun))}s? ", self.words)} - {None}
            return not seen or _NUMBER_WORDS[count] in seen
        m = _NUMBERS.search(claim.text)
        number = _parse_number(m) if m else None
        return number is None or self._number(number)

    def _name(self, text: str) -> bool:
        tokens = [_singular(t) for t in _tokens(text)]
        if not tokens:
            return True
        if f" {' '.join(_tokens(text))} " in self.words:
            return True
        significant = [t for t in tokens if t not in _CONNECTORS]
        if significant and all(t in self.vocabulary for t in significant):
            return True
        return len(tokens) == 1 and len(tokens[0]) >= 2 and tokens[0] in self.acronyms

    def _date(self, date: _Date) -> bool:
        for known in self.dates:
            if date.month is not None and known.month != date.month:
                continue
            if date.day is not None and known.day != date.day:
                continue
            if date.year is None or known.year == date.year or (known.year is None and self._value(Decimal(date.year), 0, None)):
                return True
        return False

    def _number(self, number: _Number) -> bool:
        if number.unit == "%" and self._value(number.value / 100, number.decimals + 2, None):
            return True
        return self._value(number.value, number.decimals, number.unit, scale=number.scale) or (
            number.scale != 1 and self._value(number.value, number.decimals, number.unit)
        )

    def _value(self, value: Decimal, decimals: int, unit: str | None, *, scale: int = 1) -> bool:
        """Whether the evidence holds ``value`` (in units of ``scale``), exactly or rounded
        to ``decimals`` places."""
        step = Decimal(1).scaleb(-decimals)
        for known in self.numbers:
            if unit and known.unit and known.unit != unit:
                continue
            for seen in {known.value, known.value * known.scale}:
                seen /= scale
                if seen == value:
                    return True
                rounded = seen.quantize(step, rounding=ROUND_HALF_UP)
                # Rounding to a whole number only where that is a paraphrase (21.6 -> 22, not 2.6 -> 3).
                if rounded == value and (decimals > 0 or seen >= 10) and seen != seen.to_integral_value():
                    return True
        return False


def _count(word: str) -> int | None:
    """The value of a count written as digits or a word, ``None`` for any other word."""
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word)


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
