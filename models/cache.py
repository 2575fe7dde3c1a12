"""The answer cache (issue 14): a turn whose prompt was answered before gets that answer
again without a model call.

Levels, fastest first (:mod:`bulwark.persistence.answer_cache` keeps the answers):

- ``l1``: this process's LRU with a TTL;
- ``l2``: Redis, shared by replicas (when a Redis URL is given: the deployment passes its
  checkpointer's);
- ``semantic``: the graph's memory store (``get_runtime().store``, the same Qdrant engine and
  embedder as the memories) in the tenant's own namespace ``("answer_cache", tenant, ...)``:
  a request whose embedding is within ``similarity`` (cosine, 0.95 by default) of a stored
  one made with the same model and context, and which the false-hit guard lets through.

``mode`` ``exact`` uses ``l1`` and ``l2``, ``semantic`` all three, ``off`` none. A hit at a
slower level is copied into the faster ones for what is left of its lifetime.

**Keys.** A :class:`CacheKey` is the tenant, the model, a digest of everything in the prompt
but the latest request (:func:`context_digest`: the system prompt with its memories, notes
and summary, the earlier turns, the tool schemas) and the latest request. The exact levels key
on a SHA-256 of tenant, model, context and the request normalised (:func:`normalise_request`:
Unicode NFKC, case, whitespace, trailing punctuation); the semantic level searches only the
namespace of the tenant, model and context (:func:`~bulwark.persistence.answer_cache.answer_namespace`).
Nothing is shared across tenants, models or contexts (a follow-up question depends on what
came before it).

**What is stored.** Only what the caller stores (it decides what is cacheable: final answers
of turns that ran no side-effecting or user-scoped tool): the screened answer, and for the
semantic level the request as the input rail left it and the text embedded for it. Both
have passed the PII rail; no user id is stored; Redis keys are digests. Every entry expires
after ``ttl_s``: by the L1 timer, Redis' ``PX`` and the store's TTL, all on ``clock``.

**False-hit guard** (:func:`same_specifics`, semantic hits only: exact hits are exact). Two
requests can be near in embedding space and still need different answers, so a semantic
candidate is served only when both requests have the same *specifics*
(:func:`specifics`), each compared in order of appearance:

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
(:func:`reusable`).

What else it cannot see: a named entity typed in lower case ("hotels in paris") is an ordinary word
to it, so two such requests are kept apart only by the similarity threshold, as are requests
that differ in an ordinary word ("area" and "circumference"). It errs towards refusing: a
paraphrase that reorders its numbers or drops one is a miss. Why rules of our own rather than
a library: the offline default has no named-entity or parsing model (spaCy's and the like
are downloads, and not dependencies), and a guard that decides whether an answer is served
must be deterministic and explainable; like the default embedder, it is lexical.

**Semantic text.** What is embedded is :func:`embedding_text`: the normalised request without
politeness ("please", "can you tell me"), a leading request frame ("what is", "calculate"),
articles, forms of "be" and "do", "of", and punctuation. They differ between paraphrases
and carry nothing an answer depends on, and they dilute the lexical embedder's vectors: on
``evals/datasets/cache_paraphrases.jsonl`` it lifts the pairs at cosine >= 0.95 from 15 % to
45 % while near misses fall from 16 % to 14 % (``bench/cache.py``).

**Failures** of a level (Redis down, a store error) are a miss at that level, logged as a
warning and counted as outcome ``error``; a turn never fails because of its cache. Every
consulted level's outcome is in the :class:`CacheLookup` (for the audit record) and in the
``memory.cache.hits`` / ``memory_cache_hits_total`` series.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.store.base import BaseStore

from bulwark.guardrails.detectors.pii import ENTITIES
from bulwark.observability.telemetry import cache_lookup
from bulwark.persistence.answer_cache import CachedAnswer, LocalAnswers, RedisAnswers, SimilarAnswer, StoredAnswers

__all__ = [
    "AnswerCache",
    "CacheKey",
    "CacheLookup",
    "CacheMode",
    "Level",
    "Outcome",
    "Specifics",
    "Stored",
    "context_digest",
    "embedding_text",
    "normalise_request",
    "reusable",
    "same_specifics",
    "specifics",
]

log = logging.getLogger(__name__)

CacheMode = Literal["off", "exact", "semantic"]
Level = Literal["l1", "l2", "semantic"]
Outcome = Literal["hit", "miss", "error"]
Stored = Literal["stored", "error"]
_KEY_VERSION = "bulwark-answer-cache/1"
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class CacheKey:
    """What an answer is cached under."""

    tenant: str
    """The run's tenant: answers are never shared across tenants."""
    model: str
    """The model spec the turn is routed to."""
    context: str
    """:func:`context_digest` of the prompt without its latest request."""
    request: str
    """The latest request's text, as the input rail left it."""


