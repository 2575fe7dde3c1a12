"""The answer cache's false-hit guard: whether two similar requests may share an answer.

Two requests can be near in embedding space and still need different answers, so a semantic
candidate is served only when both requests have the same *specifics* (:func:`specifics`,
:func:`same_specifics`), each compared in order of appearance:

- numbers: digits (``-3``, ``12,000``, ``1.5e-9``, ``6cm``'s 6, ``2nd``), number words
  (``five``, ``twenty five``, ``third``) and scales (``213 million``), compared as values, so
  ``5`` and ``five`` agree;
- units and currencies: symbols (``$ € £ ¥ % °``), unit words and abbreviations
  (``km``, ``miles``, ``celsius``, ``hours``, ``weeks``...), currency names and codes
  (``euros``, ``Canadian dollars``, ``JPY``), each mapped to one canonical unit so that
  ``kilometres`` and ``km`` agree; an abbreviation that is also a word (``m``, ``s``, ``pm``)
  counts only right after a number, ``in`` only glued to one (``10in``), and a time unit
  followed by a number names a period, not a unit ("the year 2020");
- negations: ``not``, ``no``, ``never``, ``without``, ``n't``, ``non``, ``except``, ``avoid``,
  ``neglect``... each with the word it applies to (the next word that is not a function word),
  so "not Python but Rust" and "Python but not Rust" differ;
- operators: ``+ - * / ^ = < >`` between terms (a hyphen inside a word is not one);
- question words that ask for another kind of answer: who, when, where, why, how ("when was
  it signed" / "where was it signed"), unless they only join a clause ("an equation where
  a=2");
- phrases: named entities (capitalised words, except a sentence's first word when it is a
  common sentence opener such as "What" or "Calculate"), quoted strings (``'...'``,
  ``"..."``, backticks) and code identifiers (words with digits, ``_``, dots, slashes or
  camelCase: ``math.factorial``, ``DNA123``, ``C:/data/cars.csv``). Each phrase of either
  request must occur in the other (case-insensitively, as whole words) and in the same order,
  so "Sydney to Melbourne" and "Melbourne to Sydney" differ.

What it cannot see at all is a value the PII rail redacted: "movies starring Tom Hanks"
and "movies starring Leonardo DiCaprio" both reach the graph as "movies starring <PERSON>".
So a request holding a redaction placeholder is never looked up or stored
(:func:`bulwark.models.cache.reusable`).

What else it cannot see: a named entity typed in lower case ("hotels in paris") is an ordinary word
to it, so two such requests are kept apart only by the similarity threshold, as are requests
that differ in an ordinary word ("area" and "circumference"). It errs towards refusing: a
paraphrase that reorders its numbers or drops one is a miss. Why rules of our own rather than
a library: the offline default has no named-entity or parsing model (spaCy's and the like
are downloads, and not dependencies), and a guard that decides whether an answer is served
must be deterministic and explainable; like the default embedder, it is lexical.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Specifics:
    """What must agree for two requests to share an answer (see the module docstring)."""

    numbers: tuple[float, ...]
    units: tuple[str, ...]
    negations: tuple[str, ...]
    operators: tuple[str, ...]
    questions: tuple[str, ...]
    """Question words that ask for a kind of answer: who, when, where, why, how."""
    phrases: tuple[str, ...]
    """Entities, quoted strings and identifiers, case-folded, in order of appearance."""
    words: str
    """The request's words, case-folded and space-separated, where phrases are looked up."""


def same_specifics(a: str, b: str) -> bool:
    """Whether requests ``a`` and ``b`` agree on every specific: numbers, units, negations,
    operators and question words in the same order, and each other's phrases in the same order."""
    first, second = specifics(a), specifics(b)
    if (first.numbers, first.units, first.negations, first.operators, first.questions) != (
        second.numbers, second.units, second.negations, second.operators, second.questions
    ):
        return False
    phrases = set(first.phrases) | set(second.phrases)
    return _in_order(first.words, phrases) == _in_order(second.words, phrases)


