"""Bound tools as the rules see them: a tool's OpenAI-format schema, its matching profile
(weighted terms of its name, description and parameters) and the kind of each argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bulwark.models.matching.spans import find_expression, normalize_arithmetic
from bulwark.models.matching.text import concepts_of, content_stems, words


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


def schema_types(schema: Mapping[str, Any]) -> set[str]:
    """JSON types a property accepts (also inside ``anyOf``/``oneOf``), ``null`` aside."""
    t = schema.get("type")
    found = set(t) if isinstance(t, list) else ({t} if t else set())
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= schema_types(sub)
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
    types = schema_types(schema)
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
        if emailish and (not items or "string" in schema_types(items)):
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

