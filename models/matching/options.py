"""Values the request names outright: enum values and options a description lists
("'metric' or 'imperial'"), and flags it mentions or negates."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.request import Request
from bulwark.models.matching.schemas import enum_values
from bulwark.models.matching.slots import Slot, param_words
from bulwark.models.matching.tables import BOOL_PREFIXES, NEGATIONS, STOPWORDS
from bulwark.models.matching.text import WORD, stem, words


def _same_word(a: str, b: str) -> bool:
    """Same stem, but not a word and the word plus "e" ("plan" is not "plane")."""
    return stem(a) == stem(b) and a + "e" != b and b + "e" != a


def enum_mentions(text: str, values: Sequence[Any]) -> list[tuple[int, int, Any]]:
    """(rank, position, value) for every enum value mentioned; rank 0 = literal phrase."""
    low = text.lower()
    tokens = [(m.start(), m.group().lower()) for m in WORD.finditer(text)]
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


def _enum_choice(slot: Slot, request: Request) -> Any:
    """The enum value the request mentions; for a required slot the default or the first."""
    mentions = enum_mentions(request.text, slot.options)
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
    ws = [w for w in param_words(slot.name) if w not in BOOL_PREFIXES]
    return ws or param_words(slot.name)


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
        if any(b in NEGATIONS for b in before) and "avoid" not in key:
            return False
    return True


def _mention(mention: tuple[int, int, Any]) -> Candidate:
    """The text an enum value was found at, so no other argument reuses it."""
    _, position, value = mention
    return Candidate(value, position, position + len(str(value)), "enum")


def fill_mentioned(
    request: Request, slots: Sequence[Slot], used: list[Candidate], args: dict[str, Any]
) -> None:
    """Enum values and listed options the request names, and booleans."""
    for slot in slots:
        if slot.kind == "string" and slot.options:
            mentions = enum_mentions(request.text, slot.options)
            if len({m[2] for m in mentions}) == 1:  # several: leave it to the assignment
                args[slot.key] = mentions[0][2]
                used.append(_mention(mentions[0]))
        elif slot.kind == "enum":
            choice = _enum_choice(slot, request)
            if choice is not None:
                args[slot.key] = choice
                mention = next(
                    (m for m in enum_mentions(request.text, slot.options) if m[2] == choice), None
                )
                if mention:
                    used.append(_mention(mention))
        elif slot.kind == "array" and slot.item_kind == "enum":
            items = enum_values(slot.schema.get("items") or {})
            mentioned = sorted(enum_mentions(request.text, items), key=lambda m: m[1])
            if mentioned:
                args[slot.key] = [m[2] for m in mentioned]
        elif slot.kind == "boolean":
            choice = _boolean_choice(slot, request)
            if choice is not None:
                args[slot.key] = choice
