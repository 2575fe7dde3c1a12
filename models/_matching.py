"""Private helpers for :mod:`bulwark.models.offline`: text analysis without an LLM.

Three jobs, all deterministic and rule-based:

* **tool scoring** - which bound tool (OpenAI-format schema) fits a request, by
  IDF-weighted overlap of crudely stemmed words, concept synonyms and the *shape* of
  the request (an arithmetic expression, an email address, an IANA timezone);
* **argument filling** - build tool arguments from the request using the tool's JSON
  schema: the request is taken apart into candidate values (numbers with their units,
  currency or percent sign, number words, lists, ranges, dates, quoted strings, names,
  identifiers, noun phrases, emails, timezones, expressions), each parameter is described
  by the words that announce it (its name, its description, prepositions of its role)
  and its unit, and values go to parameters best fit first (see ``fill_arguments``);
* **fact extraction** - "my name is Ada"-style statements and the memory block of a
  system prompt, plus matching a personal question to the best fact.

Sections, in order: words, concepts, text extraction, tool schemas, tool scoring,
argument filling (vocabulary, request analysis, parameters, scoring, assignment, values),
facts. Nothing here is public API; the names may change with the offline model.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
import itertools

# --------------------------------------------------------------------------- words

STOPWORDS: frozenset[str] = frozenset(
    """
    a an the is are am was were be been being it its it's this that these those i me my
    mine i'm im you your yours you're we our us he she they them his her their what
    whats what's which who whom whose when where why how do does did doing done can
    could would should will shall may might must please pls kindly tell give show let
    lets let's get gets got want wanna need like to of in on at for from by with about as
    into onto and or but if so than then also just some any all there here up out again
    more most very really quite too much many ok okay thanks thank yes no not use using
    tool tools bulwark hey hi hello s t
    """.split()
)
"""Words that carry no signal for tool choice."""

_CONNECTORS: frozenset[str] = frozenset(
    """
    saying say says said telling asking regarding re containing that which with about
    subject body message text titled called named reading reads
    """.split()
)
"""Extra words trimmed from the edges of a free-text argument."""
_EDGE_KEEP: frozenset[str] = frozenset({"my", "i", "im", "our", "your"})
"""Stopwords kept at the edges of a free-text argument ("my dog is Rex")."""

_SUFFIXES: tuple[str, ...] = (
    "ations", "ation", "ators", "ator", "ings", "ing", "ions", "ion", "ers", "er",
    "ies", "ied", "es", "ed", "ly", "ate", "or", "s",
)  # fmt: skip

_WORD = re.compile(r"[A-Za-z0-9]+")


_IRREGULAR: dict[str, str] = {
    "children": "child", "people": "person", "men": "man", "women": "woman", "feet": "foot",
    "teeth": "tooth", "mice": "mouse", "geese": "goose", "indices": "index", "data": "datum",
}  # fmt: skip


def stem(word: str) -> str:
    """Crude suffix-stripping stemmer: ``calculator``/``calculate`` -> ``calcul``."""
    w = word.lower()
    w = _IRREGULAR.get(w, w)
    if not w.isalpha():
        return w
    for _ in range(3):
        for suf in _SUFFIXES:
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                w = w[: -len(suf)] + ("y" if suf in ("ies", "ied") else "")
                break
        else:
            break
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-case words of ``text``; snake_case and camelCase identifiers are split."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
    return [w.lower() for w in _WORD.findall(text)]


def content_stems(text: str) -> list[str]:
    """Stems of the words of ``text`` that are neither stopwords nor numbers."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and not w.isdigit()]


# ------------------------------------------------------------------------- concepts

_CONCEPT_WORDS: dict[str, str] = {
    "arithmetic": "arithmetic calculate calculator calculation compute math maths plus "
    "minus times multiply multiplied divide divided sum add subtract product "
    "expression evaluate equation formula quotient",
    "time": "time now clock date today current hour day timezone zone tz",
    "email": "email mail send message inbox recipient",
    "weather": "weather forecast temperature rain raining sunny wind climate",
    "conversion": "convert conversion converter unit units km mile kg lb pound celsius "
    "fahrenheit meter metre feet foot inch gram ounce",
    "search": "search find look lookup google web query internet browse",
    "currency": "currency currencies dollar dollars euro euros yen pound pounds sterling "
    "exchange forex usd eur gbp jpy cad",
    "history": "history historical historic when year century era ancient war treaty",
    "memory": "remember recall memory memorize memorise forget",
    "file": "file read write open save document",
}
WEAK_SYNONYMS: frozenset[str] = frozenset(
    stem(w)
    for w in "today current now day add product message find look open save read write "
    "note unit units zone".split()
)
"""Synonyms too common to pick a tool alone: they count as a weak concept hint only."""

CONCEPTS: dict[str, frozenset[str]] = {
    name: frozenset(stem(w) for w in ws.split()) for name, ws in _CONCEPT_WORDS.items()
}
"""Concept name -> stems of its synonyms."""


def concepts_of(stemmed: str) -> list[str]:
    """Concepts whose synonym list contains the stem."""
    return [name for name, stems in CONCEPTS.items() if stemmed in stems]


