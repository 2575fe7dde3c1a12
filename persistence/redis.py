"""Bulwark's Redis checkpointer: LangGraph checkpoints on plain Redis >= 6.2 or Valkey.

Why not the official ``langgraph-checkpoint-redis``: it stores checkpoints as RedisJSON
documents found through RediSearch indexes, so it needs Redis 8 / Redis Stack; Debian's
redis-server 7.0, Valkey and most managed Redis offerings lack those modules. Measured here
(2026-11, with ``langgraph-checkpoint-conformance``) it also fails 7 tests of LangGraph's own conformance suite
(``list``: ``before``, namespaces and custom metadata keys; ``prune``). :class:`RedisSaver`
uses only core commands (hashes, sets, sorted sets, MULTI/EXEC, WATCH, PEXPIRE) and passes
the whole suite, sync and async.

Key layout (``P`` is the key prefix, ``bulwark`` by default; ``q()`` is percent-encoding, so
no encoded part contains ``:``, ``{`` or ``}``)::

    P:{q(thread)}:namespaces               SET   checkpoint namespaces of the thread
    P:{q(thread)}:runs                     SET   run ids that wrote checkpoints in the thread
    P:{q(thread)}:ns:q(ns):ids             ZSET  checkpoint ids, all score 0: lexicographic
                                                 order = uuid6 order, newest last
    P:{q(thread)}:ns:q(ns):checkpoints     HASH  id -> JSON header line + serialized checkpoint
                                                 (without channel_values)
    P:{q(thread)}:ns:q(ns):metadata        HASH  id -> serialized metadata
    P:{q(thread)}:ns:q(ns):blobs           HASH  q(channel):q(version) -> channel value
    P:{q(thread)}:ns:q(ns):writes          HASH  q(id):q(task_id):idx -> pending write
    P:{q(thread)}:ns:q(ns):write_index     ZSET  the writes' fields, score 0: a checkpoint's
                                                 writes are one ZRANGEBYLEX away
    P:threads                              ZSET  thread ids, score = expiry (unix time, +inf
                                                 without TTL): for list(None)
    P:run:{q(run)}                         SET   thread ids holding checkpoints of the run:
                                                 for delete_for_runs

Every key of a thread carries the thread's hash tag, so a thread lives in one Redis Cluster
slot and each write of a thread is a single MULTI/EXEC (a crash never leaves half a
checkpoint). The two cross-thread indexes live in other slots; they are written *before* the
thread's transaction, so they are always a superset of what exists, and readers skip stale
entries. Read-modify-write operations (delete_thread, delete_for_runs, prune) WATCH the
thread's keys and retry on a concurrent change.

The operations are written once, as generators that yield the Redis commands to send and
receive the replies (no I/O in them); two small drivers run them on ``redis.Redis`` (sync
methods) or ``redis.asyncio.Redis`` (``a*`` methods).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from bulwark.persistence.checkpoints import PersistenceError

__all__ = [
    "PRUNE_STRATEGIES",
    "CheckpointDecodeError",
    "RedisSaver",
    "RedisUnavailableError",
    "mask_url",
]

#: ``strategy`` values accepted by :meth:`RedisSaver.prune`. ``"delete"`` is the name in
#: ``BaseCheckpointSaver``'s docstring, ``"delete_all"`` the one LangGraph's server sends.
PRUNE_STRATEGIES = frozenset({"keep_latest", "delete", "delete_all"})

_DELTA_COUNTERS_KEY = "counters_since_delta_snapshot"
_PAGE = 100  # checkpoint ids fetched, and tuples loaded, per round trip in list()
_WATCH_ATTEMPTS = 50


class RedisUnavailableError(PersistenceError):
    """Redis could not be reached, timed out or refused the credentials.

    The message names the URL with its password masked.
    """


class CheckpointDecodeError(ValueError):
    """A stored checkpoint, metadata, channel value or write could not be decoded."""

    def __init__(
        self, *, thread_id: str, checkpoint_ns: str, checkpoint_id: str, part: str, cause: object
    ) -> None:
        where = f"thread {thread_id!r}" + (
            f", namespace {checkpoint_ns!r}" if checkpoint_ns else ""
        )
        super().__init__(
            f"cannot decode the {part} of checkpoint {checkpoint_id} in {where}: {cause}"
        )
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.checkpoint_id = checkpoint_id
        self.part = part


def mask_url(url: str) -> str:
    """``url`` with the password (or a lone user-info part) replaced by ``***``."""
    start = url.find("//")
    if start < 0:
        return url
    start += 2
    end = len(url)
    for stop in "?#":  # not "/": a password typed with a raw "/" must not leak either
        i = url.find(stop, start)
        if i != -1:
            end = min(end, i)
    userinfo, at, hostport = url[start:end].rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return f"{url[:start]}{masked}@{hostport}{url[end:]}"


_URL_HINT = "use redis[s]://[[user]:password@]host[:port][/db][?ttl=SECONDS]"


def split_server_url(
    url: str, *, schemes: Sequence[str], name: str, hint: str, error: type[Exception]
) -> SplitResult:
    """``url`` split, once it is checked to be ``<scheme>://host...`` with one of
    ``schemes`` and a valid port; else ``error`` naming ``name`` and the masked URL, then
    ``hint``."""
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise error(f"invalid {name} {shown!r} ({exc}): {hint}") from None
    if parts.scheme not in schemes or not url.startswith(f"{parts.scheme}://"):
        raise error(f"invalid {name} {shown!r}: {hint}")
    if not parts.hostname:
        raise error(f"invalid {name} {shown!r}: no host; {hint}")
    return parts


def parse_redis_url(url: str) -> tuple[str, float | None]:
    """Validate a Redis URL; return it without Bulwark's ``ttl`` option, and that TTL."""
    shown = mask_url(url)
    parts = split_server_url(url, schemes=("redis", "rediss"), name="Redis URL", hint=_URL_HINT, error=PersistenceError)
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise PersistenceError(
            f"invalid Redis URL {shown!r}: the path must be a database number; {_URL_HINT}"
        )
    ttl: float | None = None
    query = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "ttl":
            query.append((name, value))
            continue
        try:
            ttl = float(value)
        except ValueError:
            ttl = -1.0
        if not ttl > 0 or ttl == float("inf"):
            raise PersistenceError(
                f"invalid Redis URL {shown!r}: ttl must be a number of seconds > 0"
            ) from None
    clean = urlunsplit(parts._replace(query=urlencode(query)))
    return clean, ttl


