"""Private helpers for :mod:`bulwark.models.offline`: text analysis without an LLM.

Three jobs, all deterministic and rule-based:

* **tool scoring** - which bound tool (OpenAI-format schema) fits a request, by
  IDF-weighted overlap of crudely stemmed words, concept synonyms and the *shape* of
  the request (an arithmetic expression, an email address, an IANA timezone);
* **argument filling** - build tool arguments from the request using the tool's JSON
  schema (numbers, enum values, quoted strings, emails, timezones, expressions, free
  text);
* **fact extraction** - "my name is Ada"-style statements and the memory block of a
  system prompt, plus matching a personal question to the best fact.

Nothing here is public API; the names may change with the offline model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def stem(word: str) -> str:
    """Crude suffix-stripping stemmer: ``calculator``/``calculate`` -> ``calcul``."""
    w = word.lower()
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
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<![\w'])'([^']+)'(?![\w'])")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\d)")
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


def find_numbers(text: str) -> list[Span]:
    """Numbers (ints and decimals, optionally negative) in order of appearance."""
    return [Span(m.group(), m.start(), m.end()) for m in _NUMBER.finditer(text)]


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
        name_words & {"email", "emails", "mail", "recipient", "recipients", "to", "cc", "bcc"}
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
    scores = []
    for t in tools:
        score = 0.0
        for term, factor in terms.items():
            if term in t.profile:
                idf = 1.0 + math.log(n / df[term])
                score += t.profile[term] * idf * factor
        kinds = set(t.param_kinds().values())
        if has_expr and "#arithmetic" in t.profile:
            score += SHAPE_BONUS
        if has_email and kinds & {"email", "emails"}:
            score += SLOT_BONUS
        if has_tz and "timezone" in kinds:
            score += SLOT_BONUS
        scores.append(round(score, 6))
    return scores


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

_FREE_TEXT_NAMES: tuple[str, ...] = (
    "query", "q", "text", "body", "message", "content", "input", "question", "prompt",
    "topic", "search", "term", "terms", "keywords", "note", "fact", "memory",
    "description", "location", "city", "place",
)  # fmt: skip
_SHORT_TEXT_NAMES: frozenset[str] = frozenset({"subject", "title", "summary", "headline"})


def _to_number(raw: str, kind: str) -> int | float | None:
    value = float(raw)
    if kind == "integer":
        return int(value) if value.is_integer() else None
    return int(value) if value.is_integer() and "." not in raw else value


def _enum_mentions(text: str, values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """(rank, position, value) for every enum value mentioned; rank 0 = literal phrase."""
    low = text.lower()
    tokens = [(m.start(), stem(m.group().lower())) for m in _WORD.finditer(text)]
    found: list[tuple[int, int, Any]] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            continue
        phrase = re.escape(value.lower().replace("_", " ").replace("-", " "))
        phrase = phrase.replace(r"\ ", r"[\s_-]+")
        m = re.search(rf"(?<![a-z0-9]){phrase}(?![a-z0-9])", low)
        if m:
            found.append((0, m.start(), value))
            continue
        wanted = [s for s in content_stems(value)] or [stem(w) for w in words(value)]
        positions = [next((p for p, s in tokens if s == w), None) for w in wanted]
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


def fill_arguments(text: str, tool: ToolSpec) -> dict[str, Any]:
    """Fill the tool's arguments from ``text``; arguments that can't be filled are omitted.

    Schema defaults are never used. The order of ``properties`` is respected when several
    arguments compete for the same kind of value.
    """
    props = tool.properties
    kinds = tool.param_kinds()
    required = set(tool.required)
    args: dict[str, Any] = {}
    consumed: list[Span] = []

    quoted = find_quoted(text)
    emails = find_emails(mask(text, quoted))
    zones = find_timezones(mask(text, quoted + emails))
    masked = mask(text, quoted + emails + zones)
    normalized = normalize_arithmetic(masked)
    expression = find_expression(normalized)

    # Expressions.
    expr_used = False
    for name, kind in kinds.items():
        if kind == "expression" and expression is not None and not expr_used:
            args[name] = expression.value
            expr_used = True

    # Emails.
    email_iter = iter(emails)
    for name, kind in kinds.items():
        if kind == "emails" and emails:
            args[name] = [e.value for e in emails]
            consumed += emails
        elif kind == "email":
            e = next(email_iter, None)
            if e is not None:
                args[name] = e.value
                consumed.append(e)

    # Timezones.
    zone_iter = iter(zones)
    for name, kind in kinds.items():
        if kind == "timezone":
            z = next(zone_iter, None)
            if z is not None:
                args[name] = z.value
                consumed.append(z)
            elif name in required:
                args[name] = "UTC"

    # Enum values.
    used_mentions: set[tuple[int, Any]] = set()
    for name, kind in kinds.items():
        if kind != "enum":
            continue
        for _rank, pos, value in _enum_mentions(masked, enum_values(props[name])):
            if (pos, value) not in used_mentions:
                args[name] = value
                used_mentions.add((pos, value))
                consumed.append(Span(str(value), pos, pos + len(str(value))))
                break

    # Numbers (those inside a consumed expression are skipped).
    numbers = [
        n
        for n in find_numbers(normalized)
        if not (expr_used and expression and expression.start <= n.start < expression.end)
    ]
    num_iter = iter(numbers)
    for name, kind in kinds.items():
        if kind in ("integer", "number"):
            for n in num_iter:
                value = _to_number(n.value, kind)
                if value is not None:
                    args[name] = value
                    break

    # Quoted strings: first those labelled by the argument name, then in order.
    strings = [n for n, k in kinds.items() if k == "string" and n not in args]
    free_quotes = list(quoted)
    for q in quoted:
        before = set(words(text[max(0, q.start - 30) : q.start])[-3:])
        for name in strings:
            if name not in args and set(words(name)) & before:
                args[name] = q.value
                free_quotes.remove(q)
                break
    for q in free_quotes:
        slot = next((n for n in strings if n not in args), None)
        if slot is None:
            break
        args[slot] = q.value
    consumed += quoted

    # One free-text argument gets what is left of the request.
    remaining = [n for n in strings if n not in args]
    if remaining:
        triggers = {t for t in tool.profile if not t.startswith("#")}
        for term in tool.profile:
            if term.startswith("#"):
                triggers |= CONCEPTS.get(term[1:], frozenset())
        numbers_used = expr_used or any(
            k in ("integer", "number") and n in args for n, k in kinds.items()
        )
        free = _free_text(text, consumed, triggers, strip_numbers=numbers_used)

        def rank(n: str) -> tuple[int, int]:
            ws = words(n)
            pref = min(
                (_FREE_TEXT_NAMES.index(w) for w in ws if w in _FREE_TEXT_NAMES),
                default=len(_FREE_TEXT_NAMES),
            )
            return (pref, 0 if n in required else 1)

        target = min(
            (n for n in remaining if not set(words(n)) & _SHORT_TEXT_NAMES), key=rank, default=None
        ) or min(remaining, key=rank)
        if free:
            args[target] = free
        elif target in required:
            args[target] = text.strip()
        # Best effort for a required short field such as an email subject.
        source = args.get(target, "")
        for name in remaining:
            if name not in args and name in required and set(words(name)) & _SHORT_TEXT_NAMES:
                short = " ".join(str(source).split()[:8])
                if short:
                    args[name] = short[0].upper() + short[1:]

    return {n: args[n] for n in props if n in args}


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