# ---------------------------------------------------------------- text extraction

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TZ = re.compile(
    r"\b(?:Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|"
    r"Pacific|Etc)/[A-Za-z0-9_+-]+(?:/[A-Za-z_-]+)?",
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
    return [Span(m.group().rstrip("."), m.start(), m.end()) for m in _EMAIL.finditer(text)]


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


# ------------------------------------------------------------------ tool schemas


@dataclass
class ToolSpec:
    """One bound tool, from its OpenAI-format schema, with its matching profile."""

    name: str
    description: str
    parameters: dict[str, Any]
    profile: dict[str, float] = field(default_factory=dict)
    """term -> weight; concept terms start with ``#``."""

    @classmethod
    def from_openai(cls, schema: Mapping[str, Any]) -> ToolSpec:
        """Build from ``{"type": "function", "function": {...}}`` or a bare function dict."""
        fn = schema.get("function", schema)
        spec = cls(
            name=str(fn.get("name", "")),
            description=str(fn.get("description") or ""),
            parameters=dict(fn.get("parameters") or {}),
        )
        spec._build_profile()
        return spec

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        """The JSON-schema properties of the tool's arguments."""
        return dict(self.parameters.get("properties") or {})

    @property
    def required(self) -> list[str]:
        """Names of the required arguments."""
        return list(self.parameters.get("required") or [])

    def _add(self, text: str, weight: float) -> None:
        for s in content_stems(text):
            self.profile[s] = max(self.profile.get(s, 0.0), weight)
            for c in concepts_of(s):
                key = f"#{c}"
                self.profile[key] = max(self.profile.get(key, 0.0), weight)
        if find_expression(normalize_arithmetic(text)):
            self.profile["#arithmetic"] = max(self.profile.get("#arithmetic", 0.0), weight)

    def _build_profile(self) -> None:
        self._add(self.name, 2.0)
        self._add(self.description, 1.0)
        for pname, pschema in self.properties.items():
            self._add(pname, 1.0)
            self._add(str(pschema.get("description") or ""), 0.5)
            for value in enum_values(pschema):
                self._add(str(value), 1.0)

    def param_kinds(self) -> dict[str, str]:
        """Argument name -> kind (see :func:`param_kind`)."""
        return {n: param_kind(n, s) for n, s in self.properties.items()}


def _types(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    found = set(t) if isinstance(t, list) else ({t} if t else set())
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(sub)
    return {x for x in found if x != "null"}


def enum_values(schema: Mapping[str, Any]) -> list[Any]:
    """Enum values of a property (also inside ``anyOf``/``oneOf``, and ``const``)."""
    values = list(schema.get("enum") or [])
    if "const" in schema:
        values.append(schema["const"])
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        values += enum_values(sub)
    return values


def param_kind(name: str, schema: Mapping[str, Any]) -> str:
    """Classify an argument as expression, email, emails, timezone, enum, integer, number,
    boolean, string or other, from its name, description and type."""
    types = _types(schema)
    lname = name.lower()
    desc = str(schema.get("description") or "").lower()
    name_words = set(words(name))
    if enum_values(schema):
        return "enum"
    if types & {"integer"} and not types & {"string"}:
        return "integer"
    if types & {"number"} and not types & {"string"}:
        return "number"
    if types == {"boolean"}:
        return "boolean"
    emailish = bool(
        name_words & {"email", "emails", "mail", "recipient", "recipients"}
        or lname in ("to", "cc", "bcc")
        or "email address" in desc
        or "recipient" in desc
    )
    if "array" in types:
        items = schema.get("items") or {}
        if emailish and (not items or "string" in _types(items)):
            return "emails"
        return "other"
    if types and "string" not in types:
        return "other"
    if name_words & {"expression", "formula", "equation", "expr"} or re.search(
        r"\b(expression|formula|equation)\b", desc
    ):
        return "expression"
    if emailish:
        return "email"
    if (
        name_words & {"timezone", "tz", "zone"}
        or "timezone" in lname
        or re.search(r"\b(timezone|time zone|iana)\b", desc)
    ):
        return "timezone"
    return "string"


# ------------------------------------------------------------------- tool scoring

CONCEPT_FACTOR = 0.5
"""A match through a concept synonym counts half as much as a literal word match."""
WEAK_CONCEPT_FACTOR = 0.2
"""...and a concept reached only through :data:`WEAK_SYNONYMS` counts less still."""
SHAPE_BONUS = 3.0
"""Added when the request *looks like* the tool's input (e.g. ``17*23`` for a calculator)."""
PREFIX_FACTOR = 0.5
"""A word matching a tool's term only by a shared prefix counts half."""
FIT_BONUS = 1.0
"""Added when the request clearly carries every required argument of the tool."""
SLOT_BONUS = 1.5
"""Added when the request contains an email / timezone and the tool takes one."""


def request_terms(text: str) -> dict[str, float]:
    """Terms of a request with their factor: literal stems 1.0, ``#concept`` tags less.

    Weak synonyms (``today``, ``current``...) add only a weak concept hint.
    """
    text = re.sub(r"\blook(?:ing)?\s+up\b", "lookup", text, flags=re.IGNORECASE)
    terms: dict[str, float] = {}
    for s in content_stems(text):
        weak = s in WEAK_SYNONYMS
        if not weak:
            terms[s] = 1.0
        for c in concepts_of(s):
            factor = WEAK_CONCEPT_FACTOR if weak else CONCEPT_FACTOR
            terms[f"#{c}"] = max(terms.get(f"#{c}", 0.0), factor)
    return terms


def score_tools(text: str, tools: Sequence[ToolSpec]) -> list[float]:
    """Score every tool for the request ``text`` (same order as ``tools``)."""
    if not tools:
        return []
    n = len(tools)
    df: dict[str, int] = {}
    for t in tools:
        for term in t.profile:
            df[term] = df.get(term, 0) + 1
    terms = request_terms(text)
    masked = mask(text, find_quoted(text) + find_emails(text))
    has_expr = find_expression(normalize_arithmetic(masked)) is not None
    has_email = bool(find_emails(text))
    has_tz = any("/" in s.value for s in find_timezones(text))
    request: Request | None = None  # analysed only if some tool needs it
    scores = []
    for t in tools:
        score = 0.0
        for term, factor in terms.items():
            if term in t.profile:
                idf = 1.0 + math.log(n / df[term])
                score += t.profile[term] * idf * factor
            elif not term.startswith("#") and (near := _prefix_match(term, t.profile)):
                idf = 1.0 + math.log(n / df[near])
                score += t.profile[near] * idf * factor * PREFIX_FACTOR
        if score > 0:
            request = request or Request(text)
            if _arguments_fit(request, t):
                score += FIT_BONUS
        kinds = set(t.param_kinds().values())
        if has_expr and "#arithmetic" in t.profile:
            score += SHAPE_BONUS
        if has_email and kinds & {"email", "emails"}:
            score += SLOT_BONUS
        if has_tz and "timezone" in kinds:
            score += SLOT_BONUS
        scores.append(round(score, 6))
    return scores


def _prefix_match(term: str, profile: Mapping[str, float]) -> str | None:
    """A profile term sharing a long prefix with ``term`` ("similar"/"similarity")."""
    if len(term) < 5:
        return None
    return next(
        (
            p
            for p in profile
            if len(p) >= 5 and p[:5] == term[:5] and (p.startswith(term) or term.startswith(p))
        ),
        None,
    )


def _arguments_fit(request: Request, tool: ToolSpec) -> bool:
    """Whether the request holds a value, clearly meant, for every required argument."""
    slots = [s for s in build_slots(tool) if s.required]
    if not slots:
        return False
    pool = request.candidates + _string_lists(request)
    for slot in slots:
        if slot.kind in ("enum", "boolean", "object", "expression", "email", "emails"):
            return False
        if slot.kind == "string" and slot.options and _enum_mentions(request.text, slot.options):
            continue
        if not any((f := _score(slot, c)) is not None and f.evidence >= EVIDENCE for c in pool):
            return False
    return True


def best_tool(text: str, tools: Sequence[ToolSpec], min_score: float) -> ToolSpec | None:
    """The highest-scoring tool at or above ``min_score`` (first one wins ties)."""
    scores = score_tools(text, tools)
    if not scores:
        return None
    top = max(scores)
    return tools[scores.index(top)] if top >= min_score else None


_CLAUSE_SPLIT = re.compile(r"\s+and\s+|;|\?|\s+then\s+|,\s*then\s+", re.IGNORECASE)


def split_clauses(text: str) -> list[str]:
    """Split a request into clauses on ' and ', ';', '?', 'then' (never inside quotes)."""
    masked = mask(text, find_quoted(text))
    clauses, pos = [], 0
    for m in _CLAUSE_SPLIT.finditer(masked):
        clauses.append(text[pos : m.start()])
        pos = m.end()
    clauses.append(text[pos:])
    return [c.strip(" ,.!") for c in clauses if c.strip(" ,.!")]


def plan_tool_calls(
    text: str,
    tools: Sequence[ToolSpec],
    *,
    min_score: float,
    forced: str | None = None,
    parallel: bool = True,
    max_calls: int = 4,
) -> list[tuple[str, dict[str, Any]]]:
    """Choose tools for ``text`` and fill their arguments: ``[(name, args), ...]``.

    Args:
        text: the user's request.
        tools: bound tools.
        min_score: a tool must score at least this to be called.
        forced: a tool name to call regardless of score, ``"any"`` to call the best tool
            regardless of score, or ``None``.
        parallel: allow one call per clause when clauses match different tools.
        max_calls: cap on parallel calls.
    """
    if not tools:
        return []
    by_name = {t.name: t for t in tools}
    if forced and forced in by_name:
        return [(forced, fill_arguments(text, by_name[forced]))]
    if forced == "any":
        scores = score_tools(text, tools)
        top = tools[scores.index(max(scores))]
        return [(top.name, fill_arguments(text, top))]
    if parallel:
        chosen: list[tuple[ToolSpec, str]] = []
        for clause in split_clauses(text):
            match = best_tool(clause, tools, min_score)
            if match is not None and all(match is not c for c, _ in chosen):
                chosen.append((match, clause))
        if len(chosen) > 1:
            return [(t.name, fill_arguments(clause, t)) for t, clause in chosen[:max_calls]]
    single = best_tool(text, tools, min_score)
    return [] if single is None else [(single.name, fill_arguments(text, single))]


# --------------------------------------------------------------- argument filling
#
# fill_arguments(text, tool) works in three steps:
#
# 1. analyse the request once (:class:`Request`): quoted strings, emails, timezones, an
#    arithmetic expression, quantities (numbers with their unit, currency, percent or
#    scale word), lists, ranges, dates, names (capitalised phrases), identifiers and
#    plain noun phrases - each a :class:`Candidate` that remembers the words around it;
# 2. describe every parameter (:class:`Slot`): what kind of value it takes, the words
#    that announce its value (its name, its description, prepositions of its role such
#    as "from" for a start location) and the units it is measured in;
# 3. give every slot the candidate that fits it best, most confident pairs first, each
#    candidate used once. Optional slots are filled only when the request mentions
#    them; schema defaults are never invented.

_FREE_TEXT_NAMES: tuple[str, ...] = (
    "query", "q", "text", "body", "message", "content", "input", "question", "prompt",
    "topic", "search", "term", "terms", "keywords", "note", "fact", "memory",
    "description", "location", "city", "place",
)  # fmt: skip
_SHORT_TEXT_NAMES: frozenset[str] = frozenset({"subject", "title", "summary", "headline"})

_NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "dozen": 12, "once": 1, "twice": 2, "thrice": 3, "single": 1, "double": 2,
    "triple": 3, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
}  # fmt: skip
"""Number words; "single"/"double"/"second"... only count where a number is expected."""
_WEAK_NUMBER_WORDS: frozenset[str] = frozenset(
    "single double triple first second third fourth fifth once".split()
)
"""Number words that are more often something else ("a second opinion")."""
_PER_YEAR: dict[str, int] = {
    "annually": 1, "yearly": 1, "semiannually": 2, "biannually": 2, "quarterly": 4,
    "monthly": 12, "weekly": 52, "daily": 365,
}  # fmt: skip
"""How often a year a frequency adverb means ("compounded quarterly": 4)."""
_SCALES: dict[str, float] = {
    "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "k": 1e3,
    "m": 1e6, "mn": 1e6, "bn": 1e9,
}  # fmt: skip

# Units: surface form -> canonical name; canonical name -> (dimension, factor to base).
_UNIT_TABLE: dict[str, tuple[str, str, float]] = {
    # canonical: (surface forms, dimension, factor to the dimension's base unit)
    "meter": ("m meter meters metre metres", "length", 1.0),
    "kilometer": ("km kms kilometer kilometers kilometre kilometres", "length", 1000.0),
    "centimeter": ("cm centimeter centimeters centimetre centimetres", "length", 0.01),
    "millimeter": ("mm millimeter millimeters millimetre millimetres", "length", 0.001),
    "mile": ("mi mile miles", "length", 1609.344),
    "foot": ("ft foot feet", "length", 0.3048),
    "inch": ("in inch inches", "length", 0.0254),
    "yard": ("yd yard yards", "length", 0.9144),
    "light_year": ("light-year light-years lightyear lightyears", "length", 9.4607e15),
    "gram": ("g gram grams", "mass", 0.001),
    "kilogram": ("kg kgs kilogram kilograms kilo kilos", "mass", 1.0),
    "pound": ("lb lbs pound pounds", "mass", 0.45359237),
    "ounce": ("oz ounce ounces", "mass", 0.028349523),
    "ton": ("t ton tons tonne tonnes", "mass", 1000.0),
    "second": ("s sec secs second seconds", "time", 1.0),
    "minute": ("min mins minute minutes", "time", 60.0),
    "hour": ("h hr hrs hour hours", "time", 3600.0),
    "day": ("day days", "time", 86400.0),
    "night": ("night nights", "time", 86400.0),
    "week": ("wk week weeks", "time", 604800.0),
    "month": ("month months", "time", 2629800.0),
    "year": ("yr yrs year years", "time", 31557600.0),
    "celsius": ("°c celsius centigrade", "temperature", 1.0),
    "fahrenheit": ("°f fahrenheit", "temperature", 1.0),
    "kelvin": ("k kelvin kelvins", "temperature", 1.0),
    "degree": ("° deg degree degrees", "angle", 1.0),
    "radian": ("rad radian radians", "angle", 1.0),
    "hertz": ("hz hertz", "frequency", 1.0),
    "kilohertz": ("khz kilohertz", "frequency", 1000.0),
    "ampere": ("a amp amps ampere amperes", "current", 1.0),
    "coulomb": ("coulomb coulombs", "charge", 1.0),
    "volt": ("v volt volts", "voltage", 1.0),
    "watt": ("w watt watts", "power", 1.0),
    "joule": ("j joule joules", "energy", 1.0),
    "calorie": ("cal calorie calories kcal", "energy", 4184.0),
    "farad": ("farad farads", "capacitance", 1.0),
    "microfarad": ("µf uf microfarad microfarads", "capacitance", 1e-6),
    "henry": ("henry henries", "inductance", 1.0),
    "millihenry": ("mh millihenry millihenries", "inductance", 1e-3),
    "pascal": ("pa pascal pascals", "pressure", 1.0),
    "atmosphere": ("atm atmosphere atmospheres", "pressure", 101325.0),
    "liter": ("l liter liters litre litres", "volume", 1.0),
    "gallon": ("gal gallon gallons", "volume", 3.785411784),
    "milliliter": ("ml milliliter milliliters millilitre millilitres", "volume", 0.001),
    "cup": ("cup cups", "volume", 0.2365882365),
    "pint": ("pt pint pints", "volume", 0.473176473),
    "quart": ("qt quart quarts", "volume", 0.946352946),
    "tablespoon": ("tbsp tablespoon tablespoons", "volume", 0.0147867648),
    "teaspoon": ("tsp teaspoon teaspoons", "volume", 0.00492892159),
    "cubic_meter": ("m³ m^3 m3", "volume", 1000.0),
    "square_foot": ("sq.ft sq.ft. sqft ft² ft^2", "area", 1.0),
    "pixel": ("px pixel pixels", "pixels", 1.0),
    "mole": ("mol mole moles", "amount", 1.0),
    "bpm": ("bpm", "tempo", 1.0),
    "mile/gallon": ("mpg", "efficiency", 1.0),
    "mile/hour": ("mph", "speed", 0.44704),
    "kilometer/hour": ("kph kmh", "speed", 0.277778),
    "unit": ("unit units", "generic", 1.0),
}
_UNIT_ALIASES: dict[str, str] = {
    form: canonical for canonical, (forms, _, _) in _UNIT_TABLE.items() for form in forms.split()
}
_AMBIGUOUS_UNITS: frozenset[str] = frozenset({"in", "a", "s", "h", "t", "c", "f", "k", "l", "v"})
"""Unit symbols that are also ordinary words or letters: trusted only when attached to a
number ("5s") or when the slot's description names that unit."""

_MONEY_CUES: frozenset[str] = frozenset(
    stem(w)
    for w in "price cost amount budget investment invest principal principle payment value "
    "deposit income payout dividend dividends equity salary fee revenue capital fund money "
    "dollar dollars usd spend profit loan balance".split()
)
_PERCENT_CUES: frozenset[str] = frozenset(
    stem(w) for w in "rate percent percentage yield return interest growth discount ratio".split()
)

_GENERIC_DESCRIPTION_WORDS: frozenset[str] = frozenset(
    """
    default defaults optional parameter specified specify specific given value values
    provided required must should e g eg etc type number whether option true false
    set returns return result results information info data the if not none null
    """.split()
)
"""Description words that don't tell one argument from another."""

_NAME_SYNONYMS: dict[str, str] = {
    "velocity": "speed", "speed": "velocity", "duration": "time period long",
    "time": "duration period", "period": "time duration", "amount": "quantity sum",
    "quantity": "amount", "count": "number many", "num": "number", "n": "number",
    "principal": "investment deposit", "radius": "radii", "sides": "die", "loc": "location",
    "location": "city place", "city": "location", "origin": "start", "destination": "end",
    "years": "year", "temp": "temperature", "dest": "destination", "qty": "quantity",
    "freq": "frequency", "max": "maximum most", "min": "minimum least", "avg": "average",
    "trials": "tosses flips rolls times", "successes": "heads", "success": "heads successes",
    "rolls": "times", "repetitions": "times", "attempts": "times", "repeats": "times",
    "alpha": "significance",
    "depth": "deep", "estimators": "trees", "rooms": "bedrooms", "lbs": "pounds weight",
}  # fmt: skip
"""Words that announce an argument besides its own name (``speed of 10`` -> velocity)."""

_ROLES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # role: (slot words that carry it, prepositions that announce its value)
    "from": (
        frozenset("start starting origin source from departure depart base initial "
                  "sender begin".split()),
        frozenset({"from"}),
    ),
    "to": (
        frozenset("end ending destination dest to target arrival arrive final "
                  "heading".split()),
        frozenset({"to", "into"}),
    ),
    "in": (
        frozenset("location city country state region county area place loc jurisdiction "
                  "venue court where habitat organelle compartment store park platform".split()),
        frozenset({"in", "near", "at", "around", "within", "on"}),
    ),
    "by": (
        frozenset("artist author maker manufacturer brand creator composer director "
                  "inventor by".split()),
        frozenset({"by"}),
    ),
    "about": (
        frozenset("topic subject about regarding theme".split()),
        frozenset({"on", "about", "regarding", "concerning", "related"}),
    ),
}  # fmt: skip
_ALL_ROLE_PREPS: frozenset[str] = frozenset().union(*(p for _, p in _ROLES.values()))

