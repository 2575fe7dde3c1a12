"""Facts the user states ("my name is Ada", "I live in Oslo") and the memory block of a
system prompt, and how well a fact answers a personal question."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bulwark.models.matching.tables import FACT_STOP, PRONOUNS, QUESTION_START, QUESTION_SYNONYMS
from bulwark.models.matching.text import stem, words

_MULTI_KEYS = frozenset({"like", "love", "enjoy", "prefer", "hate", "dislike", "not like", "note"})
_KEY_TERMS: dict[str, set[str]] = {
    "name": {"name"},
    "age": {"age", "old"},
    "live": {"live", "home"},
    "work": {"work", "job"},
    "identity": {"identity"},
}


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
        return {stem(w) for w in words(self.key) if w not in FACT_STOP} or {self.key}

    @property
    def value_terms(self) -> set[str]:
        """Stems of the fact's value."""
        return {stem(w) for w in words(self.value) if w not in FACT_STOP}

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
        if core in PRONOUNS:
            repl = PRONOUNS[core]
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
    return t.endswith("?") or first in QUESTION_START


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
        if w in QUESTION_SYNONYMS:
            syn = QUESTION_SYNONYMS[w]
            terms[syn] = max(terms.get(syn, 0.0), 1.5)
        if w not in FACT_STOP and w not in QUESTION_START:
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