def _in_order(words: str, phrases: set[str]) -> list[str]:
    """The ``phrases`` that occur in ``words``, by first occurrence (the longer first)."""
    found = [(words.find(f" {p} "), -len(p), p) for p in phrases]
    return [p for position, _, p in sorted(found) if position >= 0]


_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’|`([^`]+)`|(?<!\w)'((?:[^']|'(?=\w))+)'(?!\w)")
_TOKEN = re.compile(
    r"(?P<number>(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?)(?P<suffix>[^\W\d_][\w/]*)?"
    r"|(?P<word>[^\W_]\w*(?:['’]\w+)*(?:[-._:/\\~]+\w+(?:['’]\w+)*)*)"
    r"|(?P<symbol>[$€£¥₹%°#@&])"
    r"|(?P<operator>[-+*/^=<>×÷±])"
    r"|(?P<end>[.!?;:]+(?=\s|$)|\n)"
    r"|(?P<separator>[,()\[\]{}])"
)
_ORDINAL_SUFFIX = re.compile(r"st|nd|rd|th", re.IGNORECASE)
_ABBREVIATION = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
_HYPHENATED = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+")
_IDENTIFIER = re.compile(r"\d|_|[.:/\\~]\w|[a-z][A-Z]")
_POSSESSIVE = re.compile(r"['’]s$")

_UNIT_SPELLINGS = {
    # length, area, volume
    "m": "meter meters metre metres", "km": "km kms kilometer kilometers kilometre kilometres",
    "cm": "cm centimeter centimeters centimetre centimetres", "mm": "mm millimeter millimeters millimetre millimetres",
    "um": "µm μm micrometer micrometers micron microns", "nm": "nm nanometer nanometers nanometre nanometres",
    "mi": "mile miles", "yd": "yd yard yards", "ft": "ft foot feet", "in": "inch inches",
    "ly": "ly lightyear lightyears|light year|light years",
    "sqft": "sqft sq.ft|square foot|square feet", "m2": "m2 sqm|square meter|square meters|square metre|square metres",
    "km2": "km2|square kilometer|square kilometers|square kilometre|square kilometres",
    "mi2": "|square mile|square miles", "acre": "acre acres", "ha": "ha hectare hectares",
    "l": "liter liters litre litres", "ml": "ml milliliter milliliters millilitre millilitres",
    "gal": "gal gallon gallons", "qt": "qt quart quarts", "pint": "pint pints", "cup": "cup cups",
    "tbsp": "tbsp tablespoon tablespoons", "tsp": "tsp teaspoon teaspoons", "floz": "floz|fluid ounce|fluid ounces",
    # mass
    "kg": "kg kgs kilogram kilograms kilo kilos", "g": "gram grams gramme grammes", "mg": "mg milligram milligrams",
    "t": "tonne tonnes ton tons", "lb": "lb lbs pound pounds", "oz": "oz ounce ounces",
    # time
    "s": "sec secs seconds", "ms": "ms millisecond milliseconds", "min": "mins minute minutes",
    "h": "hr hrs hour hours", "day": "day days", "week": "week weeks", "month": "month months",
    "year": "yr yrs year years", "decade": "decade decades", "century": "century centuries",
    # temperature, angle
    "degC": "°c ℃ celsius centigrade|degree celsius|degrees celsius",
    "degF": "°f ℉ fahrenheit|degree fahrenheit|degrees fahrenheit", "K": "kelvin kelvins",
    "deg": "° degree degrees", "rad": "rad radian radians",
    # speed, physics, electricity
    "km/h": "km/h kph kmh", "mph": "mph", "m/s": "m/s", "m/s2": "m/s2",
    "J": "joule joules", "kJ": "kj kilojoule kilojoules", "cal": "cal calorie calories",
    "kcal": "kcal kilocalorie kilocalories", "W": "watt watts", "kW": "kw kilowatt kilowatts", "kWh": "kwh",
    "V": "volt volts", "A": "amp amps ampere amperes", "ohm": "ohm ohms ω", "Hz": "hz hertz",
    "kHz": "khz", "MHz": "mhz", "GHz": "ghz", "Pa": "pa pascal pascals", "kPa": "kpa", "bar": "bar bars",
    "atm": "atm atmosphere atmospheres", "psi": "psi", "N": "newton newtons", "C": "coulomb coulombs",
    "F": "farad farads", "H": "henry henries", "mol": "mol mole moles",
    # data, other
    "B": "byte bytes", "KB": "kb kilobyte kilobytes", "MB": "mb megabyte megabytes", "GB": "gb gigabyte gigabytes",
    "TB": "tb terabyte terabytes", "bit": "bit bits", "%": "% percent percentage|per cent", "px": "px pixel pixels",
    # currencies
    "USD": "usd $ us$ dollar dollars buck bucks|us dollar|us dollars|united states dollar|united states dollars"
           "|american dollar|american dollars",
    "CAD": "cad c$|canadian dollar|canadian dollars", "AUD": "aud a$|australian dollar|australian dollars",
    "NZD": "nzd|new zealand dollar|new zealand dollars", "HKD": "hkd|hong kong dollar|hong kong dollars",
    "SGD": "sgd|singapore dollar|singapore dollars", "EUR": "eur € euro euros",
    "GBP": "gbp £ sterling quid|british pound|british pounds|pound sterling|pounds sterling",
    "JPY": "jpy ¥ yen|japanese yen", "CNY": "cny rmb yuan renminbi|chinese yuan",
    "INR": "inr ₹ rupee rupees|indian rupee|indian rupees", "CHF": "chf franc francs|swiss franc|swiss francs",
    "MXN": "mxn peso pesos|mexican peso|mexican pesos", "RUB": "rub ruble rubles rouble roubles",
    "KRW": "krw|korean won|south korean won", "BTC": "btc bitcoin bitcoins",
}
"""Each canonical unit's spellings: single words (space-separated), then multi-word ones (``|``)."""
_AFTER_NUMBER = {"m": "m", "s": "s", "second": "s", "h": "h", "g": "g", "l": "l", "min": "min",
                 "c": "C", "f": "F", "k": "K", "v": "V", "w": "W", "am": "am", "pm": "pm"}
"""Unit abbreviations that are ordinary words too: units only right after a number (``5 m``,
``3 pm``) or glued to one (``1.75m``; ``10in`` too, where "in" is no preposition)."""
_LABELS = frozenset({"year", "month", "week", "day", "hour", "decade", "century"})
"""Time units that name a period when a number follows (``the year 2020``, ``day 3``)."""


def _unit_tables() -> tuple[dict[str, str], dict[tuple[str, ...], str]]:
    words: dict[str, str] = {}
    phrases: dict[tuple[str, ...], str] = {}
    for unit, spellings in _UNIT_SPELLINGS.items():
        single, *multi = spellings.split("|")
        words |= dict.fromkeys(single.split(), unit)
        phrases |= dict.fromkeys((tuple(phrase.split()) for phrase in multi), unit)
    return words, phrases


_UNIT_WORDS, _UNIT_PHRASES = _unit_tables()
_LONGEST_UNIT_PHRASE = max(map(len, _UNIT_PHRASES))
_UNIT_PHRASE_STARTS = frozenset(phrase[0] for phrase in _UNIT_PHRASES)
_NUMBER_WORDS = {
    w: float(n) for n, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
} | {w: float(10 * n) for n, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_SCALES = {"hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_ORDINALS = {
    w: float(n) for n, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split(), start=1
    )
} | {"twentieth": 20.0, "hundredth": 100.0}
_NEGATIONS = frozenset(
    "not no never without none nothing nobody nowhere neither nor cannot non except excluding exclude excludes "
    "avoid avoids avoiding avoided neglect neglecting neglected ignore ignoring".split()
)
_FUNCTION_WORDS = frozenset(
    "a an and any are as at be been but by can could did do does for from had has have if in into is it its of on "
    "or our so that the their them then there these they this those to was we were will with would you your".split()
)
_OPENERS = _FUNCTION_WORDS | frozenset(
    "what what's whats which who whose whom when where why how my me please hey hi hello "
    "calculate compute find get give show tell list explain describe summarize summarise compare translate write "
    "make help recommend suggest determine estimate predict provide retrieve fetch search look locate identify "
    "check convert book order create generate compose draw plot mix change sort shuffle send update run perform "
    "train solve analyze analyse assuming given using suppose imagine let let's now then also just quick right "
    "should shall may might must is are was were has have had".split()
)
"""Words that open a sentence without being names: a capitalised opener is no entity."""
_I = frozenset({"i", "i'm", "i'd", "i've", "i'll"})
_QUESTIONS = frozenset({"who", "when", "where", "why", "how"})
"""Question words that ask for a different kind of answer ("when" a date, "where" a place);
not when a determiner or number follows, where they join a clause ("an equation where a=2",
"when the sides are 4 and 5"). "what" and "which" are left out: paraphrases drop them ("what
is X" / "calculate X")."""
_DETERMINERS = frozenset("a an the this that these those its their his her my your our it they we you i he she".split())


@functools.lru_cache(maxsize=1024)
def specifics(text: str) -> Specifics:
    """The specifics of ``text`` the false-hit guard compares (see the module docstring);
    remembered for the last thousand texts, since stored requests are compared again and
    again."""
    normal = unicodedata.normalize("NFKC", text)
    phrases = [_words_of(m.group(m.lastindex or 0)) for m in _QUOTED.finditer(normal)]
    numbers: list[float] = []
    units: list[str] = []
    negations: list[str] = []
    operators: list[str] = []
    questions: list[str] = []
    words: list[str] = []
    number_words: list[str] = []  # "twenty five", "two hundred": read to their end first
    unscoped: list[int] = []  # negations waiting for the word they apply to
    tokens = list(_tokens(normal))
    i = 0
    while i < len(tokens):
        kind, value, opens = tokens[i]
        after_number = i > 0 and tokens[i - 1][0] == "number"
        i += 1
        folded = value.casefold() if kind == "word" else ""
        if folded in _NUMBER_WORDS or folded in _SCALES:
            if folded in _SCALES and after_number and not number_words:
                numbers[-1] *= _SCALES[folded]  # 213 million
            else:
                number_words.append(folded)
            words.append(folded)
            continue
        numbers += _number_of(number_words)
        number_words.clear()
        if kind in ("symbol", "operator"):
            if value in _UNIT_WORDS:
                units.append(_UNIT_WORDS[value])
            else:
                operators.append(value)
            continue
        if kind in ("end", "separator"):
            continue
        if kind == "number":
            number, suffix = value
            numbers.append(number)
            scope = _plain(number)
            words.append(scope)
            if suffix and not _ORDINAL_SUFFIX.fullmatch(suffix):
                units.append(_UNIT_WORDS.get(suffix.casefold()) or _AFTER_NUMBER.get(suffix.casefold()) or suffix)
        else:
            words.append(folded)
            following = tokens[i][1] if i < len(tokens) else ""
            before_number = i < len(tokens) and tokens[i][0] == "number"
            if (phrase := _unit_phrase(tokens, i - 1)) is not None:
                unit, length = phrase
                units.append(unit)
                words += [v.casefold() for _, v, _ in tokens[i : i + length - 1]]
                i += length - 1
            elif folded in _ORDINALS and not (folded == "second" and after_number):
                numbers.append(_ORDINALS[folded])
            elif (folded in _UNIT_WORDS and not (folded in _LABELS and before_number)) or (
                after_number and folded in _AFTER_NUMBER
            ):
                units.append(_UNIT_WORDS.get(folded) or _AFTER_NUMBER[folded])
            elif folded in _QUESTIONS and not (before_number or str(following).casefold() in _DETERMINERS):
                questions.append(folded)
            elif folded in _NEGATIONS or folded.endswith("n't"):
                negations.append("")
                unscoped.append(len(negations) - 1)
                continue
            elif _IDENTIFIER.search(value) or (
                value != folded and folded not in _I and not (opens and folded in _OPENERS)
            ):
                phrases.append(folded)
            if folded in _FUNCTION_WORDS:
                continue
            scope = folded
        for n in unscoped:
            negations[n] = scope
        unscoped.clear()
    numbers += _number_of(number_words)
    return Specifics(
        numbers=tuple(numbers), units=tuple(units), negations=tuple(f"not {w}".rstrip() for w in negations),
        operators=tuple(operators), questions=tuple(questions), phrases=tuple(p for p in phrases if p),
        words=f" {' '.join(words)} ",
    )


def _tokens(text: str) -> Iterator[tuple[str, Any, bool]]:
    """``(kind, value, opens a sentence)``; a number's value is ``(number, unit suffix)``.
    Dotted abbreviations are joined (``U.S.`` is ``US``), possessives dropped, and
    hyphenated words split (``six-sided``: ``six``, ``sided``)."""
    opens = True
    for match in _TOKEN.finditer(text):
        kind = "number" if match.lastgroup == "suffix" else match.lastgroup
        if kind == "number":
            yield kind, (float(match["number"].replace(",", "")), match["suffix"]), opens
        elif kind == "word":
            word = match.group()
            if _ABBREVIATION.fullmatch(word):
                word = word.replace(".", "")
            word = _POSSESSIVE.sub("", word)
            for n, part in enumerate(word.split("-") if _HYPHENATED.fullmatch(word) else [word]):
                yield kind, part, opens and n == 0
        else:
            yield kind, match.group(), opens
        opens = kind == "end"


def _words_of(text: str) -> str:
    """``text``'s words and numbers as :attr:`Specifics.words` spells them."""
    return " ".join(
        _plain(value[0]) if kind == "number" else value.casefold()
        for kind, value, _ in _tokens(text) if kind in ("word", "number")
    )


def _plain(number: float) -> str:
    return f"{number:g}"


def _unit_phrase(tokens: list[tuple[str, Any, bool]], i: int) -> tuple[str, int] | None:
    """The longest multi-word unit (``Canadian dollars``) starting at token ``i``, and its length."""
    if str(tokens[i][1]).casefold() not in _UNIT_PHRASE_STARTS:
        return None
    for length in range(_LONGEST_UNIT_PHRASE, 1, -1):
        window = tokens[i : i + length]
        if len(window) == length and all(kind == "word" for kind, _, _ in window):
            if (unit := _UNIT_PHRASES.get(tuple(v.casefold() for _, v, _ in window))) is not None:
                return unit, length
    return None


def _number_of(words: list[str]) -> list[float]:
    """The numbers a run of number words spells: ``twenty five`` is 25, ``two thousand
    three hundred`` 2300, ``five six`` two numbers."""
    numbers: list[float] = []
    total = current = 0.0
    for word in words:
        if word == "hundred":
            current = (current or 1.0) * 100
        elif word in _SCALES:
            total, current = total + (current or 1.0) * _SCALES[word], 0.0
        else:
            value = _NUMBER_WORDS[word]
            if current and (current % 10 or (value >= 10 and current % 100)):
                numbers.append(total + current)
                total, current = 0.0, 0.0
            current += value
    if words:
        numbers.append(total + current)
    return numbers