# -- the steps an operation yields to its driver ----------------------------------------------

Command = tuple[Any, ...]


@dataclass(frozen=True)
class _Batch:
    """Commands sent in one round trip; ``transaction`` wraps them in MULTI/EXEC."""

    commands: list[Command]
    transaction: bool = False


@dataclass(frozen=True)
class _Watch:
    """WATCH these keys (only inside an :class:`_Optimistic` body)."""

    keys: list[str]


@dataclass(frozen=True)
class _Optimistic:
    """Run ``body`` (WATCHes and reads), then MULTI/EXEC the commands it returns.

    The body starts with a :class:`_Watch`; the driver reruns it from scratch when a watched
    key changed before EXEC.
    """

    body: Callable[[], Generator[_Watch | _Batch, Any, list[Command]]]


@dataclass(frozen=True)
class _Emit:
    """An item for the caller of an iterating operation (list)."""

    item: CheckpointTuple


Step = _Batch | _Optimistic | _Emit
Op = Generator[Step, Any, Any]


# -- keys and encodings -------------------------------------------------------------------------


def _q(text: str) -> str:
    return quote(text, safe="")


def _tag(text: str) -> str:
    """A hash tag for ``text``: never empty, never containing ``{`` or ``}``."""
    return "{" + (_q(text) or "%") + "}"


@functools.lru_cache(maxsize=8192)  # hot in prune: every kept checkpoint's fields, every run
def _blob_field(channel: str, version: object) -> str:
    return f"{_q(channel)}:{_q(str(version))}"


def _write_field(checkpoint_id: str, task_id: str, idx: int) -> str:
    return f"{_q(checkpoint_id)}:{_q(task_id)}:{idx}"


def _write_range(checkpoint_id: str) -> tuple[str, str]:
    """ZRANGEBYLEX bounds selecting the write fields of one checkpoint."""
    return f"[{_q(checkpoint_id)}:", f"({_q(checkpoint_id)};"


@dataclass(frozen=True)
class _NsKeys:
    ids: str
    checkpoints: str
    metadata: str
    blobs: str
    writes: str
    write_index: str

    @classmethod
    def of(cls, thread_base: str, checkpoint_ns: str) -> _NsKeys:
        base = f"{thread_base}:ns:{_q(checkpoint_ns)}"
        return cls(*(f"{base}:{name}" for name in _NS_KEY_NAMES))

    def all(self) -> list[str]:
        return [
            self.ids,
            self.checkpoints,
            self.metadata,
            self.blobs,
            self.writes,
            self.write_index,
        ]


_NS_KEY_NAMES = ("ids", "checkpoints", "metadata", "blobs", "writes", "write_index")


@dataclass(frozen=True)
class _ThreadKeys:
    base: str
    namespaces: str
    runs: str

    @classmethod
    def of(cls, prefix: str, thread_id: str) -> _ThreadKeys:
        base = f"{prefix}:{_tag(thread_id)}"
        return cls(base, f"{base}:namespaces", f"{base}:runs")

    def ns(self, checkpoint_ns: str) -> _NsKeys:
        return _NsKeys.of(self.base, checkpoint_ns)

    def all(self, namespaces: Iterable[str]) -> list[str]:
        keys = [self.namespaces, self.runs]
        for checkpoint_ns in namespaces:
            keys += self.ns(checkpoint_ns).all()
        return keys


class _Header(NamedTuple):
    """What is stored in front of a serialized checkpoint."""

    type: str
    parent: str | None
    run_id: str | None
    versions: dict[str, str]  # channel -> str(version), as in channel_versions

    def blob_fields(self) -> set[str]:
        return {_blob_field(ch, v) for ch, v in self.versions.items()}


def _pack(type_: str, data: bytes) -> bytes:
    return type_.encode() + b"\n" + data


def _unpack(raw: bytes) -> tuple[str, bytes]:
    type_, sep, data = raw.partition(b"\n")
    if not sep:
        raise ValueError("no type line")
    return type_.decode(), data


def _pack_json(header: object, data: bytes) -> bytes:
    # json.dumps escapes newlines, so the header is exactly the first line
    return json.dumps(header).encode() + b"\n" + data


def _unpack_json(raw: bytes) -> tuple[Any, bytes]:
    head, sep, data = raw.partition(b"\n")
    if not sep:
        raise ValueError("no header line")
    return json.loads(head), data


def _parse_header(raw: bytes) -> tuple[_Header, bytes]:
    head, data = _unpack_json(raw)
    return _Header(head["t"], head["p"], head["r"], dict(head["v"])), data


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _texts(values: Iterable[bytes | str]) -> list[str]:
    return sorted(_text(v) for v in values)


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