_LEADING_VERBS: frozenset[str] = frozenset(
    """
    find get calculate compute what who when where how which whats is are can could would
    please give show tell list retrieve fetch search look book create generate predict
    estimate determine identify analyze analyse plot sort convert run train perform order
    check locate provide update send draw change mix compose play i buy solve evaluate
    return make help lookup get let lets suggest recommend count measure translate put take
    set add explain describe summarize write draft schedule cancel remove delete reserve rent
    hire assess review rank monitor track map display print prepare organize arrange assign
    simulate forecast project grab pull obtain purchase sell ship deliver transfer exchange
    withdraw deposit pay invest include imagine suppose assume given compare plan design
    """.split()
)
"""Words that start a request and are capitalised only because they come first."""
_GEO_HEAD = re.compile(
    r"\s+(?:river|lake|mountains?|rainforest|forest|desert|ocean|sea|park|county|island|"
    r"islands|valley|bay|canyon|falls|national park|city|state|region|province|museum)\b"
)
"""Lower-case words that end a place name ("Amazon rainforest", "Mississippi river")."""
_US_STATES: dict[str, str] = dict(
    pair.split(":")
    for pair in (
        "alabama:AL alaska:AK arizona:AZ arkansas:AR california:CA colorado:CO connecticut:CT "
        "delaware:DE florida:FL georgia:GA hawaii:HI idaho:ID illinois:IL indiana:IN iowa:IA "
        "kansas:KS kentucky:KY louisiana:LA maine:ME maryland:MD massachusetts:MA michigan:MI "
        "minnesota:MN mississippi:MS missouri:MO montana:MT nebraska:NE nevada:NV "
        "new_hampshire:NH new_jersey:NJ new_mexico:NM new_york:NY north_carolina:NC "
        "north_dakota:ND ohio:OH oklahoma:OK oregon:OR pennsylvania:PA rhode_island:RI "
        "south_carolina:SC south_dakota:SD tennessee:TN texas:TX utah:UT vermont:VT "
        "virginia:VA washington:WA west_virginia:WV wisconsin:WI wyoming:WY "
        "district_of_columbia:DC"
    ).split()
)
_COUNTRIES: frozenset[str] = frozenset(
    c.replace("_", " ")
    for c in """
    afghanistan albania algeria argentina armenia australia austria bangladesh belgium bolivia
    brazil bulgaria cambodia cameroon canada chile china colombia croatia cuba czechia
    czech_republic denmark ecuador egypt england estonia ethiopia finland france germany ghana
    greece hungary iceland india indonesia iran iraq ireland israel italy jamaica japan jordan
    kazakhstan kenya korea south_korea north_korea kuwait latvia lebanon lithuania luxembourg
    malaysia mexico morocco nepal netherlands new_zealand nigeria norway pakistan peru
    philippines poland portugal qatar romania russia saudi_arabia scotland serbia singapore
    slovakia slovenia south_africa spain sri_lanka sweden switzerland syria taiwan thailand
    turkey uganda ukraine united_arab_emirates united_kingdom united_states
    united_states_of_america uruguay venezuela vietnam wales zimbabwe usa uk us uae
    """.split()
)
"""Country names (lower case), to tell "Tokyo, Japan" from a list of two names."""


_US_CITIES: dict[str, str] = {
    city.replace("_", " "): code
    for code, cities in {
        "AK": "anchorage", "AL": "birmingham", "AZ": "phoenix tucson mesa scottsdale",
        "CA": "los_angeles san_diego san_jose san_francisco fresno sacramento long_beach "
        "oakland anaheim irvine pasadena palo_alto berkeley santa_clara santa_barbara "
        "santa_monica hollywood",
        "CO": "denver colorado_springs boulder", "CT": "hartford", "DC": "washington_d.c.",
        "FL": "jacksonville miami tampa orlando", "GA": "atlanta savannah", "HI": "honolulu",
        "ID": "boise", "IA": "des_moines", "IL": "chicago", "IN": "indianapolis",
        "KY": "louisville", "LA": "new_orleans", "MA": "boston cambridge",
        "MD": "baltimore", "MI": "detroit ann_arbor", "MN": "minneapolis",
        "MO": "kansas_city st._louis", "NC": "charlotte raleigh", "NE": "omaha",
        "NJ": "newark princeton", "NM": "albuquerque", "NV": "las_vegas reno",
        "NY": "new_york new_york_city brooklyn manhattan buffalo",
        "OH": "columbus cleveland cincinnati", "OK": "oklahoma_city tulsa",
        "OR": "portland", "PA": "philadelphia pittsburgh", "RI": "providence",
        "SC": "charleston", "TN": "nashville memphis",
        "TX": "houston san_antonio dallas austin fort_worth el_paso arlington plano",
        "UT": "salt_lake_city", "VA": "virginia_beach richmond", "WA": "seattle spokane",
        "WI": "milwaukee madison",
    }.items()
    for city in cities.split()
}  # fmt: skip
"""Large US cities and their state codes, for slots that want "City, State"."""


def _is_region(value: str) -> bool:
    """A US state (name or code), "D.C." or a country."""
    v = value.strip()
    low = v.lower().replace(".", "")
    return (
        bool(re.fullmatch(r"[A-Z]{2}", v))
        or low in ("dc", "usa", "us", "uk")
        or low.replace(" ", "_") in _US_STATES
        or low in _COUNTRIES
    )


_VERSION = re.compile(r"\s\d{1,4}(?=\s*(?:$|[,.?!;)]|\s(?:and|or|with|in|on|for|from|to)\b))")
"""A number that ends a name: "Windows 10", "S&P 500"."""
_NAME_JOINERS: frozenset[str] = frozenset(
    {"of", "the", "de", "da", "la", "du", "von", "van", "der", "&"}
)
_ABBREVIATIONS: frozenset[str] = frozenset(
    "mr mrs ms dr st jr sr inc ltd co corp prof gen mt ft no vs bros dept univ ave blvd".split()
)
_MONTHS: dict[str, int] = {
    name: i + 1
    for i, names in enumerate(
        [
            "january jan", "february feb", "march mar", "april apr", "may", "june jun",
            "july jul", "august aug", "september sep sept", "october oct",
            "november nov", "december dec",
        ]
    )
    for name in names.split()
}  # fmt: skip
_COLORS: frozenset[str] = frozenset(
    """
    red green blue yellow orange purple violet pink brown black white gray grey cyan magenta
    gold silver beige navy teal maroon turquoise indigo
    """.split()
)
_CURRENCIES: dict[str, str] = {
    "us dollar": "USD", "us dollars": "USD", "usd": "USD", "american dollar": "USD",
    "united states dollar": "USD", "united states dollars": "USD", "dollar": "USD",
    "dollars": "USD", "canadian dollar": "CAD", "canadian dollars": "CAD", "cad": "CAD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR", "british pound": "GBP",
    "british pounds": "GBP", "pound sterling": "GBP", "pounds sterling": "GBP",
    "gbp": "GBP", "japanese yen": "JPY", "yen": "JPY", "jpy": "JPY",
    "australian dollar": "AUD", "australian dollars": "AUD", "aud": "AUD",
    "swiss franc": "CHF", "swiss francs": "CHF", "chf": "CHF", "chinese yuan": "CNY",
    "yuan": "CNY", "renminbi": "CNY", "cny": "CNY", "indian rupee": "INR",
    "indian rupees": "INR", "rupees": "INR", "inr": "INR", "mexican peso": "MXN",
    "mexican pesos": "MXN", "mxn": "MXN", "hong kong dollar": "HKD", "hkd": "HKD",
    "singapore dollar": "SGD", "sgd": "SGD", "south korean won": "KRW", "won": "KRW",
    "krw": "KRW", "swedish krona": "SEK", "sek": "SEK", "russian ruble": "RUB",
    "rub": "RUB", "brazilian real": "BRL", "brl": "BRL",
}  # fmt: skip
_PREPOSITIONS: frozenset[str] = frozenset(
    """
    between through under over above below during after before within without across along
    against among per than via including like versus vs whether while until since toward
    towards upon onto off beyond inside outside near around behind beside despite except
    """.split()
)
"""Words that end a noun phrase."""
_NEGATIONS: frozenset[str] = frozenset(
    "not no without don't dont never exclude excluding except neglect neglecting ignore "
    "ignoring avoid avoiding skip".split()
)


@dataclass
class Candidate:
    """A value found in the request, with where it is and the words around it."""

    value: Any
    start: int
    end: int
    kind: str
    """quantity, list, range, date, time, name, ident, quoted, phrase, color, currency,
    unit or email/timezone/expression."""
    unit: str = ""
    """Canonical unit of a quantity ("meter"), or ``""``."""
    money: bool = False
    percent: bool = False
    integral: bool = True
    weak: bool = False
    """A number word that is often not a number ("second", "single")."""
    raw_unit: str = ""
    left: tuple[str, ...] = ()
    """Words before the value, nearest last (stops at punctuation or another value)."""
    right: tuple[str, ...] = ()
    """Words after the value, nearest first."""
    parts: tuple[Candidate, ...] = ()
    """The quantities a list or range is made of."""
    date: tuple[int | None, int | None, int | None] | None = None
    """(year, month, day) of a date."""
    roles: set[str] = field(default_factory=set)
    """Roles the sentence gives the value beyond a preposition ("between A and B")."""
    word: bool = False
    """A number written as a word ("five")."""
    attached: bool = False
    """A unit written right after a number (``5 km``), not asked for ("in km")."""
    sub: bool = False
    """Part of a longer phrase (a modifier, an "X of Y" join): not an item of a list."""


def unit_of(token: str) -> str:
    """Canonical unit for a surface form (``"km/h"`` -> ``"kilometer/hour"``), or ``""``."""
    t = token.lower().strip(".,;:()")
    if not t:
        return ""
    if t in _UNIT_ALIASES:
        return _UNIT_ALIASES[t]
    if "/" in t:
        parts = [unit_of(p) or "" for p in t.split("/")]
        return "/".join(parts) if all(parts) else ""
    power = re.fullmatch(r"(.+?)(?:\^?([23])|([²³]))", t)
    if power:
        base = unit_of(power.group(1))
        exp = power.group(2) or {"²": "2", "³": "3"}[power.group(3)]
        return f"{base}^{exp}" if base else ""
    if t.endswith("s") and t[:-1] in _UNIT_ALIASES and len(t) > 3:
        return _UNIT_ALIASES[t[:-1]]
    return ""


def unit_dimension(unit: str) -> str:
    """Dimension of a canonical unit (compound units are their own dimension)."""
    entry = _UNIT_TABLE.get(unit)
    return entry[1] if entry else unit


def convert_unit(value: float, unit: str, target: str) -> float | None:
    """``value`` in ``unit`` expressed in ``target``, if both are known and comparable."""
    a, b = _UNIT_TABLE.get(unit), _UNIT_TABLE.get(target)
    if not a or not b or a[1] != b[1] or a[1] in ("temperature", "generic"):
        return None
    return value * a[2] / b[2]


def _same_word(a: str, b: str) -> bool:
    """Same stem, but not a word and the word plus "e" ("plan" is not "plane")."""
    return stem(a) == stem(b) and a + "e" != b and b + "e" != a


