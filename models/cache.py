"""The answer cache: a turn whose prompt was answered before gets that answer
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

**False-hit guard** (:mod:`bulwark.models.false_hits`, semantic hits only: exact hits are
exact): two requests near in embedding space share an answer only if their numbers, units,
negations, operators, names, quotes and identifiers agree. A request holding a value the PII
rail redacted is never looked up or stored (:func:`reusable`): two ``<PERSON>`` s may be
different people.

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

import hashlib
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.store.base import BaseStore

from bulwark.guardrails.detectors.pii import ENTITIES
from bulwark.models.false_hits import same_specifics
from bulwark.models.steps import Io, Steps, adrive, drive
from bulwark.observability.telemetry import cache_lookup
from bulwark.persistence.answer_cache import CachedAnswer, LocalAnswers, RedisAnswers, SimilarAnswer, StoredAnswers

__all__ = [
    "AnswerCache",
    "CacheKey",
    "CacheLookup",
    "CacheMode",
    "Level",
    "Outcome",
    "Stored",
    "context_digest",
    "embedding_text",
    "normalise_request",
    "reusable",
]

log = logging.getLogger(__name__)

CacheMode = Literal["off", "exact", "semantic"]
Level = Literal["l1", "l2", "semantic"]
Outcome = Literal["hit", "miss", "error"]
Stored = Literal["stored", "error"]
_KEY_VERSION = "bulwark-answer-cache/1"


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


# -- the cache --------------------------------------------------------------------------------


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
        return drive(self._lookup(key, memory))

    async def alookup(self, key: CacheKey, *, memory: BaseStore | None = None) -> CacheLookup:
        """Async :meth:`lookup`: Redis through ``redis.asyncio``, the store's ``asearch``."""
        return await adrive(self._lookup(key, memory))

    def store(self, key: CacheKey, answer: str, *, memory: BaseStore | None = None) -> dict[Level, Stored]:
        """Keep ``answer`` (the screened final answer) for ``key`` at every level in use;
        returns what each level did (a level that fails is logged and skipped).

        Args:
            key: the turn.
            answer: what to serve for it.
            memory: the graph's store, for the semantic level.
        """
        return drive(self._store(key, answer, memory))

    async def astore(self, key: CacheKey, answer: str, *, memory: BaseStore | None = None) -> dict[Level, Stored]:
        """Async :meth:`store`."""
        return await adrive(self._store(key, answer, memory))

    def close(self) -> None:
        """Close the Redis connections."""
        if self.l2 is not None:
            self.l2.close()

    async def aclose(self) -> None:
        """Close the Redis connections, the asyncio client's too."""
        if self.l2 is not None:
            await self.l2.aclose()

    # -- the steps, written once for both paths

    def _lookup(self, key: CacheKey, memory: BaseStore | None) -> Steps[CacheLookup]:
        outcomes: dict[Level, Outcome] = {}
        if self.mode == "off":
            return CacheLookup()
        digest = _key_digest(key)
        if (entry := self.l1.get(digest)) is not None:
            return _hit("l1", entry.answer, outcomes)
        _outcome("l1", "miss", outcomes)
        if (l2 := self.l2) is not None:
            try:
                entry = yield Io(lambda: l2.get(digest), lambda: l2.aget(digest))
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
            candidates: list[SimilarAnswer] = yield Io(
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
            yield from _written("l2", Io(lambda: l2.put(digest, entry), lambda: l2.aput(digest, entry)))
        return _hit("semantic", match.answer, outcomes, match.score)

    def _store(self, key: CacheKey, answer: str, memory: BaseStore | None) -> Steps[dict[Level, Stored]]:
        done: dict[Level, Stored] = {}
        if self.mode == "off":
            return done
        digest = _key_digest(key)
        entry = CachedAnswer(answer, self.clock() + self.ttl_s)
        self.l1.put(digest, entry)
        done["l1"] = "stored"
        if (l2 := self.l2) is not None:
            done["l2"] = yield from _written("l2", Io(lambda: l2.put(digest, entry), lambda: l2.aput(digest, entry)))
        if self.mode == "semantic" and memory is not None:
            where = {"tenant": key.tenant, "model": key.model, "context": key.context,
                     "text": embedding_text(key.request), "request": key.request}
            done["semantic"] = yield from _written("semantic", Io(
                lambda: self.semantic.put(memory, digest, entry, **where),
                lambda: self.semantic.aput(memory, digest, entry, **where),
            ))
        return done


def _key_digest(key: CacheKey) -> str:
    """What the exact levels key on: SHA-256 of tenant, model, context and the normalised
    request, each prefixed by its length (cheaper than JSON, and as unambiguous)."""
    parts = (_KEY_VERSION, key.tenant, key.model, key.context, normalise_request(key.request))
    return hashlib.sha256("".join(f"{len(p)}:{p}" for p in parts).encode("utf-8")).hexdigest()


def _written(level: Level, io: Io) -> Steps[Stored]:
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
