"""The free-text argument (a query, a message body): what is left of the request once the
tool's own words and the values other arguments took are trimmed from its ends."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.request import Request
from bulwark.models.matching.schemas import ToolSpec
from bulwark.models.matching.slots import Slot, param_words
from bulwark.models.matching.spans import Span
from bulwark.models.matching.tables import (
    CONNECTORS,
    FREE_TEXT_NAMES,
    FREE_TEXT_WORDS,
    STOPWORDS,
)
from bulwark.models.matching.text import CONCEPTS, stem, words

_EDGE_KEEP: frozenset[str] = frozenset({"my", "i", "im", "our", "your"})
"""Stopwords kept at the edges of a free-text argument ("my dog is Rex")."""
_SHORT_TEXT_NAMES: frozenset[str] = frozenset({"subject", "title", "summary", "headline"})


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
            or w in CONNECTORS
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


def fill_free_text(
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
    texty = [n for n in remaining if set(param_words(n)) & (FREE_TEXT_WORDS | _SHORT_TEXT_NAMES)]
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
            (FREE_TEXT_NAMES.index(w) for w in ws if w in FREE_TEXT_NAMES),
            default=len(FREE_TEXT_NAMES),
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