def _enum_mentions(text: str, values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """(rank, position, value) for every enum value mentioned; rank 0 = literal phrase."""
    low = text.lower()
    tokens = [(m.start(), m.group().lower()) for m in _WORD.finditer(text)]
    found: list[tuple[int, int, Any]] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            continue
        if len(value.strip()) <= 2:
            m = re.search(rf"(?<![A-Za-z0-9]){re.escape(value.strip())}(?![A-Za-z0-9])", text)
            if m:
                found.append((0, m.start(), value))
            continue
        phrase = re.escape(value.lower().replace("_", " ").replace("-", " "))
        phrase = phrase.replace(r"\ ", r"[\s_-]+")
        m = re.search(rf"(?<![a-z0-9]){phrase}(?![a-z0-9])", low)
        if m:
            found.append((0, m.start(), value))
            continue
        wanted = [w for w in words(value) if w not in STOPWORDS] or words(value)
        positions = [next((p for p, t in tokens if _same_word(t, w)), None) for w in wanted]
        if wanted and all(p is not None for p in positions):
            found.append((1, min(p for p in positions if p is not None), value))
    return sorted(found, key=lambda f: (f[0], f[1]))


def _free_text(
    text: str, consumed: Sequence[Span], triggers: set[str], *, strip_numbers: bool
) -> str:
    """``text`` with trigger words, stopwords and consumed spans trimmed from both ends."""
    tokens = list(re.finditer(r"\S+", text))

    def strippable(m: re.Match[str]) -> bool:
        if any(s.start < m.end() and m.start() < s.end for s in consumed):
            return True
        ws = words(m.group())
        return all(
            (w in STOPWORDS and w not in _EDGE_KEEP)
            or w in _CONNECTORS
            or stem(w) in triggers
            or (strip_numbers and w.isdigit())
            for w in ws
        )

    lo, hi = 0, len(tokens)
    while lo < hi and strippable(tokens[lo]):
        lo += 1
    while hi > lo and strippable(tokens[hi - 1]):
        hi -= 1
    if lo >= hi:
        return ""
    return text[tokens[lo].start() : tokens[hi - 1].end()].strip(" ,.;:!?\"'")


# ----------------------------------------------------------- request analysis

_CLAUSE_BREAK = re.compile(r"[,;:!?()\[\]]|(?<![\s.][A-Za-z])\.(?=\s|$)")
_QUANTITY = re.compile(
    r"(?<![\w.])(?P<sign>[-−])?(?P<cur>[$€£¥])?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)|\d*\.\d+|\d+)"
    r"(?P<exp>[eE][-+]?\d+)?"
    r"(?P<attached>[A-Za-zµ°][A-Za-zµ°²³]*(?:/[A-Za-z]+)*(?:\^?[23]|[²³])?)?"
    r"(?P<pct>\s*(?:%|percent\b|per\s?cent\b))?"
)
_ORDINAL = frozenset({"st", "nd", "rd", "th"})
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
_RANGE_WORDS = re.compile(
    r"\b(?:from|between)\s+(?:[a-z]\s*=\s*)?(?P<a>-?\d+(?:\.\d+)?)\s*(?:[a-z]+\s+)?"
    r"(?:to|and|till|until|-)\s+(?:[a-z]\s*=\s*)?(?P<b>-?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_RANGE_DASH = re.compile(r"(?<![\w.-])(\d{1,4})-(\d{1,4})(?![\w.-])")
_COORD = re.compile(
    r"\(\s*(-?\d+(?:\.\d+)?)\s*°?\s*([NSns])?\s*,\s*(-?\d+(?:\.\d+)?)\s*°?\s*([EWew])?\s*\)"
)
_FORMULA_SEED = re.compile(r"(?<![A-Za-z])[\d.]*[a-z](?:\^|\*\*)\d+")
_FORMULA_TERM = re.compile(
    r"\s*[-+*/]\s*(?:(?:\d+(?:\.\d+)?)?[a-z](?:(?:\^|\*\*)\d+)?|\d+(?:\.\d+)?)(?![\w])"
)
_TOKEN = re.compile(r"[^\s,;()\[\]{}\"`=]+")
_NAME_TOKEN = re.compile(r"[A-Za-z][\w'’.&+#♯-]*")
_FILE_EXT = re.compile(
    r"\.(?:csv|tsv|txt|json|xml|xlsx?|nii|pdf|py|jpg|png|docx?|html?|com|org|net|io)$", re.I
)


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


def _unwrap(text: str) -> str:
    """The request without quotes that wrap all of it."""
    t = text.strip()
    if len(t) > 2 and t[0] == t[-1] and t[0] in "'\"" and t.count(t[0]) == 2:
        return t[1:-1].strip()
    return t


def _words_between(text: str, start: int, end: int) -> list[str]:
    return [
        w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'’]*|\d+(?:\.\d+)?|[=$%]", text[start:end])
    ]


class Request:
    """A user request taken apart into candidate values (see :class:`Candidate`)."""

    def __init__(self, text: str) -> None:
        self.text = _unwrap(text)
        self.candidates: list[Candidate] = []
        self._bounds_key: tuple[int, int] = (-1, 0)
        self._ends: list[int] = []
        self._starts: list[int] = []
        self._masked = self.text
        self._find_quoted()
        self._find_contacts()
        self._find_formulas()
        self._find_bracket_lists()
        self._find_dates_and_times()
        self._find_identifiers()
        self._find_ranges()
        self._find_quantities()
        self._find_number_lists()
        self._find_currencies()
        self._find_names()
        self._combine_places()
        self._find_lexicon_words()
        self._find_units()
        self._set_contexts()
        self._find_phrases()
        self._find_hyphen_modifiers()

    # -- helpers

    def _add(self, cand: Candidate, *, hide: bool = True) -> Candidate:
        self.candidates.append(cand)
        if hide:
            self._hide(cand.start, cand.end)
        return cand

    def _hide(self, start: int, end: int) -> None:
        self._masked = self._masked[:start] + " " * (end - start) + self._masked[end:]

    def of_kind(self, *kinds: str) -> list[Candidate]:
        """Candidates of the given kinds, in order of appearance."""
        return sorted((c for c in self.candidates if c.kind in kinds), key=lambda c: c.start)

    # -- extraction, most specific first (each hides what it found from the next)

    def _find_quoted(self) -> None:
        for span in find_quoted(self.text):
            self._add(Candidate(span.value.strip(), span.start, span.end, "quoted"))
        for m in re.finditer(r"`([^`]+)`", self._masked):
            self._add(Candidate(m.group(1).strip(), m.start(), m.end(), "quoted"))

    def _find_contacts(self) -> None:
        for span in find_emails(self._masked):
            self._add(Candidate(span.value, span.start, span.end, "email"))
        for span in find_timezones(self._masked):
            self._add(Candidate(span.value, span.start, span.end, "timezone"))

    def _find_formulas(self) -> None:
        """Math functions such as ``y = 3x^2 + 2x - 1`` (``^`` written as ``**``)."""
        for seed in _FORMULA_SEED.finditer(self._masked):
            start, end = seed.start(), seed.end()
            while term := _FORMULA_TERM.match(self._masked, end):
                end = term.end()
            lead = re.search(
                r"(?:\b[a-z]\s*=\s*|\b[a-z]\([a-z]\)\s*=\s*)?([\d.]*\s*[-+]\s*)?$",
                self._masked[:start],
            )
            value = " ".join(self._masked[start:end].split()).replace("^", "**")
            if lead and lead.group(0).strip():
                self._hide(lead.start(), start)
            self._add(Candidate(value, start, end, "formula"))
            coefficients = polynomial_coefficients(value)
            if coefficients:
                self.candidates.append(Candidate(coefficients, start, end, "list", integral=False))

    def _find_bracket_lists(self) -> None:
        for m in re.finditer(r"\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\]", self._masked):
            value = _parse_list(m.group())
            if value is not None:
                self._add(Candidate(value, m.start(), m.end(), "list"))
        for m in _COORD.finditer(self._masked):
            lat, ns, lon, ew = m.groups()
            a = -float(lat) if (ns or "").lower() == "s" else float(lat)
            b = -float(lon) if (ew or "").lower() == "w" else float(lon)
            self._add(Candidate([a, b], m.start(), m.end(), "list", integral=False))

    def _find_dates_and_times(self) -> None:
        for m in _DATE_ISO.finditer(self._masked):
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if 1 <= mo <= 12 and 1 <= d <= 31:
                self._add(Candidate(m.group(), m.start(), m.end(), "date", date=(y, mo, d)))
        for m in _DATE_NUMERIC.finditer(self._masked):
            a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
            mo, d = (b, a) if a > 12 else (a, b)
            if 1 <= mo <= 12 and 1 <= d <= 31:
                self._add(Candidate(m.group(), m.start(), m.end(), "date", date=(y, mo, d)))
        for m in _DATE_WORDS.finditer(self._masked):
            month_word = m.group("month")
            day = m.group("d1") or m.group("d2")
            year = m.group("y1") or m.group("y2")
            if not (day or year) or not (month_word[0].isupper() or day):
                continue
            if month_word.lower() == "may" and not month_word[0].isupper():
                continue
            month = _MONTHS[
                month_word.lower().rstrip(".")[:3] if month_word.lower()[:3] != "sep" else "sep"
            ]
            date = (int(year) if year else None, month, int(day) if day else None)
            if date[2] is not None and not 1 <= date[2] <= 31:
                continue
            self._add(Candidate(m.group().strip(), m.start(), m.end(), "date", date=date))
        years = [c.date[0] for c in self.of_kind("date") if c.date and c.date[0]]
        for c in self.of_kind("date"):
            if c.date and c.date[0] is None and years and c.date[2] is not None:
                c.date = (years[0], c.date[1], c.date[2])
        for m in _RELATIVE_DATE.finditer(self._masked):
            self._add(Candidate(m.group(), m.start(), m.end(), "date"), hide=False)
            days = {"week": 7, "month": 30, "year": 365}.get(m.group().split()[-1].lower())
            if days:  # "the next week" for a number of days
                self.candidates.append(
                    Candidate(
                        days, m.start(), m.end(), "quantity", unit="day", weak=True, word=True
                    )
                )
        for m in _TIME.finditer(self._masked):
            hour = int(m.group("h") or m.group("h2"))
            minute = int(m.group("m") or m.group("m2") or 0)
            if hour > 24 or minute > 59:
                continue
            time = self._add(Candidate(m.group().strip(), m.start(), m.end(), "time"))
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
            self.candidates.extend(parts)

    def _find_identifiers(self) -> None:
        """Codes, ids, file paths and snake_case names: ``rs6034464``, ``C:/data/x.csv``."""
        for m in _TOKEN.finditer(self._masked):
            tok = m.group().rstrip(".!?:'")
            tok = tok.lstrip("'")
            if not tok or not _is_identifier(tok):
                continue
            start = m.start() + m.group().index(tok)
            self._add(Candidate(tok, start, start + len(tok), "ident"))

    def _find_ranges(self) -> None:
        for m in _RANGE_DASH.finditer(self._masked):
            a, b = int(m.group(1)), int(m.group(2))
            if a < b:
                parts = (
                    Candidate(a, m.start(1), m.end(1), "quantity"),
                    Candidate(b, m.start(2), m.end(2), "quantity"),
                )
                self._add(Candidate(m.group(), m.start(), m.end(), "range", parts=parts))

    def _find_quantities(self) -> None:
        for m in _QUANTITY.finditer(self._masked):
            cand = self._quantity(m)
            if cand is not None:
                self._add(cand)
        for m in re.finditer(
            r"\b(?P<w>" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
            r"(?:[\s-](?P<u>one|two|three|four|five|six|seven|eight|nine))?\b",
            self._masked,
            re.IGNORECASE,
        ):
            word = m.group("w").lower()
            value = _NUMBER_WORDS[word] + (
                _NUMBER_WORDS[m.group("u").lower()] if m.group("u") else 0
            )
            end = m.end()
            scale = re.match(r"\s+(thousand|million|billion)\b", self._masked[end:], re.I)
            if scale:
                value *= int(_SCALES[scale.group(1).lower()])
                end += scale.end()
            unit, raw, end = self._unit_after(end)
            weak = word in _WEAK_NUMBER_WORDS or (word == "one" and not unit)
            self._add(
                Candidate(
                    value, m.start(), end, "quantity", unit=unit, raw_unit=raw, weak=weak, word=True
                ),
                hide=not weak,
            )
        self._merge_compound_quantities()
        self._find_rest_phrases()
        for c in self.of_kind("range"):
            self.candidates.extend(c.parts)

    def _merge_compound_quantities(self) -> None:
        """ "5 ft 10 in", "2 hours 30 minutes": one quantity in the smaller unit."""
        quantities = self.of_kind("quantity")
        for a, b in itertools.pairwise(quantities):
            if not (a.unit and b.unit) or a not in self.candidates:
                continue
            if not re.fullmatch(r"\s*(?:and\s*)?", self.text[a.end : b.start]):
                continue
            converted = convert_unit(float(a.value), a.unit, b.unit)
            if converted is None or converted <= float(b.value):
                continue
            self.candidates.remove(a)
            b.value = converted + float(b.value)
            b.start = a.start
            b.integral = float(b.value).is_integer()

    def _find_rest_phrases(self) -> None:
        """Numbers said in words: "from rest" (a starting value of 0), "compounded
        quarterly" (4 times a year), "twice" (2 times)."""
        for m in re.finditer(r"\b(?:from|at)\s+rest\b", self._masked, re.IGNORECASE):
            cand = Candidate(
                0, m.start(), m.end(), "quantity", right=("initial", "velocity", "speed")
            )
            cand.raw_unit = "rest"
            self._add(cand)
        for m in re.finditer(r"\b(" + "|".join(_PER_YEAR) + r")\b", self._masked, re.IGNORECASE):
            self._add(
                Candidate(
                    _PER_YEAR[m.group(1).lower()],
                    m.start(),
                    m.end(),
                    "quantity",
                    raw_unit="per_year",
                    weak=True,
                    word=True,
                )
            )
        for c in self.of_kind("quantity"):
            if c.word and self.text[c.start : c.end].lower() in ("once", "twice", "thrice"):
                c.right = ("times", *c.right)

    def _unit_after(self, end: int) -> tuple[str, str, int]:
        """Unit written after a number (``5 meters``, ``4 m/s^2``, ``15 m³``, ``350 sq.ft``)."""
        rest = self._masked[end:]
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
            if unit and tok.lower() not in _AMBIGUOUS_UNITS:
                return unit, tok, end + m.start(1) + len(tok)
        return "", "", end

    def _quantity(self, m: re.Match[str]) -> Candidate | None:
        num = m.group("num").replace(",", "")
        value = float(num + (m.group("exp") or ""))
        integral = "." not in num and not m.group("exp")
        attached = m.group("attached") or ""
        unit, raw_unit, end = "", "", m.end()
        if attached:
            if self._masked[m.end() : m.end() + 1].isalnum():
                return None  # "12x18": a size or code, not a quantity
            if attached.lower() in _ORDINAL:
                attached = ""
            elif attached == "K":
                unit, raw_unit = "kelvin", "K"
            elif attached in ("k", "bn", "mn") or (attached in ("m", "M") and m.group("cur")):
                value *= _SCALES[attached.lower()]
                attached = ""
            else:
                unit, raw_unit = unit_of(attached), attached
        scale = re.match(r"\s*(thousand|million|billion|trillion|bn)\b", self._masked[end:], re.I)
        if scale:
            value *= _SCALES[scale.group(1).lower()]
            end += scale.end()
        if m.group("sign"):
            value = -value
        percent = bool(m.group("pct"))
        if not unit and not percent:
            unit, raw_unit, end = self._unit_after(end)
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
        following = self._masked[end : end + 30].lower()
        if not m.group("cur") and any(
            re.match(rf"\s*{re.escape(name)}\b", following) for name in _CURRENCIES
        ):
            cand.money = True
        return cand

    def _find_number_lists(self) -> None:
        """Runs like ``85, 90, 88 and 92`` (two or more numbers) become list candidates."""
        quantities = [c for c in self.of_kind("quantity") if not c.weak and not c.unit]
        run: list[Candidate] = []
        for q in [*quantities, None]:  # type: ignore[list-item]
            if (
                q is not None
                and run
                and re.fullmatch(r"\s*(?:,|,?\s*and|,?\s*or)\s*", self.text[run[-1].end : q.start])
            ):
                run.append(q)
                continue
            if len(run) >= 3 or (len(run) == 2 and "," in self.text[run[0].end : run[1].start]):
                self.candidates.append(
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
        for m in _RANGE_WORDS.finditer(self.text):
            parts = tuple(
                c for c in self.of_kind("quantity") if m.start() <= c.start and c.end <= m.end()
            )
            if len(parts) == 2:
                self.candidates.append(
                    Candidate(
                        [p.value for p in parts], parts[0].start, parts[1].end, "range", parts=parts
                    )
                )

    def _find_currencies(self) -> None:
        """Currency names as ISO codes; the one after an amount is the source, the one
        after "in"/"to"/"into" the target."""
        low = self._masked.lower()
        amounts = self.of_kind("quantity")
        for name in sorted(_CURRENCIES, key=len, reverse=True):
            for m in re.finditer(rf"\b{re.escape(name)}\b", low):
                cand = self._add(Candidate(_CURRENCIES[name], m.start(), m.end(), "currency"))
                low = low[: m.start()] + " " * (m.end() - m.start()) + low[m.end() :]
                before = _words_between(self.text, max(0, m.start() - 12), m.start())[-1:]
                if any(
                    q.end <= m.start() and not self.text[q.end : m.start()].strip() for q in amounts
                ):
                    cand.roles.add("from")
                elif set(before) & {"in", "to", "into"}:
                    cand.roles.add("to")

    def _find_names(self) -> None:
        """Capitalised phrases ("New York City", "Treaty of Tordesillas", "Washington D.C.")."""
        tokens = list(_NAME_TOKEN.finditer(self._masked))
        starts = {0} | {m.end() for m in re.finditer(r"[.!?:]\s+|^\s*", self._masked)}
        i = 0
        while i < len(tokens):
            if not self._is_name_token(tokens[i], starts):
                i += 1
                continue
            j = i
            while j + 1 < len(tokens):
                gap = self.text[tokens[j].end() : tokens[j + 1].start()]
                nxt = tokens[j + 1]
                if tokens[j].group().endswith(".") and (
                    not _keeps_period(tokens[j].group()) or nxt.group().lower() in _LEADING_VERBS
                ):
                    break
                if gap.strip() == "" and self._is_name_token(nxt, set()):
                    j += 1
                elif (
                    gap.strip() == ""
                    and nxt.group().lower() in _NAME_JOINERS
                    and j + 2 < len(tokens)
                    and self.text[nxt.end() : tokens[j + 2].start()].strip() == ""
                    and self._is_name_token(tokens[j + 2], set())
                ):
                    j += 2
                else:
                    break
            start, end = tokens[i].start(), tokens[j].end()
            head = _GEO_HEAD.match(self._masked, end) or _VERSION.match(self.text, end)
            if head:
                end = head.end()
            value = self.text[start:end]
            value = re.sub(r"['’]s$", "", value)
            if value.endswith(".") and not _keeps_period(value):
                value = value[:-1]
            self._add(Candidate(value, start, start + len(value), "name"))
            i = j + 1

    def _combine_places(self) -> None:
        """ "Boston, MA" and "Tokyo, Japan": a name, a comma and a region or country name
        also make one candidate (both parts stay candidates too)."""
        names = self.of_kind("name")
        for a, b in itertools.pairwise(names):
            if re.fullmatch(r",\s*", self.text[a.end : b.start]) and _is_region(b.value):
                self.candidates.append(
                    Candidate(f"{a.value}, {b.value}", a.start, b.end, "name", roles={"place"})
                )

    def _is_name_token(self, m: re.Match[str], sentence_starts: set[int]) -> bool:
        tok = m.group()
        if not tok[0].isupper():
            return False
        if m.start() in sentence_starts and not tok.isupper():
            # A request's first word is capitalised anyway: a name only if one follows.
            follower = re.match(r"\s+([A-Z])", self.text[m.end() :])
            if not follower:
                return False
        low = re.sub(r"['’]s$", "", tok.lower()).rstrip(".")
        if unit_of(low) and low not in _AMBIGUOUS_UNITS and len(low) > 2:
            return False
        if low in ("id", "ids", "no", "nos"):
            return False  # "building Id B1004": a label, not a name
        if low == "the" and tok == "The":
            follower = re.match(r"\s+([A-Z])", self.text[m.end() :])
            return bool(follower) and m.start() not in sentence_starts
        if m.start() in sentence_starts and (low in _LEADING_VERBS or low in STOPWORDS):
            return False
        return low not in STOPWORDS or (tok.isupper() and len(tok) > 1 and low not in {"i"})

    def _find_lexicon_words(self) -> None:
        for m in re.finditer(r"[A-Za-z]+", self._masked):
            if m.group().lower() in _COLORS:
                self._add(Candidate(m.group(), m.start(), m.end(), "color"))

    def _find_units(self) -> None:
        """Unit words not attached to a number: "in km/h", "how many ounces"."""
        for m in re.finditer(r"[A-Za-zµ°][\w/^²³°]*", self._masked):
            tok = m.group()
            unit = unit_of(tok)
            if unit and tok.lower() not in _AMBIGUOUS_UNITS:
                before = _words_between(self.text, max(0, m.start() - 12), m.start())[-1:]
                roles = {"to"} if set(before) & {"in", "into", "to"} else set()
                self._add(Candidate(tok, m.start(), m.end(), "unit", unit=unit, roles=roles))
        for q in self.of_kind("quantity"):
            if q.raw_unit and q.unit and q.raw_unit != "rest" and not q.unit.startswith("clock_"):
                start = self.text.rfind(q.raw_unit, q.start, q.end)
                self.candidates.append(
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

    def _find_hyphen_modifiers(self) -> None:
        """ "gas-powered": "gas", announced by the word after the hyphen."""
        for m in re.finditer(r"\b([A-Za-z]+)-([a-z]+)\b", self._masked):
            cand = Candidate(m.group(1), m.start(1), m.end(1), "phrase", sub=True)
            self._context(cand)
            if cand.right[:1] != (m.group(2).lower(),):
                cand.right = (m.group(2).lower(), *cand.right)
            self.candidates.append(cand)

    def _find_phrases(self) -> None:
        """Plain noun phrases left over ("small green bird", "theft"), a last resort.

        Each run of content words is a candidate, and so is each part of it that ends
        before its last word ("small green", "green": announced by "bird"), and two runs
        joined by "of" ("theory of evolution"). Verbs in -ed at the edges of a run
        ("discovered radium") are left out. A phrase's left context stops at the previous
        phrase, whose words are its own.
        """
        runs = self._phrase_runs()
        previous_end = 0
        for run in runs:
            start, end = run[0].start(), run[-1].end()
            cand = self._phrase(start, end, previous_end)
            for first in range(max(0, len(run) - 4), len(run) - 1):
                # "human cell": "human" is announced by the word after it.
                modifier = self._phrase(run[first].start(), run[-2].end(), previous_end)
                modifier.right = (run[-1].group().lower(), *cand.right)
                modifier.sub = True
            previous_end = end
        self._mark_pairs([c for c in self.of_kind("phrase") if not c.sub])
        for a, b in itertools.pairwise(runs):
            if re.fullmatch(r"\s+of\s+(?:the\s+)?", self.text[a[-1].end() : b[0].start()]):
                before = max((r[-1].end() for r in runs if r[-1].end() <= a[0].start()), default=0)
                self._phrase(a[0].start(), b[-1].end(), before).sub = True

    def _phrase_runs(self) -> list[list[re.Match[str]]]:
        masked = self._masked
        skip = STOPWORDS | _LEADING_VERBS | _ALL_ROLE_PREPS | _CONNECTORS | _PREPOSITIONS
        runs: list[list[re.Match[str]]] = []
        run: list[re.Match[str]] = []
        for m in [*list(re.finditer(r"[A-Za-z][A-Za-z'-]*|[^\sA-Za-z]+", masked)), None]:  # type: ignore[list-item]
            ok = m is not None and m.group()[0].isalpha() and m.group().lower() not in skip
            if ok and run and self.text[run[-1].end() : m.start()].strip() == "":
                run.append(m)
                continue
            while len(run) > 1 and _is_verb_form(run[0].group()):
                run.pop(0)
            while len(run) > 1 and _is_verb_form(run[-1].group()):
                run.pop()
            if run and (len(run) > 1 or len(run[0].group()) > 1):
                runs.append(run)
            run = [m] if ok else []
        return runs

    def _phrase(self, start: int, end: int, previous_end: int) -> Candidate:
        cand = Candidate(self._masked[start:end], start, end, "phrase")
        self._context(cand)
        self.candidates.append(cand)
        return cand

    # -- contexts

    def _set_contexts(self) -> None:
        for cand in self.candidates:
            if not cand.left:
                self._context(cand)
        self._pair_roles()

    def _pair_roles(self) -> None:
        """ "between A and B" makes A a start and B an end; in ``'key': 'value'`` the key
        announces the value."""
        ordered = sorted(
            (c for c in self.candidates if c.kind not in ("phrase", "unit")), key=lambda c: c.start
        )
        self._mark_pairs([c for c in ordered if c.kind in ("name", "quoted")])
        starts = [c.start for c in ordered]
        for a in ordered:
            for b in ordered[bisect.bisect_left(starts, a.end) :]:
                if b.start - a.end > 40:
                    break
                gap = self.text[a.end : b.start]
                if a.left[-1:] == ("between",) and re.fullmatch(r"\s*,?\s*and\s*", gap):
                    a.roles.add("from")
                    b.roles.add("to")
                if a.kind in ("quoted", "ident", "name") and re.fullmatch(r"\s*[:=]\s*", gap):
                    b.left = (*words(str(a.value)), ":")
                if re.fullmatch(r"\s*,?\s*and\s*", gap) and a.kind == b.kind:
                    self._respectively(a, b)

    def _mark_pairs(self, ordered: Sequence[Candidate]) -> None:
        """ "a human and a chimp": the first and second of a pair (for ``species1/2``)."""
        for a, b in itertools.pairwise(ordered):
            gap = self.text[a.end : b.start]
            if a.kind == b.kind and re.fullmatch(r"\s*,?\s+and\s+(?:(?:an?|the)\s+)?", gap):
                a.roles.add("first")
                b.roles.add("second")

    def _respectively(self, a: Candidate, b: Candidate) -> None:
        """ "base and height as 6 and 10": each value is announced by its own word."""
        m = re.search(
            r"\b([A-Za-z]+)\s+and\s+([A-Za-z]+)\s+(?:as|are|is|of|were|be|equal to|=|:)\s*$",
            self.text[: a.start],
        )
        if m:
            a.left = (m.group(1).lower(), "of")
            b.left = (m.group(2).lower(), "of")

    def _bounds(self) -> tuple[list[int], list[int]]:
        """Sorted ends and starts of the values that end a context (cached)."""
        key = (len(self.candidates), id(self.candidates[-1]) if self.candidates else 0)
        if self._bounds_key != key:
            solid = [c for c in self.candidates if c.kind not in ("phrase", "unit")]
            self._ends = sorted(c.end for c in solid)
            self._starts = sorted(c.start for c in solid)
            self._bounds_key = key
        return self._ends, self._starts

    def _context(self, cand: Candidate) -> None:
        """Words before (back to punctuation or another value) and after a candidate."""
        ends, starts = self._bounds()
        before = bisect.bisect_right(ends, cand.start)
        after_value = before > 0 and ends[before - 1] >= cand.start - _CONTEXT_CHARS
        lo = max(ends[before - 1] if before else 0, cand.start - _CONTEXT_CHARS, 0)
        for m in _CLAUSE_BREAK.finditer(self.text, lo, cand.start):
            apposition = m.group() in ",:" and self.text[m.start() - 1 : m.start()].isalpha()
            if apposition and not after_value:
                continue  # "a Tennis player, Serena Williams": the comma does not end it
            lo = max(lo, m.end())
            after_value = False
        left = _words_between(self.text, lo, cand.start)
        if (
            after_value
            and len(left) >= 2
            and left[-1] in _PREPOSITIONS | _ALL_ROLE_PREPS | {"for"}
            and not set(left) & {"and", "of", "is", "=", "as", "with"}
        ):
            # "5% annual yield after 3 years": the words describe the previous value.
            left = left[-1:]
        elif after_value and "and" in left[1:]:
            # "180 hits and 600 at-bats": "hits" belongs to 180.
            left = left[len(left) - left[::-1].index("and") :]
        following = bisect.bisect_left(starts, cand.end)
        hi = min(
            starts[following] if following < len(starts) else len(self.text),
            cand.end + _CONTEXT_CHARS,
        )
        brk = _CLAUSE_BREAK.search(self.text, cand.end, hi)
        if brk:
            hi = brk.start()
        right = _words_between(self.text, cand.end, hi)
        cand.left = tuple(left[-6:]) + cand.left
        cand.right = cand.right + tuple(right[:3])


def _is_verb_form(word: str) -> bool:
    """A past participle such as "discovered" or "published" (not "speed", "red")."""
    w = word.lower()
    return len(w) > 4 and w.endswith("ed") and w[-3] != "e"


_CONTEXT_CHARS = 80
"""How far around a value its context words are looked for."""


def _keeps_period(value: str) -> bool:
    last = value.split()[-1]
    core = last.rstrip(".")
    return "." in core or core.lower() in _ABBREVIATIONS or (len(core) == 1 and core.isupper())


def _is_identifier(tok: str) -> bool:
    """Ids, codes, paths, file names, snake_case words - not numbers with units."""
    if not re.search(r"[A-Za-z]", tok) or len(tok) < 2:
        return False
    if re.fullmatch(r"-?\$?\d[\d,.]*[A-Za-zµ°]{1,3}", tok):
        return False
    if re.fullmatch(r"-?\$?\d[\d,.]*(?:[eE][-+]?\d+)?[A-Za-zµ°²³/^]*\d?%?", tok):
        tail = re.sub(r"^-?\$?[\d,.]+(?:[eE][-+]?\d+)?", "", tok)
        if not tail or tail.lower() in _ORDINAL or unit_of(tail) or tail.lower() in _SCALES:
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


# ------------------------------------------------------------------ parameters

_ID_WORDS: frozenset[str] = frozenset(
    "id ids identifier code number no docket case dataset path file data sequence sku isbn "
    "ticker symbol username handle key".split()
)
_UNIT_SLOT_WORDS: frozenset[str] = frozenset({"unit", "units", "measure", "measurement"})
_FORMULA_WORDS: frozenset[str] = frozenset(
    {"function", "equation", "polynomial", "formula", "expression"}
)
_FREE_TEXT_WORDS: frozenset[str] = frozenset(
    "query q text body message content input question prompt search keywords note fact "
    "memory description comment review".split()
)
_BOOL_PREFIXES: frozenset[str] = frozenset(
    "include includes is has have with want use allow show get return enable only should "
    "need consider apply accept accepts set do does add display fetch retrieve provide "
    "as for in of the to".split()
)
EVIDENCE = 1.5
"""Score an optional argument's value needs: the request must *mention* the argument."""
_DISTANCE_WEIGHTS = (1.0, 0.85, 0.7, 0.55, 0.45, 0.35)
_PHRASE_DISTANCE_WEIGHTS = (1.0, 0.85, 0.4, 0.25, 0.15, 0.1)
"""A plain phrase is announced by the words right before it ("medium to oil"); further
back they usually describe another phrase."""


_NAME_FILLERS: frozenset[str] = frozenset({"of", "the", "a", "an", "to", "for", "in", "and", "is"})
"""Words of a parameter name that announce nothing ("number_of_rolls")."""


def _name_words(name: str) -> list[str]:
    """Words of a parameter name: ``num_trials`` -> num, trials; ``number1`` -> number."""
    return [w for w in re.findall(r"[a-z]+", " ".join(words(name))) if w]


@dataclass
class Slot:
    """One parameter of the tool and what announces its value in a request."""

    name: str
    schema: dict[str, Any]
    required: bool
    kind: str
    """expression, email, emails, timezone, enum, integer, number, boolean, string,
    array or object."""
    index: int
    cues: dict[str, float] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)
    name_stems: set[str] = field(default_factory=set)
    options: list[Any] = field(default_factory=list)
    """Enum values, or the 2+ quoted choices a description lists ("'metric' or 'imperial'")."""
    examples: set[str] = field(default_factory=set)
    """Lower-cased examples the description gives ("e.g. vegan, gluten-free")."""
    sibling_words: set[str] = field(default_factory=set)
    """Name words of the tool's other parameters."""
    item_kind: str = ""
    parent: str = ""
    """For a property of an object parameter: the parameter's name."""

    @property
    def key(self) -> str:
        """Unique among a tool's slots: ``parent.child`` for nested properties."""
        return f"{self.parent}.{self.name}" if self.parent else self.name

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or "")

    @property
    def words(self) -> set[str]:
        return set(_name_words(self.name))

    def has(self, vocabulary: Iterable[str]) -> bool:
        """Whether the parameter's name uses one of these words."""
        return bool(self.words & set(vocabulary))

    @property
    def indexed(self) -> bool:
        """One of a numbered series (``num1``/``num2``, ``dataset_A``, ``first_x``)."""
        return bool(
            re.search(r"(?:\d|_[A-Za-z])$", self.name)
            or self.has({"first", "second", "one", "two"})
        )

    @property
    def ordinal(self) -> str:
        """ "first" for ``species1``/``dataset_A``/``first_name``..., "second" for the next."""
        tail = re.search(r"(\d|_[A-Za-z])$", self.name)
        mark = tail.group(1).lstrip("_").lower() if tail else ""
        if mark in ("1", "a") or self.has({"first", "one"}):
            return "first"
        if mark in ("2", "b") or self.has({"second", "two"}):
            return "second"
        return ""

    @property
    def is_date(self) -> bool:
        return self.kind == "string" and (
            self.has({"date", "birthday", "dob"})
            or (
                bool(re.search(r"\b(yyyy[-/]mm|mm[-/]dd|dd[-/]mm|date)\b", self.description, re.I))
                and not self.has({"time", "name", "event", "format", "type", "info"})
            )
        )

    @property
    def wants_city_state(self) -> bool:
        """The description asks for "City, State" ("e.g. Boston, MA")."""
        return bool(
            re.search(r"city,? (?:and )?state|\b[A-Z][a-z]+, [A-Z]{2}\b", self.description, re.I)
            and not re.search(r"country|, UK\b", self.description)
        )

    @property
    def is_free_text(self) -> bool:
        """A query, message or text: a quoted string, or else the rest of the request."""
        return self.kind == "string" and self.has(_FREE_TEXT_WORDS) and not self.roles

    @property
    def is_unit(self) -> bool:
        return self.has(_UNIT_SLOT_WORDS)

    @property
    def is_identifier(self) -> bool:
        return self.has(_ID_WORDS)

    @property
    def is_formula(self) -> bool:
        return self.has(_FORMULA_WORDS)


def _slot_kind(name: str, schema: Mapping[str, Any]) -> str:
    kind = param_kind(name, schema)
    if kind != "other":
        return kind
    types = _types(schema)
    if "array" in types:
        return "array"
    if "object" in types:
        return "object"
    return "string"


def _item_kind(schema: Mapping[str, Any]) -> str:
    items = schema.get("items") or {}
    if enum_values(items):
        return "enum"
    types = _types(items)
    for t in ("integer", "number", "array", "object", "boolean"):
        if t in types:
            return t
    return "string"


def _description_units(text: str) -> set[str]:
    text = re.sub(
        r"\b(?:e\.g|i\.e|etc)\b\.?|\b[ymd]{2,4}(?:[-/][ymd]{2,4})+\b", " ", text, flags=re.I
    )
    text = re.sub(r"light[\s-]years?", "light_year", text, flags=re.I)
    text = re.sub(r"(\w+)\s+per\s+(\w+)", r"\1/\2", text)  # "miles per gallon"
    text = re.sub(r"\b(?:per|a|each|every)\s+\w+", " ", text)
    found = set()
    for m in re.finditer(r"(square|cubic)\s+([A-Za-z]+)", text, re.I):
        base = unit_of(m.group(2))
        if base:
            found.add(f"{m.group(1).lower()}_{base}")
    for tok in re.findall(r"[A-Za-zµ°_][\w/^²³°]*", text):
        unit = unit_of(tok) or ("light_year" if tok == "light_year" else "")
        if unit and unit != "unit" and (tok.lower() not in _AMBIGUOUS_UNITS or tok in ("A", "V")):
            found.add(unit)
    return found


_EXAMPLES = re.compile(
    r"(?:\be\.g\.|\beg\.|\bi\.e\.|\bsuch as|\bfor example|\bfor instance|\blike|\boptions:?|"
    r"\bcan be|\bcould be|\beither)\s*[:,]?\s*([^.;()]+)",
    re.IGNORECASE,
)


def description_examples(description: str) -> set[str]:
    """Example values a description lists: "e.g. vegan, gluten-free" -> {vegan, gluten-free}."""
    found: set[str] = set()
    for m in _EXAMPLES.finditer(description):
        for part in re.split(r",|\bor\b|\band\b|\betc\b", m.group(1)):
            value = part.strip().strip("'\"").strip().lower()
            if value and len(value.split()) <= 3:
                found.add(value)
    found |= {q.value.lower() for q in find_quoted(description)}
    return found


def build_slots(tool: ToolSpec) -> list[Slot]:
    """One :class:`Slot` per parameter, with cue words weighted by how distinctive they are."""
    required = set(tool.required)
    slots = []
    for index, (name, schema) in enumerate(tool.properties.items()):
        slot = Slot(name, dict(schema), name in required, _slot_kind(name, schema), index)
        slot.item_kind = _item_kind(schema) if slot.kind == "array" else ""
        slot.options = enum_values(schema)
        if not slot.options and slot.kind == "string":
            quoted = [q.value for q in find_quoted(slot.description)]
            if len(set(quoted)) >= 2:
                slot.options = list(dict.fromkeys(quoted))
        name_words = [w for w in _name_words(name) if w not in _NAME_FILLERS] or _name_words(name)
        slot.name_stems = {stem(w) for w in name_words}
        for w in name_words:
            slot.cues[stem(w)] = 3.0
            for syn in _NAME_SYNONYMS.get(w, "").split():
                slot.cues.setdefault(stem(syn), 2.0)
        for w in words(slot.description):
            if w not in STOPWORDS and w not in _GENERIC_DESCRIPTION_WORDS and not w.isdigit():
                slot.cues.setdefault(stem(w), 1.0)
        for role, (carriers, _) in _ROLES.items():
            if set(name_words) & carriers:
                slot.roles.add(role)
        if not slot.roles:
            first_words = set(words(slot.description)[:6]) - {"to", "from", "by", "in"}
            for role, (carriers, _) in _ROLES.items():
                if first_words & carriers and role in ("from", "to", "in"):
                    slot.roles.add(role)
        if slot.roles & {"from", "to"}:
            slot.roles.discard("in")
        slot.units = _description_units(" ".join(name_words) + " " + slot.description)
        slot.examples = description_examples(slot.description)
        slots.append(slot)
    for slot in slots:
        slot.sibling_words = {w for other in slots if other is not slot for w in other.words}
    # A cue shared by many parameters tells them apart less.
    counts: dict[str, int] = {}
    for slot in slots:
        for cue in slot.cues:
            counts[cue] = counts.get(cue, 0) + 1
    for slot in slots:
        for cue in slot.cues:
            if counts[cue] > 1 and cue not in slot.name_stems:
                slot.cues[cue] /= counts[cue]
    return slots


# -------------------------------------------------------------------- scoring
#
# Every scorer returns a Fit: ``score`` ranks candidates for a slot; ``evidence`` is the
# part of it that says the request *mentions* this argument (its name next to the value,
# a preposition of its role, a matching unit or option). Optional arguments need
# evidence; required ones take the best candidate there is.


@dataclass(frozen=True)
class Fit:
    """How well a candidate fits a slot."""

    score: float
    evidence: float


OPTIONAL_PENALTY = 0.6
"""Optional arguments are less often meant: they lose close calls to required ones."""
ROLE_WEIGHT = 2.5
"""A preposition of the slot's role right before the value ("from Paris" -> origin)."""


def _cue_match(slot: Slot, word: str, before: str | None) -> float:
    """Weight of ``word`` as a cue for ``slot``; one-letter names ("a", "x") need ``=``."""
    s = stem(word)
    weight = slot.cues.get(s, 0.0)
    if not weight and len(s) >= 5:
        weight = max(
            (
                w * 0.6
                for c, w in slot.cues.items()
                if len(c) >= 5 and c.startswith(s[:5]) and s.startswith(c[:5])
            ),
            default=0.0,
        )
    if not weight and len(s) >= 4:
        # "user" announces "username"
        weight = max(
            (
                0.8 * slot.cues[c]
                for c in slot.name_stems
                if c.startswith(s) and len(c) - len(s) >= 3
            ),
            default=0.0,
        )
    if weight and len(word) == 1 and before not in ("=", ":", "is", "equals", "as", "of"):
        return 0.0
    if weight and word in STOPWORDS and len(word) > 1 and s not in slot.name_stems:
        return 0.0
    return weight


def context_score(slot: Slot, cand: Candidate) -> Fit:
    """How strongly the words around ``cand`` announce ``slot``.

    Words before the value count more the nearer they are; the first words after it
    count too ("3 bedrooms"), except for numbered slots (``num1``), where they name what
    is counted ("two numbers") rather than the value.
    """
    score = evidence = 0.0
    seen: set[str] = set()
    left = list(cand.left)
    decay = _PHRASE_DISTANCE_WEIGHTS if cand.kind == "phrase" else _DISTANCE_WEIGHTS
    for distance, word in enumerate(reversed(left[-len(decay) :])):
        nearer = left[len(left) - distance] if distance else None
        weight = _cue_match(slot, word, nearer)
        if weight and stem(word) not in seen:
            seen.add(stem(word))
            score += weight * decay[distance]
            if weight >= 2.0:
                evidence += weight * decay[distance]
    if slot.ordinal and slot.ordinal in cand.roles:
        score, evidence = score + 1.5, evidence + 1.5
    preps = set(left[-2:]) | cand.roles
    for role in slot.roles:
        if preps & _ROLES[role][1] or role in cand.roles:
            weak = preps & _ROLES[role][1] <= {"at", "within", "on"} and role not in cand.roles
            weight = ROLE_WEIGHT * (0.7 if weak else 1.0)
            score += weight
            evidence += weight
            break
    if not slot.indexed:
        for distance, word in enumerate(cand.right[:2]):
            weight = _cue_match(slot, word, None)
            if weight and stem(word) not in seen and word not in STOPWORDS:
                seen.add(stem(word))
                score += weight * (0.6, 0.3)[distance]
                if weight >= 2.0:
                    evidence += weight * (0.6, 0.3)[distance]
    return Fit(score, evidence)


def _slot_number(slot: Slot, cand: Candidate) -> int | float | None:
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
        for i, w in enumerate(_name_words(slot.name))
        if _name_words(slot.name)[i - 1 : i] != ["per"]
    }
    if cand.unit in slot.units or measured & {cand.unit, cand.unit + "s"}:
        return 2.5
    if any(unit_dimension(cand.unit) == unit_dimension(u) for u in slot.units):
        return 1.5
    return -1.5 if slot.units else 0.0


def _score_quantity(slot: Slot, cand: Candidate) -> Fit | None:
    if cand.kind != "quantity" or _slot_number(slot, cand) is None:
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
            and not any(_cue_match(slot, w, None) for w in cand.right[:3] if w not in STOPWORDS)
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
        or (bool(cand.unit) and slot.has(_DURATION_WORDS)),
    }
    if kind in special:
        if not special[kind]:
            return (-0.5, 0.0) if kind == "color" else None
        if kind == "quantity":
            year = cand.integral and 1000 <= float(cand.value) <= 2100
            if cand.unit and slot.has(_DURATION_WORDS):
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
    if slot.roles or slot.has(_NAME_SLOT_WORDS):
        score += 0.5
    wants_region = slot.has({"country", "state", "nation", "region"})
    if "place" in cand.roles:
        if wants_region or slot.sibling_words & {"country", "state", "region"}:
            return None
        score += 0.6 if "in" in slot.roles else 0.0
        if re.search(r"city,? (?:and )?state|, [A-Z]{2}\b|state", slot.description, re.I):
            score += 1.5
    if wants_region:
        if _is_region(str(cand.value)):
            score, evidence = score + 1.5, evidence + 1.5
        else:
            score -= 0.5
    return score, evidence