@dataclass(frozen=True, kw_only=True)
class CacheLookup:
    """What a lookup found."""

    answer: str | None = None
    """The cached answer; ``None``: a miss."""
    level: Level | None = None
    """The level that answered."""
    outcomes: dict[Level, Outcome] = field(default_factory=dict)
    """Each level consulted, in order, and its outcome (for the audit record)."""
    similarity: float | None = None
    """For a semantic hit, the stored request's similarity to this one."""

    @property
    def hit(self) -> bool:
        return self.answer is not None


_REDACTED = re.compile(r"<(?:SECRET|" + "|".join(ENTITIES) + r")(?:_\d+)?>")


def reusable(request: str) -> bool:
    """Whether a request may be answered from, or kept in, the cache: not when it holds a
    value the PII rail redacted (``<PERSON>``, ``<EMAIL>``…), which may differ between two
    requests that read the same."""
    return _REDACTED.search(request) is None


def context_digest(
    system_prompt: str, earlier: Sequence[BaseMessage], tools: Sequence[BaseTool | Mapping[str, Any]] = ()
) -> str:
    """SHA-256 of a prompt without its latest request: the system prompt (with the memories,
    notes and summary in it), the earlier messages (role, text, tool calls and results;
    not their ids, which differ per run) and the tools' schemas.

    ``tools`` are ``BaseTool`` objects or their OpenAI-style schemas; converting tools takes
    time (0.8 ms for the eight built-ins), so a node that digests every turn converts its
    tools once (``convert_to_openai_tool``) and passes the schemas."""
    prompt = {
        "system": system_prompt,
        "messages": [_message(m) for m in earlier],
        "tools": [t if isinstance(t, Mapping) else convert_to_openai_tool(t) for t in tools],
    }
    data = json.dumps(prompt, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _message(message: BaseMessage) -> dict[str, Any]:
    part: dict[str, Any] = {"role": message.type, "text": message.text}
    if isinstance(message, AIMessage) and message.tool_calls:
        part["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
    if isinstance(message, ToolMessage):
        part |= {"name": message.name, "status": message.status}
    return part


_TRAILING = re.compile(r"[\s.?!,;:…]+$")


def normalise_request(text: str) -> str:
    """``text`` in Unicode NFKC, case-folded, runs of whitespace as one space, without
    trailing punctuation: what the exact levels key on."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return _TRAILING.sub("", folded)


_FILLER = re.compile(
    r"\b(?:please|pls|kindly|hey|hi|hello|thanks|thank you"
    r"|(?:can|could|would|will) you(?: please)?(?: (?:tell|show|give|help|let) me(?: know)?)?"
    r"|(?:i|we) (?:want|wanted|would like|'d like|need) to know|i wonder|do you know"
    r"|(?:tell|show|let) me(?: know)?)\b"
)
_FRAME = re.compile(
    r"^(?:what (?:is|are|was|were|will be|would be)|calculate|compute|find(?: out)?|determine|get|give|show"
    r"|estimate|retrieve|fetch|provide|look up)\b(?: me)?"
)
_CONTRACTIONS = ((re.compile(r"\b(what|who|where|when|how|that|it|there)'s\b"), r"\1 is"),
                 (re.compile(r"\bcan't\b"), "can not"), (re.compile(r"\bwon't\b"), "will not"),
                 (re.compile(r"n't\b"), " not"))
_UNEMBEDDED = frozenset("a an the is are was were be been being do does did of".split())
_WORDS = re.compile(r"\w+")


def embedding_text(text: str) -> str:
    """The text the semantic level embeds for a request: :func:`normalise_request` with
    contractions spelled out; without politeness ("please", "can you tell me", "I'd like to
    know"), a leading request frame ("what is", "calculate", "find", "give me"...), articles,
    forms of "be" and "do", "of", and punctuation. Those differ between paraphrases and carry
    nothing an answer depends on; pronouns, prepositions, question words and negations stay."""
    normal = normalise_request(text).replace("’", "'")
    for pattern, replacement in _CONTRACTIONS:
        normal = pattern.sub(replacement, normal)
    normal = _FRAME.sub("", _FILLER.sub(" ", normal).strip())
    return " ".join(w for w in _WORDS.findall(normal) if w not in _UNEMBEDDED)


# -- the false-hit guard --------------------------------------------------------------------


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


# -- the cache --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Io:
    """One level call a lookup or store needs: how to make it, sync and async."""

    run: Callable[[], Any]
    arun: Callable[[], Awaitable[Any]]


_Steps = Generator[_Io, Any, T]
"""A lookup or store written once: it yields the level calls and gets their results back
(a failed call is thrown into it); :func:`_drive` and :func:`_adrive` make the calls."""


def _drive(steps: _Steps[T]) -> T:
    try:
        io = next(steps)
        while True:
            try:
                result = io.run()
            except Exception as exc:  # noqa: BLE001 - handed to the step, which makes it a miss
                io = steps.throw(exc)
            else:
                io = steps.send(result)
    except StopIteration as done:
        return done.value


async def _adrive(steps: _Steps[T]) -> T:
    try:
        io = next(steps)
        while True:
            try:
                result = await io.arun()
            except Exception as exc:  # noqa: BLE001 - see _drive
                io = steps.throw(exc)
            else:
                io = steps.send(result)
    except StopIteration as done:
        return done.value


class AnswerCache:
    """Looks turns up and keeps their answers, at the levels ``mode`` names.

    The semantic level needs a store with an index and TTLs (the graph's ``QdrantStore``);
    on another (LangGraph's ``InMemoryStore`` has no TTL) its writes fail, each logged and
    reported as ``error``.

    Args:
        mode: ``off``, ``exact`` (``l1`` and ``l2``) or ``semantic`` (also the memory store).
        ttl_s: lifetime of a stored answer, in seconds.
        l1_size: answers kept in this process.
        similarity: least cosine similarity of a semantic hit.
        redis_url: the ``l2`` Redis (``redis[s]://``; a checkpointer URL's ``?ttl=`` is
            ignored); without it there is no ``l2``.
        key_prefix: first part of the Redis keys.
        clock: seconds since the epoch; every expiry is on it (inject it to test TTLs).

    Raises:
        ValueError: a setting out of range.
        PersistenceError: a malformed Redis URL.
    """

    def __init__(
        self,
        *,
        mode: CacheMode = "exact",
        ttl_s: float = 3600.0,
        l1_size: int = 10_000,
        similarity: float = 0.95,
        redis_url: str | None = None,
        key_prefix: str = "bulwark:answer_cache",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in get_args(CacheMode):
            raise ValueError(f"cache mode must be one of {', '.join(get_args(CacheMode))}, not {mode!r}")
        if not ttl_s > 0 or l1_size < 1 or not 0 < similarity <= 1:
            raise ValueError("the answer cache needs ttl_s > 0, l1_size >= 1 and 0 < similarity <= 1")
        self.mode = mode
        self.ttl_s = ttl_s
        self.similarity = similarity
        self.clock = clock
        self.l1 = LocalAnswers(maxsize=l1_size, clock=clock)
        self.l2 = RedisAnswers(redis_url, key_prefix=key_prefix, clock=clock) if redis_url else None
        self.semantic = StoredAnswers(clock=clock)

    def lookup(self, key: CacheKey, *, memory: BaseStore | None = None) -> CacheLookup:
        """The answer cached for ``key``, from the fastest level that has it.

        Args:
            key: the turn.
            memory: the graph's store (``get_runtime().store``), for the semantic level.
        """
        return _drive(self._lookup(key, memory))

    async def alookup(self, key: CacheKey, *, memory: BaseStore | None = None) -> CacheLookup:
        """Async :meth:`lookup`: Redis through ``redis.asyncio``, the store's ``asearch``."""
        return await _adrive(self._lookup(key, memory))

    def store(self, key: CacheKey, answer: str, *, memory: BaseStore | None = None) -> dict[Level, Stored]:
        """Keep ``answer`` (the screened final answer) for ``key`` at every level in use;
        returns what each level did (a level that fails is logged and skipped).

        Args:
            key: the turn.
            answer: what to serve for it.
            memory: the graph's store, for the semantic level.
        """
        return _drive(self._store(key, answer, memory))

    async def astore(self, key: CacheKey, answer: str, *, memory: BaseStore | None = None) -> dict[Level, Stored]:
        """Async :meth:`store`."""
        return await _adrive(self._store(key, answer, memory))

    def close(self) -> None:
        """Close the Redis connections."""
        if self.l2 is not None:
            self.l2.close()

    async def aclose(self) -> None:
        """Close the Redis connections, the asyncio client's too."""
        if self.l2 is not None:
            await self.l2.aclose()

    # -- the steps, written once for both paths

    def _lookup(self, key: CacheKey, memory: BaseStore | None) -> _Steps[CacheLookup]:
        outcomes: dict[Level, Outcome] = {}
        if self.mode == "off":
            return CacheLookup()
        digest = _key_digest(key)
        if (entry := self.l1.get(digest)) is not None:
            return _hit("l1", entry.answer, outcomes)
        _outcome("l1", "miss", outcomes)
        if (l2 := self.l2) is not None:
            try:
                entry = yield _Io(lambda: l2.get(digest), lambda: l2.aget(digest))
            except Exception as exc:  # noqa: BLE001 - the cache must never take the turn down
                _failed("l2", exc, outcomes)
            else:
                if entry is not None:
                    self.l1.put(digest, entry)
                    return _hit("l2", entry.answer, outcomes)
                _outcome("l2", "miss", outcomes)
        if self.mode != "semantic" or memory is None:
            return CacheLookup(outcomes=outcomes)
        where = {"tenant": key.tenant, "model": key.model, "context": key.context, "text": embedding_text(key.request)}
        try:
            candidates: list[SimilarAnswer] = yield _Io(
                lambda: self.semantic.search(memory, **where), lambda: self.semantic.asearch(memory, **where)
            )
        except Exception as exc:  # noqa: BLE001 - see above
            _failed("semantic", exc, outcomes)
            return CacheLookup(outcomes=outcomes)
        match = next(
            (c for c in candidates if c.score >= self.similarity and same_specifics(key.request, c.request)), None
        )
        if match is None:
            _outcome("semantic", "miss", outcomes)
            return CacheLookup(outcomes=outcomes)
        entry = CachedAnswer(match.answer, match.expires_at)
        self.l1.put(digest, entry)
        if l2 is not None:
            yield from _written("l2", _Io(lambda: l2.put(digest, entry), lambda: l2.aput(digest, entry)))
        return _hit("semantic", match.answer, outcomes, match.score)

    def _store(self, key: CacheKey, answer: str, memory: BaseStore | None) -> _Steps[dict[Level, Stored]]:
        done: dict[Level, Stored] = {}
        if self.mode == "off":
            return done
        digest = _key_digest(key)
        entry = CachedAnswer(answer, self.clock() + self.ttl_s)
        self.l1.put(digest, entry)
        done["l1"] = "stored"
        if (l2 := self.l2) is not None:
            done["l2"] = yield from _written("l2", _Io(lambda: l2.put(digest, entry), lambda: l2.aput(digest, entry)))
        if self.mode == "semantic" and memory is not None:
            where = {"tenant": key.tenant, "model": key.model, "context": key.context,
                     "text": embedding_text(key.request), "request": key.request}
            done["semantic"] = yield from _written("semantic", _Io(
                lambda: self.semantic.put(memory, digest, entry, **where),
                lambda: self.semantic.aput(memory, digest, entry, **where),
            ))
        return done


def _key_digest(key: CacheKey) -> str:
    """What the exact levels key on: SHA-256 of tenant, model, context and the normalised
    request, each prefixed by its length (cheaper than JSON, and as unambiguous)."""
    parts = (_KEY_VERSION, key.tenant, key.model, key.context, normalise_request(key.request))
    return hashlib.sha256("".join(f"{len(p)}:{p}" for p in parts).encode("utf-8")).hexdigest()


def _written(level: Level, io: _Io) -> _Steps[Stored]:
    try:
        yield io
    except Exception as exc:  # noqa: BLE001 - the cache must never take the turn down
        log.warning("answer cache level %s failed to store an answer: %s: %s", level, type(exc).__name__, exc)
        return "error"
    return "stored"


def _outcome(level: Level, outcome: Outcome, outcomes: dict[Level, Outcome]) -> None:
    outcomes[level] = outcome
    cache_lookup(level, outcome)


def _hit(level: Level, answer: str, outcomes: dict[Level, Outcome], similarity: float | None = None) -> CacheLookup:
    _outcome(level, "hit", outcomes)
    return CacheLookup(answer=answer, level=level, outcomes=outcomes, similarity=similarity)


def _failed(level: Level, exc: Exception, outcomes: dict[Level, Outcome]) -> None:
    """A level that failed: a miss, with a warning and outcome ``error``."""
    log.warning("answer cache level %s failed, treated as a miss: %s: %s", level, type(exc).__name__, exc)
    _outcome(level, "error", outcomes)
