"""A tool's parameters as slots to fill (:class:`Slot`): the kind of value each takes,
the words that announce its value (its name, synonyms, its description, prepositions of
its role such as "from" for a start location), its units, options and examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bulwark.models.matching.schemas import ToolSpec, enum_values, param_kind, schema_types
from bulwark.models.matching.spans import find_quoted
from bulwark.models.matching.tables import (
    AMBIGUOUS_UNITS,
    FREE_TEXT_WORDS,
    GENERIC_DESCRIPTION_WORDS,
    ID_WORDS,
    NAME_FILLERS,
    NAME_SYNONYMS,
    ROLES,
    STOPWORDS,
)
from bulwark.models.matching.text import stem, words
from bulwark.models.matching.units import unit_of

_UNIT_SLOT_WORDS: frozenset[str] = frozenset({"unit", "units", "measure", "measurement"})
_FORMULA_WORDS: frozenset[str] = frozenset(
    {"function", "equation", "polynomial", "formula", "expression"}
)


def param_words(name: str) -> list[str]:
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
        return set(param_words(self.name))

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
        return self.kind == "string" and self.has(FREE_TEXT_WORDS) and not self.roles

    @property
    def is_unit(self) -> bool:
        return self.has(_UNIT_SLOT_WORDS)

    @property
    def is_identifier(self) -> bool:
        return self.has(ID_WORDS)

    @property
    def is_formula(self) -> bool:
        return self.has(_FORMULA_WORDS)


def _slot_kind(name: str, schema: Mapping[str, Any]) -> str:
    kind = param_kind(name, schema)
    if kind != "other":
        return kind
    types = schema_types(schema)
    if "array" in types:
        return "array"
    if "object" in types:
        return "object"
    return "string"


def _item_kind(schema: Mapping[str, Any]) -> str:
    items = schema.get("items") or {}
    if enum_values(items):
        return "enum"
    types = schema_types(items)
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
        if unit and unit != "unit" and (tok.lower() not in AMBIGUOUS_UNITS or tok in ("A", "V")):
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
        name_words = [w for w in param_words(name) if w not in NAME_FILLERS] or param_words(name)
        slot.name_stems = {stem(w) for w in name_words}
        for w in name_words:
            slot.cues[stem(w)] = 3.0
            for syn in NAME_SYNONYMS.get(w, ()):
                slot.cues.setdefault(stem(syn), 2.0)
        for w in words(slot.description):
            if w not in STOPWORDS and w not in GENERIC_DESCRIPTION_WORDS and not w.isdigit():
                slot.cues.setdefault(stem(w), 1.0)
        for role, (carriers, _) in ROLES.items():
            if set(name_words) & carriers:
                slot.roles.add(role)
        if not slot.roles:
            first_words = set(words(slot.description)[:6]) - {"to", "from", "by", "in"}
            for role, (carriers, _) in ROLES.items():
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