_DURATION_WORDS: frozenset[str] = frozenset(
    "duration period timeframe frame time length span interval".split()
)
_NAME_SLOT_WORDS: frozenset[str] = frozenset(
    "name title artist author team player company person actor brand maker city country "
    "location place event".split()
)


def _score_text(slot: Slot, cand: Candidate) -> Fit | None:
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


def _score_array(slot: Slot, cand: Candidate) -> Fit | None:
    if cand.kind not in ("list", "range", "name_list"):
        return None
    values = (
        cand.value
        if cand.kind == "list" or cand.kind == "name_list"
        else [p.value for p in cand.parts]
    )
    if not isinstance(values, list) or not values:
        return None
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    nested = all(isinstance(v, list) for v in values)
    if slot.item_kind in ("integer", "number") and not numeric:
        return None
    if slot.item_kind == "array" and not nested:
        return None
    if slot.item_kind in ("string", "enum") and (numeric or nested) and cand.kind != "list":
        return None
    fit = context_score(slot, cand)
    score, evidence = fit.score + 1.0, fit.evidence
    if cand.kind == "range":
        ranged = re.search(
            r"\b(interval|range|limits?|bounds?|between|start|end|from)\b", slot.description, re.I
        )
        score += 2.0 if ranged else -2.0
        evidence += 2.0 if ranged else 0.0
    if cand.kind == "list":
        evidence += 1.0
    if cand.kind == "name_list" and all(p.kind == "phrase" for p in cand.parts):
        score -= 1.5
        evidence = 0.0
    if cand.kind == "name_list" and slot.examples:
        hits = sum(1 for v in values if str(v).lower() in slot.examples)
        score, evidence = score + 1.5 * hits, evidence + 1.5 * hits
    return Fit(score, evidence)