@dataclass
class _Source:
    """One (thread, namespace) being listed newest first, a page of ids at a time."""

    thread_id: str
    checkpoint_ns: str
    key: str
    high: str  # ZREVRANGEBYLEX max bound of the next page
    low: str = "-"
    buffer: deque[str] = field(default_factory=deque)
    done: bool = False

    def fetch(self) -> Command:
        return ("ZREVRANGEBYLEX", self.key, self.high, self.low, "LIMIT", 0, _PAGE)

    def fill(self, ids: list[bytes]) -> None:
        self.buffer.extend(_text(i) for i in ids)
        if len(ids) < _PAGE:
            self.done = True
        else:
            self.high = "(" + self.buffer[-1]


# -- the saver ---------------------------------------------------------------------------------


class RedisSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer on plain Redis (>= 6.2) or Valkey; sync and async.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://…`` (TLS). The
            query may carry redis-py connection options and ``ttl=SECONDS``.
        ttl: Lifetime of a thread: every key of the thread gets it on each write and (with
            ``refresh_on_read``) on each read. ``None`` keeps threads until deleted.
        refresh_on_read: Reading a thread (get_tuple, list) restarts its TTL.
        key_prefix: First part of every key; lets several deployments share one database.
        socket_connect_timeout: Seconds to wait for a connection.
        socket_timeout: Seconds to wait for a reply.
        retries: Retries of a command after a connection error or timeout (with a short
            jittered backoff) before :class:`RedisUnavailableError` is raised.
        serde: Serializer; LangGraph's JsonPlusSerializer by default.

    Raises:
        PersistenceError: the URL is malformed or carries an unknown option.
        ValueError: ``ttl`` is not positive, or ``ttl`` is given both in the URL and as an
            argument.
    """

    def __init__(
        self,
        *,
        url: str,
        ttl: timedelta | float | None = None,
        refresh_on_read: bool = True,
        key_prefix: str = "bulwark",
        socket_connect_timeout: float = 5.0,
        socket_timeout: float = 5.0,
        retries: int = 2,
        keep: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep!r}")
        self.keep = keep
        clean_url, url_ttl = parse_redis_url(url)
        if url_ttl is not None and ttl is not None:
            raise ValueError(f"ttl given both in the URL {mask_url(url)!r} and as an argument")
        if url_ttl is not None:
            ttl = url_ttl
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if seconds is not None and not seconds > 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        if not key_prefix or any(c in key_prefix for c in "{}"):
            raise ValueError(f"key_prefix must be non-empty without braces, got {key_prefix!r}")
        self.url = mask_url(url)
        self.ttl = timedelta(seconds=seconds) if seconds is not None else None
        self.refresh_on_read = refresh_on_read
        self.key_prefix = key_prefix
        self._ttl_ms = max(1, round(seconds * 1000)) if seconds is not None else None
        self._threads_key = f"{key_prefix}:threads"
        backoff = ExponentialWithJitterBackoff(base=0.05, cap=0.5)
        self._client_options: dict[str, Any] = {
            "socket_connect_timeout": socket_connect_timeout,
            "socket_timeout": socket_timeout,
        }
        self._clean_url = clean_url
        self._async_retry = AsyncRetry(backoff, retries)
        try:
            self.client = redis.Redis.from_url(
                clean_url, retry=Retry(backoff, retries), **self._client_options
            )
            pool = self.client.connection_pool
            pool.connection_class(**pool.connection_kwargs)  # unknown URL options fail here
        except (ValueError, TypeError) as exc:
            raise PersistenceError(f"invalid Redis URL {self.url!r} ({exc}): {_URL_HINT}") from None
        self._aclient: redis.asyncio.Redis | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def aclient(self) -> redis.asyncio.Redis:
        """The asyncio client for the running event loop (one per loop: pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            self._aclient = redis.asyncio.Redis.from_url(
                self._clean_url, retry=self._async_retry, **self._client_options
            )
            self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        """Close the sync client's connections."""
        self.client.close()

    async def aclose(self) -> None:
        """Close both clients' connections."""
        if self._aclient is not None and self._aclient_loop is asyncio.get_running_loop():
            await self._aclient.aclose()
        self._aclient = None
        self.client.close()

    def __enter__(self) -> RedisSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RedisSaver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def ping(self) -> None:
        """Check that the server answers (and accepts the credentials).

        Raises:
            RedisUnavailableError: it does not.
        """
        self._run(self._ping_op())

    async def aping(self) -> None:
        """Async :meth:`ping`."""
        await self._arun(self._ping_op())

    def _ping_op(self) -> Op:
        yield _Batch([("PING",)])

    # -- BaseCheckpointSaver: sync --------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._run(self._get_tuple_op(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._iterate(self._list_op(config, filter, before, limit))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._run(self._retained(self._put_op(config, checkpoint, metadata, new_versions), config, metadata))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._run(self._put_writes_op(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._run(self._delete_threads_op([thread_id]))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._run(self._delete_for_runs_op(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._run(self._copy_thread_op(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", keep: int = 1) -> None:
        """Prune threads: ``keep_latest`` or ``delete`` (alias ``delete_all``).

        ``keep_latest`` keeps, per namespace, the latest ``keep`` checkpoints and their writes, plus the
        ancestors a DeltaChannel still needs to rebuild its value (back to the nearest one
        storing a value for every such channel, found from the latest checkpoint's
        ``counters_since_delta_snapshot`` metadata), as ``BaseCheckpointSaver.prune``
        requires. Channel values no kept checkpoint refers to are deleted.

        Raises:
            ValueError: unknown ``strategy``.
        """
        self._run(self._prune_op(thread_ids, strategy, keep))

    # -- BaseCheckpointSaver: async -------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._arun(self._get_tuple_op(config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        async for item in self._aiterate(self._list_op(config, filter, before, limit)):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._arun(
            self._retained(self._put_op(config, checkpoint, metadata, new_versions), config, metadata)
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._arun(self._put_writes_op(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(self._delete_threads_op([thread_id]))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._arun(self._delete_for_runs_op(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._arun(self._copy_thread_op(source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest", keep: int = 1) -> None:
        """Async :meth:`prune`."""
        await self._arun(self._prune_op(thread_ids, strategy, keep))

    def get_next_version(self, current: str | None, channel: None) -> str:
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- drivers --------------------------------------------------------------------------------

    def _errors(self, exc: RedisError) -> PersistenceError:
        if isinstance(exc, redis.exceptions.AuthenticationError):
            return RedisUnavailableError(f"Redis at {self.url} refused the credentials: {exc}")
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
            return RedisUnavailableError(f"Redis at {self.url} is unavailable: {exc}")
        return PersistenceError(f"Redis at {self.url} failed a command: {exc}")

    def _execute(self, step: _Batch | _Optimistic) -> Any:
        try:
            if isinstance(step, _Batch):
                if len(step.commands) == 1 and not step.transaction:
                    return [self.client.execute_command(*step.commands[0])]
                with self.client.pipeline(transaction=step.transaction) as pipe:
                    for command in step.commands:
                        pipe.execute_command(*command)
                    return pipe.execute()
            for _ in range(_WATCH_ATTEMPTS):
                with self.client.pipeline(transaction=True) as pipe:
                    body, reply = step.body(), None
                    try:
                        while True:
                            sub = body.send(reply)
                            if isinstance(sub, _Watch):
                                reply = pipe.watch(*sub.keys)
                            else:  # reads may use any connection once the keys are watched
                                reply = self._execute(sub)
                    except StopIteration as stop:
                        commands = stop.value
                    if not commands:
                        return []
                    pipe.multi()
                    for command in commands:
                        pipe.execute_command(*command)
                    try:
                        return pipe.execute()
                    except WatchError:
                        continue
        except RedisError as exc:
            raise self._errors(exc) from exc
        raise PersistenceError(f"Redis at {self.url}: too many concurrent changes, gave up")

    async def _aexecute(self, step: _Batch | _Optimistic) -> Any:
        client = self.aclient
        try:
            if isinstance(step, _Batch):
                if len(step.commands) == 1 and not step.transaction:
                    return [await client.execute_command(*step.commands[0])]
                async with client.pipeline(transaction=step.transaction) as pipe:
                    for command in step.commands:
                        pipe.execute_command(*command)
                    return await pipe.execute()
            for _ in range(_WATCH_ATTEMPTS):
                async with client.pipeline(transaction=True) as pipe:
                    body, reply = step.body(), None
                    try:
                        while True:
                            sub = body.send(reply)
                            if isinstance(sub, _Watch):
                                reply = await pipe.watch(*sub.keys)
                            else:
                                reply = await self._aexecute(sub)
                    except StopIteration as stop:
                        commands = stop.value
                    if not commands:
                        return []
                    pipe.multi()
                    for command in commands:
                        pipe.execute_command(*command)
                    try:
                        return await pipe.execute()
                    except WatchError:
                        continue
        except RedisError as exc:
            raise self._errors(exc) from exc
        raise PersistenceError(f"Redis at {self.url}: too many concurrent changes, gave up")

    def _iterate(self, op: Op) -> Iterator[Any]:
        reply = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration:
                return
            if isinstance(step, _Emit):
                yield step.item
                reply = None
            else:
                reply = self._execute(step)

    async def _aiterate(self, op: Op) -> AsyncIterator[Any]:
        reply = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration:
                return
            if isinstance(step, _Emit):
                yield step.item
                reply = None
            else:
                reply = await self._aexecute(step)

    def _run(self, op: Op) -> Any:
        reply = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration as stop:
                return stop.value
            assert not isinstance(step, _Emit)
            reply = self._execute(step)

    async def _arun(self, op: Op) -> Any:
        reply = None
        while True:
            try:
                step = op.send(reply)
            except StopIteration as stop:
                return stop.value
            assert not isinstance(step, _Emit)
            reply = await self._aexecute(step)

    # -- command builders -----------------------------------------------------------------------

    def _thread_keys(self, thread_id: str) -> _ThreadKeys:
        return _ThreadKeys.of(self.key_prefix, thread_id)

    def _run_key(self, run_id: str) -> str:
        return f"{self.key_prefix}:run:{_tag(run_id)}"

    def _expire(self, keys: Iterable[str]) -> list[Command]:
        if self._ttl_ms is None:
            return []
        return [("PEXPIRE", key, self._ttl_ms) for key in keys]

    def _touch_indexes(self, thread_id: str, runs: Iterable[str]) -> list[Command]:
        """Register the thread (with its expiry) and refresh its runs' index keys."""
        score: Any = "+inf" if self.ttl is None else time.time() + self.ttl.total_seconds()
        return [
            ("ZADD", self._threads_key, score, thread_id),
            *self._expire(self._run_key(r) for r in runs),
        ]

    def _decode(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        part: str,
        decode: Callable[[], Any],
    ) -> Any:
        try:
            return decode()
        except Exception as exc:  # any serde failure: name what could not be read
            raise CheckpointDecodeError(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                part=part,
                cause=f"{type(exc).__name__}: {exc}",
            ) from exc

    # -- operations -----------------------------------------------------------------------------

    def _put_op(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Op:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns") or ""
        parent_id = conf.get("checkpoint_id")
        checkpoint_id = checkpoint["id"]
        saved = checkpoint.copy()
        values: dict[str, Any] = saved.pop("channel_values", {})  # type: ignore[misc]
        full_metadata = get_checkpoint_metadata(config, metadata)
        run_id = full_metadata.get("run_id")
        run_id = str(run_id) if run_id is not None else None
        # Serialize everything before any I/O: a value that cannot be serialized writes nothing.
        cp_type, cp_data = self.serde.dumps_typed(saved)
        header = {
            "t": cp_type,
            "p": parent_id,
            "r": run_id,
            "v": {ch: str(v) for ch, v in saved.get("channel_versions", {}).items()},
        }
        blobs: list[Any] = []
        for channel, version in new_versions.items():
            if channel in values:  # an empty channel stores nothing: absent = empty
                blobs += [
                    _blob_field(channel, version),
                    _pack(*self.serde.dumps_typed(values[channel])),
                ]
        metadata_blob = _pack(*self.serde.dumps_typed(full_metadata))

        keys = self._thread_keys(thread_id)
        nk = keys.ns(checkpoint_ns)
        runs = {run_id} if run_id else set()
        first = [("SADD", self._run_key(r), thread_id) for r in runs]
        first += self._touch_indexes(thread_id, runs)
        namespaces = {checkpoint_ns}
        if self._ttl_ms is not None:
            first += [("SMEMBERS", keys.namespaces), ("SMEMBERS", keys.runs)]
            reply = yield _Batch(first)
            namespaces.update(_texts(reply[-2]))
            other_runs = set(_texts(reply[-1])) - runs
        else:
            yield _Batch(first)
            other_runs = set()
        tx: list[Command] = [("SADD", keys.namespaces, checkpoint_ns)]
        tx += [("SADD", keys.runs, r) for r in runs]
        tx += [
            ("ZADD", nk.ids, 0, checkpoint_id),
            ("HSET", nk.checkpoints, checkpoint_id, _pack_json(header, cp_data)),
            ("HSET", nk.metadata, checkpoint_id, metadata_blob),
        ]
        if blobs:
            tx.append(("HSET", nk.blobs, *blobs))
        tx += self._expire(keys.all(namespaces))
        yield _Batch(tx, transaction=True)
        if other_runs:
            yield _Batch(self._expire(self._run_key(r) for r in other_runs))
        return _config(thread_id, checkpoint_ns, checkpoint_id)

    def _put_writes_op(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Op:
        if not writes:
            return
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns") or ""
        checkpoint_id = conf["checkpoint_id"]
        # Like the SQLite saver: a batch of only special writes (errors, interrupts, resumes...)
        # replaces what is stored; any other batch only inserts fields not already there.
        setter = "HSET" if all(ch in WRITES_IDX_MAP for ch, _ in writes) else "HSETNX"
        records = []
        for idx, (channel, value) in enumerate(writes):
            widx = WRITES_IDX_MAP.get(channel, idx)
            type_, data = self.serde.dumps_typed(value)
            header = [task_id, channel, widx, task_path, type_]
            records.append((_write_field(checkpoint_id, task_id, widx), _pack_json(header, data)))
        keys = self._thread_keys(thread_id)
        nk = keys.ns(checkpoint_ns)
        namespaces, runs = {checkpoint_ns}, set()
        if self._ttl_ms is not None:
            reply = yield _Batch([("SMEMBERS", keys.namespaces), ("SMEMBERS", keys.runs)])
            namespaces.update(_texts(reply[0]))
            runs = set(_texts(reply[1]))
        tx: list[Command] = [("SADD", keys.namespaces, checkpoint_ns)]
        for wfield, record in records:
            tx += [(setter, nk.writes, wfield, record), ("ZADD", nk.write_index, 0, wfield)]
        tx += self._expire(keys.all(namespaces))
        yield _Batch(tx, transaction=True)
        if self._ttl_ms is not None:
            yield _Batch(self._touch_indexes(thread_id, runs))

    def _get_tuple_op(self, config: RunnableConfig) -> Op:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns") or ""
        checkpoint_id = get_checkpoint_id(config)
        keys = self._thread_keys(thread_id)
        refresh = self._ttl_ms is not None and self.refresh_on_read
        reads: list[Command] = []
        if not checkpoint_id:
            reads.append(("ZREVRANGEBYLEX", keys.ns(checkpoint_ns).ids, "+", "-", "LIMIT", 0, 1))
        if refresh:
            reads += [("SMEMBERS", keys.namespaces), ("SMEMBERS", keys.runs)]
        reply = (yield _Batch(reads)) if reads else []
        if not checkpoint_id:
            if not reply[0]:
                return None
            checkpoint_id = _text(reply[0][0])
        touch = self._refresh(thread_id, reply[-2], reply[-1]) if refresh else []
        loaded = yield from self._load_op([(thread_id, checkpoint_ns, checkpoint_id)], {}, touch)
        return loaded[0] if loaded else None

    def _refresh(
        self, thread_id: str, namespaces: Iterable[bytes], runs: Iterable[bytes]
    ) -> list[Command]:
        run_ids = _texts(runs)
        return self._expire(self._thread_keys(thread_id).all(_texts(namespaces))) + (
            self._touch_indexes(thread_id, run_ids)
        )

    def _load_op(
        self,
        items: list[tuple[str, str, str]],
        metadata: dict[tuple[str, str, str], Any],
        extra: list[Command],
    ) -> Generator[Step, Any, list[CheckpointTuple]]:
        """Load full tuples for (thread, ns, id) items, in order; missing ones are skipped.

        ``metadata`` holds already decoded metadata; ``extra`` commands (TTL refreshes) ride
        along with the last round trip, and only if something was found.
        """
        reads: list[Command] = []
        for thread_id, checkpoint_ns, checkpoint_id in items:
            nk = self._thread_keys(thread_id).ns(checkpoint_ns)
            reads += [
                ("HGET", nk.checkpoints, checkpoint_id),
                ("HGET", nk.metadata, checkpoint_id),
                ("ZRANGEBYLEX", nk.write_index, *_write_range(checkpoint_id)),
            ]
        reply = yield _Batch(reads)
        found = []
        reads = []
        for n, item in enumerate(items):
            raw, raw_metadata, write_fields = reply[3 * n : 3 * n + 3]
            if raw is None:  # gone (deleted, expired) since it was listed
                continue
            thread_id, checkpoint_ns, checkpoint_id = item
            header, data = self._decode(*item, "checkpoint header", lambda r=raw: _parse_header(r))
            checkpoint = self._decode(
                *item, "checkpoint", lambda h=header, d=data: self.serde.loads_typed((h.type, d))
            )
            if item in metadata:
                meta = metadata[item]
            elif raw_metadata is None:
                meta = {}
            else:
                meta = self._decode(*item, "metadata", lambda m=raw_metadata: self._loads(m))
            nk = self._thread_keys(thread_id).ns(checkpoint_ns)
            channels = list(checkpoint.get("channel_versions", {}).items())
            found.append((item, header, checkpoint, meta, channels, len(write_fields)))
            if channels:
                reads.append(("HMGET", nk.blobs, *(_blob_field(c, v) for c, v in channels)))
            if write_fields:
                reads.append(("HMGET", nk.writes, *write_fields))
        if not found:
            return []
        reads += extra
        reply = (yield _Batch(reads)) if reads else []
        position = 0
        tuples = []
        for item, header, checkpoint, meta, channels, n_writes in found:
            thread_id, checkpoint_ns, checkpoint_id = item
            values = {}
            if channels:
                for (channel, _), raw in zip(channels, reply[position], strict=True):
                    if raw is not None:
                        values[channel] = self._decode(
                            *item, f"value of channel {channel!r}", lambda r=raw: self._loads(r)
                        )
                position += 1
            pending: list[tuple[tuple[str, str, int], PendingWrite]] = []
            if n_writes:
                for raw in reply[position]:
                    if raw is None:
                        continue
                    (task_id, channel, idx, task_path, type_), data = self._decode(
                        *item, "pending write header", lambda r=raw: _unpack_json(r)
                    )
                    value = self._decode(
                        *item,
                        f"pending write of task {task_id} to {channel!r}",
                        lambda t=type_, d=data: self.serde.loads_typed((t, d)),
                    )
                    pending.append(
                        (writes_sort_key(task_path, task_id, idx), (task_id, channel, value))
                    )
                position += 1
            pending.sort(key=lambda p: p[0])
            tuples.append(
                CheckpointTuple(
                    config=_config(thread_id, checkpoint_ns, checkpoint_id),
                    checkpoint={**checkpoint, "channel_values": values},
                    metadata=meta,
                    parent_config=(
                        _config(thread_id, checkpoint_ns, header.parent) if header.parent else None
                    ),
                    pending_writes=[w for _, w in pending],
                )
            )
        return tuples

    def _loads(self, raw: bytes) -> Any:
        return self.serde.loads_typed(_unpack(raw))

    def _list_op(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Op:
        if limit is not None and limit <= 0:
            return
        before_id = get_checkpoint_id(before) if before else None
        high = f"({before_id}" if before_id else "+"
        low = "-"
        checkpoint_ns: str | None = None
        if config is not None:
            conf = config["configurable"]
            thread_ids = [str(conf["thread_id"])]
            checkpoint_ns = conf.get("checkpoint_ns")
            if checkpoint_id := get_checkpoint_id(config):
                if before_id and checkpoint_id >= before_id:
                    return
                high = low = f"[{checkpoint_id}"
        else:
            reply = yield _Batch(
                [
                    ("ZREMRANGEBYSCORE", self._threads_key, "-inf", f"({time.time()}"),
                    ("ZRANGE", self._threads_key, 0, -1),
                ]
            )
            thread_ids = _texts(reply[1])
        refresh = self._ttl_ms is not None and self.refresh_on_read
        reads: list[Command] = []
        for thread_id in thread_ids:
            keys = self._thread_keys(thread_id)
            reads += [("SMEMBERS", keys.namespaces), ("SMEMBERS", keys.runs)]
        reply = (yield _Batch(reads)) if reads else []
        sources: list[_Source] = []
        touch: dict[str, list[Command]] = {}
        for n, thread_id in enumerate(thread_ids):
            namespaces, runs = reply[2 * n], reply[2 * n + 1]
            if refresh and namespaces:
                touch[thread_id] = self._refresh(thread_id, namespaces, runs)
            listed = [checkpoint_ns] if checkpoint_ns is not None else _texts(namespaces)
            keys = self._thread_keys(thread_id)
            sources += [_Source(thread_id, ns, keys.ns(ns).ids, high, low) for ns in listed]
        remaining = limit
        while True:
            # Merge the sources newest first; a source whose buffer runs dry is refilled
            # before anything older than its next id can be taken.
            empty = [s for s in sources if not s.buffer and not s.done]
            if empty:
                reply = yield _Batch([s.fetch() for s in empty])
                for source, ids in zip(empty, reply, strict=True):
                    source.fill(ids)
            live = [s for s in sources if s.buffer]
            if not live:
                return
            size = _PAGE if filter or remaining is None else min(_PAGE, remaining)
            batch: list[tuple[str, str, str]] = []
            while live and len(batch) < size:
                source = max(live, key=lambda s: s.buffer[0])
                batch.append((source.thread_id, source.checkpoint_ns, source.buffer.popleft()))
                if not source.buffer:
                    if not source.done:
                        break
                    live.remove(source)
            metadata: dict[tuple[str, str, str], Any] = {}
            if filter:
                reply = yield _Batch(
                    [("HGET", self._thread_keys(t).ns(ns).metadata, c) for t, ns, c in batch]
                )
                selected = []
                for item, raw in zip(batch, reply, strict=True):
                    if raw is None:
                        continue
                    meta = self._decode(*item, "metadata", lambda r=raw: self._loads(r))
                    if all(meta.get(k) == v for k, v in filter.items()):
                        metadata[item] = meta
                        selected.append(item)
                batch = selected
            if remaining is not None:
                batch = batch[:remaining]
            if not batch:
                continue
            extra = []
            for thread_id in dict.fromkeys(t for t, _, _ in batch):
                extra += touch.pop(thread_id, [])
            for item in (yield from self._load_op(batch, metadata, extra)):
                yield _Emit(item)
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return

    def _delete_threads_op(self, thread_ids: Iterable[str]) -> Op:
        for thread_id in dict.fromkeys(str(t) for t in thread_ids):
            keys = self._thread_keys(thread_id)
            runs: list[str] = []

            def body(keys: _ThreadKeys = keys, runs: list[str] = runs) -> Generator:
                yield _Watch([keys.namespaces, keys.runs])
                reply = yield _Batch([("SMEMBERS", keys.namespaces), ("SMEMBERS", keys.runs)])
                runs[:] = _texts(reply[1])
                return [("DEL", *keys.all(_texts(reply[0])))]

            yield _Optimistic(body)
            yield _Batch(
                [("ZREM", self._threads_key, thread_id)]
                + [("SREM", self._run_key(r), thread_id) for r in runs]
            )

    def _copy_thread_op(self, source_thread_id: str, target_thread_id: str) -> Op:
        source_id, target_id = str(source_thread_id), str(target_thread_id)
        if source_id == target_id:
            return
        src, dst = self._thread_keys(source_id), self._thread_keys(target_id)
        reply = yield _Batch(
            [("SMEMBERS", src.namespaces), ("SMEMBERS", src.runs), ("SMEMBERS", dst.namespaces)]
        )
        namespaces, runs = _texts(reply[0]), _texts(reply[1])
        if not namespaces:
            return
        target_namespaces = set(namespaces) | set(_texts(reply[2]))
        reads: list[Command] = []
        for checkpoint_ns in namespaces:  # one MULTI/EXEC: a consistent snapshot of the source
            nk = src.ns(checkpoint_ns)
            reads += [("HGETALL", k) for k in (nk.checkpoints, nk.metadata, nk.blobs, nk.writes)]
        reply = yield _Batch(reads, transaction=True)
        yield _Batch(
            [("SADD", self._run_key(r), target_id) for r in runs]
            + self._touch_indexes(target_id, runs)
        )
        tx: list[Command] = [("SADD", dst.namespaces, *namespaces)]
        if runs:
            tx.append(("SADD", dst.runs, *runs))
        for n, checkpoint_ns in enumerate(namespaces):
            nk = dst.ns(checkpoint_ns)
            checkpoints, metadata, blobs, writes = reply[4 * n : 4 * n + 4]
            for key, mapping in (
                (nk.checkpoints, checkpoints),
                (nk.metadata, metadata),
                (nk.blobs, blobs),
                (nk.writes, writes),
            ):
                if mapping:
                    tx.append(("HSET", key, *(x for kv in mapping.items() for x in kv)))
            if checkpoints:
                tx.append(("ZADD", nk.ids, *(x for c in checkpoints for x in (0, c))))
            if writes:
                tx.append(("ZADD", nk.write_index, *(x for w in writes for x in (0, w))))
        tx += self._expire(dst.all(target_namespaces))
        yield _Batch(tx, transaction=True)

    def _delete_for_runs_op(self, run_ids: Sequence[str]) -> Op:
        if isinstance(run_ids, (str, bytes)):
            raise TypeError("run_ids must be a sequence of run ids, not a single string")
        wanted = set(dict.fromkeys(str(r) for r in run_ids))
        if not wanted:
            return
        ordered = sorted(wanted)
        reply = yield _Batch([("SMEMBERS", self._run_key(r)) for r in ordered])
        threads = sorted({t for members in reply for t in _texts(members)})
        for thread_id in threads:
            yield from self._trim_op(thread_id, wanted)
        yield _Batch([("DEL", *(self._run_key(r) for r in ordered))])

    def _retained(self, put: Op, config: RunnableConfig, metadata: CheckpointMetadata) -> Op:
        """``put``, then, when it stored the input checkpoint of a new run and ``keep`` is
        set, the thread trimmed to its latest ``keep`` checkpoints (automatic retention)."""
        stored = yield from put
        if self.keep is not None and metadata.get("source") == "input":
            yield from self._trim_op(str(config["configurable"]["thread_id"]), None, self.keep)
        return stored

    def _prune_op(self, thread_ids: Sequence[str], strategy: str, keep: int = 1) -> Op:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep!r}")
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}: use one of {sorted(PRUNE_STRATEGIES)}"
            )
        if isinstance(thread_ids, (str, bytes)):
            raise TypeError("thread_ids must be a sequence of thread ids, not a single string")
        if strategy != "keep_latest":
            yield from self._delete_threads_op(thread_ids)
            return
        for thread_id in dict.fromkeys(str(t) for t in thread_ids):
            yield from self._trim_op(thread_id, None, keep)

    def _trim_op(self, thread_id: str, run_ids: set[str] | None, count: int = 1) -> Op:
        """Delete checkpoints of one thread (and their writes and unreferenced values).

        ``run_ids`` given: the checkpoints written by those runs. ``None``: all but the
        latest ``count`` per namespace and the DeltaChannel ancestors they need (keep_latest).
        """
        keys = self._thread_keys(thread_id)
        dropped_runs: list[str] = []

        def body() -> Generator[_Watch | _Batch, Any, list[Command]]:
            yield _Watch([keys.namespaces, keys.runs])
            reply = yield _Batch([("SMEMBERS", keys.namespaces), ("SMEMBERS", keys.runs)])
            namespaces, runs = _texts(reply[0]), set(_texts(reply[1]))
            if not namespaces:
                return []
            nks = [keys.ns(ns) for ns in namespaces]
            yield _Watch([k for nk in nks for k in nk.all()])
            reads: list[Command] = []
            for nk in nks:
                reads += [
                    ("HGETALL", nk.checkpoints),
                    ("HKEYS", nk.blobs),
                    ("ZRANGE", nk.write_index, 0, -1),
                ]
            reply = yield _Batch(reads)
            headers: dict[str, dict[str, _Header]] = {}
            for n, checkpoint_ns in enumerate(namespaces):
                headers[checkpoint_ns] = {
                    _text(c): self._decode(
                        thread_id,
                        checkpoint_ns,
                        _text(c),
                        "checkpoint header",
                        lambda r=raw: _parse_header(r)[0],
                    )
                    for c, raw in reply[3 * n].items()
                }
            kept: dict[str, set[str]] = {}
            if run_ids is not None:
                for checkpoint_ns, by_id in headers.items():
                    kept[checkpoint_ns] = {c for c, h in by_id.items() if h.run_id not in run_ids}
            else:
                latest = {ns: max(by_id) for ns, by_id in headers.items() if by_id}
                metadata_reply = []
                if latest:
                    metadata_reply = yield _Batch(
                        [("HGET", keys.ns(ns).metadata, c) for ns, c in latest.items()]
                    )
                for (checkpoint_ns, checkpoint_id), raw in zip(
                    latest.items(), metadata_reply, strict=True
                ):
                    meta = (
                        self._decode(
                            thread_id,
                            checkpoint_ns,
                            checkpoint_id,
                            "metadata",
                            lambda r=raw: self._loads(r),
                        )
                        if raw is not None
                        else {}
                    )
                    blob_fields = {_text(f) for f in reply[3 * namespaces.index(checkpoint_ns) + 1]}
                    kept[checkpoint_ns] = _delta_chain(
                        headers[checkpoint_ns],
                        meta.get(_DELTA_COUNTERS_KEY),
                        blob_fields,
                        count,
                    )
            commands: list[Command] = []
            remaining_runs: set[str] = set()
            for n, (checkpoint_ns, nk) in enumerate(zip(namespaces, nks, strict=True)):
                by_id = headers[checkpoint_ns]
                keep = kept.get(checkpoint_ns, set())
                remaining_runs |= {by_id[c].run_id for c in keep if by_id[c].run_id}
                drop = sorted(set(by_id) - keep)
                referenced = set().union(*(by_id[c].blob_fields() for c in keep))
                stale_blobs = sorted({_text(f) for f in reply[3 * n + 1]} - referenced)
                kept_prefixes = {_q(c) for c in keep}
                # Writes of a checkpoint newer than the latest stored one belong to a running
                # graph that has not stored it yet (async durability): kept.
                newest = max(by_id, default="") if run_ids is None else None
                stale_writes = [
                    w
                    for w in _texts(reply[3 * n + 2])
                    if w.split(":", 1)[0] not in kept_prefixes
                    and (newest is None or unquote(w.split(":", 1)[0]) < newest)
                ]
                if not keep:
                    commands += [("DEL", *nk.all()), ("SREM", keys.namespaces, checkpoint_ns)]
                    continue
                if drop:
                    commands += [
                        ("ZREM", nk.ids, *drop),
                        ("HDEL", nk.checkpoints, *drop),
                        ("HDEL", nk.metadata, *drop),
                    ]
                if stale_blobs:
                    commands.append(("HDEL", nk.blobs, *stale_blobs))
                if stale_writes:
                    commands += [
                        ("HDEL", nk.writes, *stale_writes),
                        ("ZREM", nk.write_index, *stale_writes),
                    ]
            dropped_runs[:] = sorted(runs - remaining_runs)
            if dropped_runs:
                commands.append(("SREM", keys.runs, *dropped_runs))
            return commands

        yield _Optimistic(body)
        if dropped_runs:
            yield _Batch([("SREM", self._run_key(r), thread_id) for r in dropped_runs])


def _delta_chain(headers: dict[str, _Header], counters: Any, blob_fields: set[str], count: int) -> set[str]:
    """The latest ``count`` checkpoints plus the ancestors their DeltaChannels still need.

    Mirrors ``get_delta_channel_history``: a channel counted in the latest checkpoint's
    ``counters_since_delta_snapshot`` that has a version but no stored value in a kept
    checkpoint is rebuilt by replaying ancestors' writes back to the nearest ancestor storing
    a value for it, so that chain (ancestor included) is kept.
    """
    heads = sorted(headers)[-count:]
    keep = set(heads)
    for head_id in heads:
        # A walk may stop at another head: that head's own walk goes on from there.
        keep |= _ancestors_needed(headers, head_id, counters, blob_fields, stop=set(heads))
    return keep


def _ancestors_needed(
    headers: dict[str, _Header], head_id: str, counters: Any, blob_fields: set[str], *, stop: set[str]
) -> set[str]:
    keep: set[str] = set()
    head = headers[head_id]
    pending = {
        ch
        for ch in (counters or {})
        if ch in head.versions and _blob_field(ch, head.versions[ch]) not in blob_fields
    }
    parent = head.parent
    while pending and parent and parent in headers and parent not in keep and parent not in stop:
        keep.add(parent)
        ancestor = headers[parent]
        pending = {
            ch
            for ch in pending
            if not (
                ch in ancestor.versions and _blob_field(ch, ancestor.versions[ch]) in blob_fields
            )
        }
        parent = ancestor.parent
    return keep
