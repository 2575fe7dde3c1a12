"""Long-term memory: which facts are worth keeping, and where each user's memories live.

A user's memories live in the store under ``("memories", tenant, user)``; a tenant's
knowledge base under ``("knowledge", tenant)``. Nothing reads across those namespaces, so
one user's memories never come back for another.

Each sentence of a request is scored for importance: an explicit "remember ..." is kept
for sure, preferences and personal facts above the default threshold, other first-person
statements below it, questions never. The weights are rules, not a model, so that what is
kept is predictable and explainable in an audit.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

from langgraph.store.base import BaseStore

from bulwark.graphs.state import RunContext
from bulwark.guardrails.vault import unnumbered

MEMORIES = "memories"
KNOWLEDGE = "knowledge"
MAX_MEMORY_CHARS = 2000
"""Longest memory kept; longer text is a document, for ``bulwark ingest``."""

Kind = Literal["explicit", "preference", "personal", "statement"]
IMPORTANCE: dict[Kind, float] = {"explicit": 1.0, "preference": 0.8, "personal": 0.7, "statement": 0.3}

_EXPLICIT = re.compile(
    r"^\s*(please\s+)?(remember|note|keep in mind|don'?t forget)\s+(that\s+)?(?P<fact>.+)$",
    re.IGNORECASE,
)
_PREFERENCE = re.compile(
    r"\b(i\s+(really\s+)?(like|love|prefer|hate|dislike|enjoy|want|avoid|can'?t stand)"
    r"|my\s+(favou?rite|preferred)\b|i'?d\s+rather)\b",
    re.IGNORECASE,
)
_PERSONAL = re.compile(
    r"\b(my\s+[\w ]{1,30}?\s+(is|are|was)\s+\S|call\s+me\b"
    r"|i\s+(am|'m|live|work|use|speak|have|own|was born)\b)",
    re.IGNORECASE,
)
_FIRST_PERSON = re.compile(r"\b(i|my|me|mine|we|our)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


class InvalidMemoryError(ValueError):
    """A memory is empty or too long to keep."""


@dataclass(frozen=True, kw_only=True)
class Fact:
    """A sentence scored for keeping."""

    text: str
    kind: Kind
    importance: float


def memory_namespace(context: RunContext) -> tuple[str, str, str]:
    """The store namespace that holds one user's memories."""
    return (MEMORIES, context.tenant_id, context.user_id)


def knowledge_namespace(tenant_id: str) -> tuple[str, str]:
    """The store namespace that holds one tenant's knowledge base."""
    return (KNOWLEDGE, tenant_id)


def score_sentence(sentence: str) -> Fact | None:
    """Score one sentence; ``None`` for questions and sentences about nobody in particular."""
    sentence = sentence.strip().rstrip(".!;").strip()
    if not sentence or sentence.endswith("?"):
        return None
    if match := _EXPLICIT.match(sentence):
        return Fact(text=match["fact"].strip(), kind="explicit", importance=IMPORTANCE["explicit"])
    for kind, pattern in (("preference", _PREFERENCE), ("personal", _PERSONAL), ("statement", _FIRST_PERSON)):
        if pattern.search(sentence):
            return Fact(text=sentence, kind=kind, importance=IMPORTANCE[kind])  # type: ignore[arg-type]
    return None


def memorable_facts(text: str, *, threshold: float) -> list[Fact]:
    """The sentences of ``text`` whose importance reaches ``threshold``, most important first."""
    facts = [fact for s in _SENTENCE.split(text) if (fact := score_sentence(s))]
    kept = [fact for fact in facts if fact.importance >= threshold]
    return sorted(kept, key=lambda fact: fact.importance, reverse=True)


def memory_key(text: str) -> str:
    """A stable key for a memory, so repeating a fact updates it instead of duplicating it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, " ".join(text.lower().split())))


def check_memory(text: str) -> str:
    """The memory text, stripped; raises :class:`InvalidMemoryError` if empty or too long."""
    text = text.strip()
    if not text:
        raise InvalidMemoryError("a memory cannot be empty")
    if len(text) > MAX_MEMORY_CHARS:
        raise InvalidMemoryError(
            f"a memory is at most {MAX_MEMORY_CHARS} characters (got {len(text)}); "
            "store documents in the knowledge base with `bulwark ingest`"
        )
    return text


def memory_item(fact: Fact, *, source: str) -> tuple[str, dict[str, object]]:
    """The key and store value of ``fact``; raises :class:`InvalidMemoryError` if unfit.

    Vault placeholders lose their number: a memory outlives its thread, and ``<EMAIL_1>``
    names a value of one thread only."""
    text = check_memory(unnumbered(fact.text))
    return memory_key(text), {
        "text": text, "kind": fact.kind, "importance": fact.importance, "source": source
    }


def store_memory(store: BaseStore, namespace: tuple[str, ...], fact: Fact, *, source: str) -> str:
    """Store ``fact`` in ``namespace``, embedded for semantic search; returns its key."""
    key, value = memory_item(fact, source=source)
    store.put(namespace, key, value, index=["text"])
    return key


async def astore_memory(
    store: BaseStore, namespace: tuple[str, ...], fact: Fact, *, source: str
) -> str:
    """Async :func:`store_memory`."""
    key, value = memory_item(fact, source=source)
    await store.aput(namespace, key, value, index=["text"])
    return key