def _score(slot: Slot, cand: Candidate) -> Fit | None:
    if slot.kind in ("integer", "number"):
        return _score_quantity(slot, cand)
    if slot.kind in ("string", "timezone"):
        return _score_text(slot, cand)
    if slot.kind == "array":
        return _score_array(slot, cand)
    return None


# ----------------------------------------------------------------- assignment


def _conflict(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates share text (a unit may go with the number it follows)."""
    if {a.kind, b.kind} in ({"unit", "quantity"}, {"enum", "quantity"}):
        return False
    return a.start < b.end and b.start < a.end


def _assign(
    slots: Sequence[Slot], pool: Sequence[Candidate], used: list[Candidate]
) -> dict[str, Candidate]:
    """Pair slots with candidates, best score first, each candidate (and its text) once.

    Ties go to the pairing that keeps the order of the parameters and of the values.
    Optional slots take only values with :data:`EVIDENCE` that they are meant.
    """
    fits = {
        (slot.key, id(cand)): fit
        for slot in slots
        for cand in pool
        if (fit := _score(slot, cand)) is not None
    }
    rivals: dict[int, list[str]] = {}  # candidate -> slots it fits, in parameter order
    for slot in slots:
        for cand in pool:
            if (slot.key, id(cand)) in fits:
                rivals.setdefault(id(cand), []).append(slot.key)
    pairs = []
    for slot in slots:
        mine = [c for c in pool if (slot.key, id(c)) in fits]
        kinds: dict[str, list[int]] = {}  # kind -> ids of the slot's candidates of that kind
        for cand in mine:
            kinds.setdefault(cand.kind, []).append(id(cand))
        rank = {i: n / len(ids) for ids in kinds.values() for n, i in enumerate(ids)}
        for cand in mine:
            fit = fits[(slot.key, id(cand))]
            if not slot.required and fit.evidence < EVIDENCE:
                continue
            score = fit.score - (0.0 if slot.required else OPTIONAL_PENALTY)
            # Ties: keep the order of the parameters and of the values of this kind.
            others = rivals[id(cand)]
            order = abs(others.index(slot.key) / len(others) - rank[id(cand)])
            # A list of several values is what an array parameter is for: settle those first.
            several = slot.kind == "array" and isinstance(cand.value, list) and len(cand.value) > 1
            pairs.append(
                (
                    0 if several else 1,
                    -score,
                    not slot.required,
                    order,
                    slot.index,
                    cand.start,
                    slot,
                    cand,
                )
            )
    pairs.sort(key=lambda p: p[:6])
    chosen: dict[str, Candidate] = {}
    for *_, slot, cand in pairs:
        if len(chosen) == len(slots):
            break
        if slot.key in chosen or any(_conflict(cand, u) for u in used):
            continue
        chosen[slot.key] = cand
        used.append(cand)
    return chosen


# ------------------------------------------------------------------- values


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
        code = _US_CITIES.get(value.lower())
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
        return _slot_number(slot, cand)
    if slot.kind == "array":
        return _array_value(slot, cand)
    return _text_value(slot, cand)


def _enum_choice(slot: Slot, request: Request) -> Any:
    """The enum value the request mentions; for a required slot the default or the first."""
    mentions = _enum_mentions(request.text, slot.options)
    if mentions:
        return mentions[0][2]
    if not slot.required:
        return None
    default = re.search(
        r"default(?:s)?(?: value)?(?: is| to)?\s*[:=]?\s*'?\"?([\w -]+)", slot.description, re.I
    )
    if default:
        for option in slot.options:
            if str(option).lower() == default.group(1).strip().lower():
                return option
    return slot.options[0] if slot.options else None


def _bool_key(slot: Slot) -> list[str]:
    ws = [w for w in _name_words(slot.name) if w not in _BOOL_PREFIXES]
    return ws or _name_words(slot.name)


def _boolean_choice(slot: Slot, request: Request) -> bool | None:
    """True when the request mentions what the flag is about, False when it negates it."""
    text = request.text.lower()
    compact = re.sub(r"[^a-z0-9]", "", text)
    key = _bool_key(slot)
    tokens = [(m.start(), m.group()) for m in re.finditer(r"[a-z0-9']+", text)]
    stems = [stem(t) for _, t in tokens]

    def found(word: str) -> int | None:
        s = stem(word)
        for i, st in enumerate(stems):
            if st == s or (len(s) >= 4 and len(st) >= 4 and (st.startswith(s) or s.startswith(st))):
                return i
        return None

    hits = [found(w) for w in key]
    mentioned = all(h is not None for h in hits) or "".join(key) in compact
    if not mentioned and not any(h is not None for h in hits):
        return True if slot.required else None
    if not mentioned:
        return True if slot.required else None
    first = min((h for h in hits if h is not None), default=None)
    if first is not None:
        before = [t for _, t in tokens[max(0, first - 3) : first]]
        if any(b in _NEGATIONS for b in before) and "avoid" not in key:
            return False
    return True


def _string_lists(request: Request) -> list[Candidate]:
    """Runs of names, quoted strings or phrases joined by commas / "and" as list candidates."""
    lists: list[Candidate] = []
    items = [c for c in request.of_kind("quoted", "name", "phrase", "ident") if not c.sub]
    lists += [
        Candidate([c.value], c.start, c.end, "name_list", left=c.left, right=c.right, parts=(c,))
        for c in request.of_kind("phrase")
        if c.sub
    ]
    run: list[Candidate] = []
    for item in [*items, None]:  # type: ignore[list-item]
        if (
            item is not None
            and run
            and re.fullmatch(
                r"\s*(?:,|,?\s*and|,?\s*or|&)\s*(?:(?:the|a|an)\s+)?",
                request.text[run[-1].end : item.start],
            )
            and item.kind == run[-1].kind
        ):
            run.append(item)
            continue
        if len(run) >= 2:
            lists.append(
                Candidate(
                    [c.value for c in run],
                    run[0].start,
                    run[-1].end,
                    "name_list",
                    left=run[0].left,
                    right=run[-1].right,
                    parts=tuple(run),
                )
            )
        if len(run) == 1:
            lists.append(
                Candidate(
                    [run[0].value],
                    run[0].start,
                    run[0].end,
                    "name_list",
                    left=run[0].left,
                    right=run[0].right,
                    parts=tuple(run),
                )
            )
        run = [item] if item is not None else []
    return lists


def _mention(mention: tuple[int, int, Any]) -> Candidate:
    """The text an enum value was found at, so no other argument reuses it."""
    _, position, value = mention
    return Candidate(value, position, position + len(str(value)), "enum")


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
    _fill_mentioned(request, every, used, args)
    open_slots = [
        s
        for s in every
        if s.key not in args and s.kind in ("integer", "number", "string", "timezone", "array")
    ]
    pool = [c for c in request.candidates if c.kind not in ("email", "expression")] + _string_lists(
        request
    )
    chosen = _assign(open_slots, pool, used)
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
                if c not in used and (c.kind == "email" or _EMAIL.fullmatch(str(c.value)))
            ]
            if emails:
                args[slot.key] = (
                    [e.value for e in emails] if slot.kind == "emails" else emails[0].value
                )
                used.extend(emails if slot.kind == "emails" else emails[:1])


def _fill_mentioned(
    request: Request, slots: Sequence[Slot], used: list[Candidate], args: dict[str, Any]
) -> None:
    """Enum values and listed options the request names, and booleans."""
    for slot in slots:
        if slot.kind == "string" and slot.options:
            mentions = _enum_mentions(request.text, slot.options)
            if len({m[2] for m in mentions}) == 1:  # several: leave it to the assignment
                args[slot.key] = mentions[0][2]
                used.append(_mention(mentions[0]))
        elif slot.kind == "enum":
            choice = _enum_choice(slot, request)
            if choice is not None:
                args[slot.key] = choice
                mention = next(
                    (m for m in _enum_mentions(request.text, slot.options) if m[2] == choice), None
                )
                if mention:
                    used.append(_mention(mention))
        elif slot.kind == "array" and slot.item_kind == "enum":
            items = enum_values(slot.schema.get("items") or {})
            mentioned = sorted(_enum_mentions(request.text, items), key=lambda m: m[1])
            if mentioned:
                args[slot.key] = [m[2] for m in mentioned]
        elif slot.kind == "boolean":
            choice = _boolean_choice(slot, request)
            if choice is not None:
                args[slot.key] = choice


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


def fill_arguments(text: str, tool: ToolSpec) -> dict[str, Any]:
    """Fill the tool's arguments from ``text``; arguments that can't be filled are omitted.

    Schema defaults are never used. See the comment at the top of this section for how
    values are found and matched to parameters.
    """
    request = Request(text)
    slots = build_slots(tool)
    used: list[Candidate] = []
    if any(s.kind == "expression" for s in slots):
        _add_expression(request, text)
    args = _fill(request, slots, used)
    _fill_free_text(request, tool, slots, args, used)
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


def _fill_free_text(
    request: Request,
    tool: ToolSpec,
    slots: Sequence[Slot],
    args: dict[str, Any],
    used: list[Candidate],
) -> None:
    """One free-text argument (a query, a message body) gets what is left of the request;
    a required short field (an email subject) gets its first words."""
    remaining = [s.name for s in slots if s.kind == "string" and s.name not in args]
    if not remaining:
        return
    required = {s.name for s in slots if s.required}
    texty = [n for n in remaining if set(_name_words(n)) & (_FREE_TEXT_WORDS | _SHORT_TEXT_NAMES)]
    if not texty and not any(n in required for n in remaining):
        return
    triggers = {t for t in tool.profile if not t.startswith("#")}
    for term in tool.profile:
        if term.startswith("#"):
            triggers |= CONCEPTS.get(term[1:], frozenset())
    numbers_used = any(c.kind in ("quantity", "expression") for c in used)
    consumed = [Span(str(c.value), c.start, c.end) for c in used] + [
        Span(c.value, c.start, c.end) for c in request.of_kind("quoted")
    ]
    free = _free_text(request.text, consumed, triggers, strip_numbers=numbers_used)

    def rank(n: str) -> tuple[int, int]:
        ws = words(n)
        pref = min(
            (_FREE_TEXT_NAMES.index(w) for w in ws if w in _FREE_TEXT_NAMES),
            default=len(_FREE_TEXT_NAMES),
        )
        return (pref, 0 if n in required else 1)

    candidates = texty or [n for n in remaining if n in required]
    target = min(
        (n for n in candidates if not set(words(n)) & _SHORT_TEXT_NAMES), key=rank, default=None
    ) or min(candidates, key=rank)
    if free:
        args[target] = free
    elif target in required:
        args[target] = request.text.strip()
    source = args.get(target, "")
    for name in remaining:
        if name not in args and name in required and set(words(name)) & _SHORT_TEXT_NAMES:
            short = " ".join(str(source).split()[:8])
            if short:
                args[name] = short[0].upper() + short[1:]


# ------------------------------------------------------------------------- facts

_MULTI_KEYS = frozenset({"like", "love", "enjoy", "prefer", "hate", "dislike", "not like", "note"})
_KEY_TERMS: dict[str, set[str]] = {
    "name": {"name"},
    "age": {"age", "old"},
    "live": {"live", "home"},
    "work": {"work", "job"},
    "identity": {"identity"},
}
_QUESTION_SYNONYMS: dict[str, str] = {
    "called": "name", "call": "name", "named": "name", "who": "identity",
    "old": "age", "born": "age", "enjoy": "like", "love": "like", "favorite": "like",
    "favourite": "like", "fan": "like", "where": "live", "from": "live", "job": "work",
    "prefer": "prefer", "preference": "prefer",
}  # fmt: skip
_FACT_STOP = frozenset(
    """
    a an the is are am was were be it its what whats what's which do does did can could
    would you your my me i mine tell remind know remember please again so of to that
    s t m
    """.split()
)
_QUESTION_START = frozenset(
    """
    what what's whats who whom whose where when which why how do does did is are am can
    could would will tell remind
    """.split()
)
_PRONOUNS: dict[str, str] = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "am": "are", "i'm": "you're", "im": "you're", "i've": "you've", "i'll": "you'll",
    "i'd": "you'd", "was": "were",
}  # fmt: skip


@dataclass(frozen=True)
class Fact:
    """Something the user told us, kept as a key (what it is about) and a sentence."""

    key: str
    value: str
    sentence: str
    """Second-person sentence without final punctuation, e.g. ``your name is Ada``."""

    @property
    def key_terms(self) -> set[str]:
        """Stems that identify what the fact is about."""
        if self.key == "note":
            return self.value_terms
        base = _KEY_TERMS.get(self.key)
        if base is not None:
            return set(base)
        if self.key in _MULTI_KEYS:
            return {"like" if self.key in ("love", "enjoy") else self.key.split()[-1]}
        return {stem(w) for w in words(self.key) if w not in _FACT_STOP} or {self.key}

    @property
    def value_terms(self) -> set[str]:
        """Stems of the fact's value."""
        return {stem(w) for w in words(self.value) if w not in _FACT_STOP}

    @property
    def identity(self) -> tuple[str, str]:
        """Facts with the same identity replace each other (a new name replaces the old)."""
        multi = self.key in _MULTI_KEYS or self.key == "note"
        return (self.key, self.value.lower() if multi else "")


def to_second_person(text: str) -> str:
    """Swap first-person words for second-person ones: ``my dog`` -> ``your dog``."""
    out = []
    for tok in re.split(r"(\s+)", text):
        core = tok.strip(".,!?;:").lower()
        if core in _PRONOUNS:
            repl = _PRONOUNS[core]
            tok = tok.lower().replace(core, repl)
        out.append(tok)
    return "".join(out)


def _clean_value(value: str) -> str:
    value = re.split(r"\s+(?:and|but|so|because)\s+(?=i\b|my\b|i'm\b)", value, flags=re.I)[0]
    return value.strip(" .,!?;:\"'")[:120].strip()


def _parse_fact(sentence: str) -> Fact | None:
    s = sentence.strip().strip(" .!,;")
    if not s:
        return None
    m = re.match(r"^(?:please\s+)?(?:remember|note|keep in mind)(?:\s+that)?[:,]?\s+(.+)$", s, re.I)
    if m:
        inner = _parse_fact(m.group(1))
        if inner is not None:
            return inner
        rest = _clean_value(m.group(1))
        return Fact("note", rest, to_second_person(rest)) if rest else None
    m = re.search(r"\bmy name(?:'s| is)\s+(.+)", s, re.I)
    if m or (m := re.search(r"\b(?:call me|i go by)\s+(.+)", s, re.I)):
        name = _clean_value(m.group(1))
        name = " ".join(w if w[:1].isupper() else w.capitalize() for w in name.split()[:4])
        return Fact("name", name, f"your name is {name}") if name else None
    m = re.search(r"\bi(?:\s+am|'m|m)\s+(\d{1,3})(?:\s*(?:years?|yrs?)(?:\s+old)?)?\s*$", s, re.I)
    if m:
        return Fact("age", m.group(1), f"you are {m.group(1)} years old")
    m = re.search(
        r"\bi\s+(?:really\s+|also\s+)?(like|love|enjoy|prefer|hate|dislike|"
        r"don't like|do not like)\s+(.+)",
        s,
        re.I,
    )
    if m:
        verb = m.group(1).lower().replace("do not", "don't")
        value = to_second_person(_clean_value(m.group(2)))
        key = "not like" if verb == "don't like" else verb
        return Fact(key, value, f"you {verb} {value}") if value else None
    m = re.search(r"\bi\s+live\s+in\s+(.+)", s, re.I)
    if m:
        value = _clean_value(m.group(1))
        return Fact("live", value, f"you live in {value}") if value else None
    m = re.search(r"\bi\s+work\s+(at|for|as|in|on)\s+(.+)", s, re.I)
    if m:
        value = to_second_person(_clean_value(m.group(2)))
        return Fact("work", value, f"you work {m.group(1).lower()} {value}") if value else None
    m = re.search(r"\bi\s+have\s+an?\s+(\w+)\s+(?:called|named)\s+(.+)", s, re.I)
    if m:
        thing, value = m.group(1).lower(), _clean_value(m.group(2))
        return Fact(thing, value, f"your {thing} is called {value}") if value else None
    m = re.search(r"\bmy\s+([\w' ]{1,40}?)\s+(is|are)\s+(called\s+|named\s+)?(.+)", s, re.I)
    if m:
        key, verb, how, value = m.group(1).lower(), m.group(2).lower(), m.group(3), m.group(4)
        value = to_second_person(_clean_value(value))
        how = (how or "").lower()
        return Fact(key, value, f"your {key} {verb} {how}{value}") if value else None
    m = re.search(r"\bi(?:\s+am|'m)\s+(an?\s+.+)", s, re.I)
    if m:
        value = to_second_person(_clean_value(m.group(1)))
        return Fact("identity", value, f"you are {value}") if value else None
    return None


def is_question(text: str) -> bool:
    """Whether ``text`` reads as a question (ends with '?' or starts with a question word)."""
    t = text.strip()
    if not t:
        return False
    first = t.split()[0].lower().strip(",.!")
    return t.endswith("?") or first in _QUESTION_START


def is_personal(text: str) -> bool:
    """Whether ``text`` talks about the user (my / I; not "tell me")."""
    return bool(re.search(r"\b(my|i|mine|i'm|myself)\b", text, re.I))


def extract_facts(text: str) -> list[Fact]:
    """Facts stated in a user message; questions state nothing."""
    facts = []
    for sentence in re.split(r"[.!;\n]+|,?\s+and\s+(?=(?:i|my|i'm|call me)\b)", text, flags=re.I):
        if not sentence.strip() or is_question(sentence):
            continue
        fact = _parse_fact(sentence)
        if fact is not None:
            facts.append(fact)
    return facts


_THIRD_PERSON = (
    (r"^(?=(?:has|is|likes|loves|enjoys|prefers|hates|dislikes|lives|works)\b)", "user "),
    (r"^(?:the\s+)?user'?s\b", "my"),
    (r"^(?:the\s+)?user\s+(?:is|was)\b", "I am"),
    (r"^(?:the\s+)?user\s+has\b", "I have"),
)


def facts_from_system(text: str) -> list[Fact]:
    """Facts listed under a line ``Known facts about the user:`` as ``- <fact>`` lines."""
    facts: list[Fact] = []
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "Known facts about the user:":
            in_block = True
            continue
        if not in_block:
            continue
        if not stripped.startswith("- "):
            if stripped:
                in_block = False
            continue
        raw = stripped[2:].strip()
        if not raw:
            continue
        first = raw
        for pattern, repl in _THIRD_PERSON:
            first = re.sub(pattern, repl, first, flags=re.I)
        m = re.match(r"^(?:the\s+)?user\s+(\w+?)(ies|s)\b(.*)$", first, re.I)
        if m:
            first = f"I {m.group(1)}{'y' if m.group(2) == 'ies' else ''}{m.group(3)}"
        m = re.match(r"^([A-Za-z][\w ]{0,30}):\s*(.+)$", first)
        if m:
            first = f"my {m.group(1).lower()} is {m.group(2)}"
        fact = _parse_fact(first)
        if fact is None:
            sentence = to_second_person(first.rstrip(". "))
            fact = Fact("note", sentence, sentence)
        facts.append(fact)
    return facts


def dedupe_facts(facts: Iterable[Fact]) -> list[Fact]:
    """Keep the latest fact per identity, in order of (last) appearance."""
    latest: dict[tuple[str, str], Fact] = {}
    for f in facts:
        latest.pop(f.identity, None)
        latest[f.identity] = f
    return list(latest.values())


def question_terms(text: str) -> dict[str, float]:
    """Stems of a question with weights: 2 for literal words, 1.5 for synonyms."""
    terms: dict[str, float] = {}
    for w in words(text.replace("'", "")) + words(text):
        if w in _QUESTION_SYNONYMS:
            syn = _QUESTION_SYNONYMS[w]
            terms[syn] = max(terms.get(syn, 0.0), 1.5)
        if w not in _FACT_STOP and w not in _QUESTION_START:
            terms[stem(w)] = 2.0
    return terms


def score_fact(question: str, fact: Fact) -> float:
    """How well ``fact`` answers ``question``: key matches weigh most."""
    q = question_terms(question)
    key = fact.key_terms
    key_hits = [q[t] for t in key if t in q]
    value_hits = sum(1.0 for t in fact.value_terms if t in q)
    if not key_hits and not value_hits:
        return 0.0
    coverage = len(key_hits) / len(key) if key else 0.0
    return sum(key_hits) + value_hits + 0.5 * coverage
