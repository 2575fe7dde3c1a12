"""Storage of the PII vault: sealed values by tenant and thread, in SQLite or Redis.

The vault (:mod:`bulwark.guardrails.vault`) hands this module only what it may keep:
each value sealed (AES-256-GCM ciphertext, base64) and its keyed digest (an HMAC of the
value, to find it again), the entity label and the owner as the SHA-256 of the user id. In
the clear are the tenant and thread ids and the placeholders (``<EMAIL_1>``).

Per ``(tenant, thread)`` the store keeps the owner, an expiry (``ttl_s`` after the last
value added, on the store's injected clock, so TTLs are tested without sleeping) and the
values. :meth:`~VaultStore.assign` gives a digest seen before its placeholder again, and a
new one the next number of its label (``<EMAIL_2>``), for a whole text's values in one
atomic step (SQLite: one ``BEGIN IMMEDIATE`` transaction; Redis: one Lua script), so two
runs racing on a thread never give two values one number. An expired thread reads as empty
and is erased on the next write. :meth:`~VaultStore.delete_thread` erases a thread's values
(the server's thread deletion, ``bulwark threads delete``), :meth:`~VaultStore.delete_user`
every thread of a user (``bulwark memory forget``).

**Backends**, chosen like the usage ledger (:func:`vault_store_for`): SQLite
``<data_dir>/vault.db`` (WAL), whose async twins run the same short transactions on a
worker thread; or the checkpointer's Redis, shared by the replicas: a hash per thread (with
a Redis TTL as well, so an abandoned thread goes even if nothing reads it again) and two
index sets (by thread id, by owner), all under one hash tag (one Redis Cluster slot). Only
core commands of Redis >= 6.2 are used.

Why our own: the reversible anonymizers (Presidio's ``encrypt`` operator, LLM Guard's
``Vault``) keep no store with per-thread numbering, expiry and erasure by thread and user,
and LLM Guard's keeps values in the clear in process memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from bulwark.persistence.redis import parse_redis_url

if TYPE_CHECKING:
    from bulwark.settings import Settings

__all__ = ["Item", "RedisVaultStore", "Sealed", "SqliteVaultStore", "ThreadValues", "VaultStore", "vault_store_for"]

Item = tuple[str, str, str]
"""A value to keep: ``(label, digest, sealed)``."""
Clock = Callable[[], float]
_REDIS_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5, "decode_responses": True}


@dataclass(frozen=True)
class Sealed:
    """One kept value: its placeholder, keyed digest and ciphertext (base64)."""

    placeholder: str
    digest: str
    sealed: str


@dataclass(frozen=True)
class ThreadValues:
    """What the vault holds for one thread (empty when it holds nothing or expired)."""

    owner: str | None = None
    """SHA-256 of the user id whose input first put a value here."""
    values: dict[str, Sealed] = field(default_factory=dict)
    """By placeholder."""


class VaultStore(ABC):
    """Sealed values by tenant and thread.

    Args:
        ttl_s: a thread's values expire this long after the last one was added.
        clock: seconds since the epoch (injected in tests).
    """

    def __init__(self, *, ttl_s: float, clock: Clock = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock

    @abstractmethod
    def assign(self, tenant: str, thread: str, *, owner: str, items: Sequence[Item]) -> list[str]:
        """The placeholder of each item, in order: the one its digest has in this thread, or
        a new one (the next number of its label); stores the new ones and extends the
        thread's expiry. ``owner`` is recorded if the thread has none yet."""

    @abstractmethod
    async def aassign(self, tenant: str, thread: str, *, owner: str, items: Sequence[Item]) -> list[str]:
        """Async twin of :meth:`assign`."""

    @abstractmethod
    def load(self, tenant: str, thread: str) -> ThreadValues:
        """The thread's owner and values (empty if expired)."""

    @abstractmethod
    async def aload(self, tenant: str, thread: str) -> ThreadValues:
        """Async twin of :meth:`load`."""

    @abstractmethod
    def delete_thread(self, thread: str, *, tenant: str | None = None, owner: str | None = None) -> int:
        """Erase the thread's values (of every tenant when ``tenant`` is ``None``; only if
        ``owner`` owns it, when given); returns the number of vault threads erased."""

    @abstractmethod
    async def adelete_thread(self, thread: str, *, tenant: str | None = None, owner: str | None = None) -> int:
        """Async twin of :meth:`delete_thread`."""

    @abstractmethod
    def delete_user(self, tenant: str, owner: str) -> int:
        """Erase every thread whose owner is ``owner`` (a user's SHA-256) in ``tenant``;
        returns the number of vault threads erased."""

    def close(self) -> None:  # noqa: B027 - a store without connections has nothing to close
        """Release connections."""


# -- SQLite -----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vault_threads (
    tenant TEXT NOT NULL, thread TEXT NOT NULL, owner TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (tenant, thread));
CREATE INDEX IF NOT EXISTS vault_threads_expiry ON vault_threads (expires_at);
CREATE INDEX IF NOT EXISTS vault_threads_owner ON vault_threads (tenant, owner);
CREATE INDEX IF NOT EXISTS vault_threads_thread ON vault_threads (thread);
CREATE TABLE IF NOT EXISTS vault_values (
    tenant TEXT NOT NULL, thread TEXT NOT NULL, placeholder TEXT NOT NULL, label TEXT NOT NULL,
    digest TEXT NOT NULL, sealed TEXT NOT NULL,
    PRIMARY KEY (tenant, thread, placeholder), UNIQUE (tenant, thread, digest));
"""


class SqliteVaultStore(VaultStore):
    """The vault in a SQLite file (``<data_dir>/vault.db``).

    One connection, kept open behind a lock, in WAL mode with ``synchronous=NORMAL`` (as the
    usage ledger): a commit survives the process crashing, not the host losing power, and
    costs no fsync; a value written on every request with PII cannot wait for one.
    """

    def __init__(self, path: Path, *, ttl_s: float, clock: Clock = time.time) -> None:
        super().__init__(ttl_s=ttl_s, clock=clock)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _erase(self, db: sqlite3.Connection, where: str, args: Sequence[Any]) -> int:
        """Erase the threads ``where`` selects (a condition on ``vault_threads``) and their values."""
        threads = db.execute(f"SELECT tenant, thread FROM vault_threads WHERE {where}", args).fetchall()  # noqa: S608 - fixed conditions
        for tenant, thread in threads:
            db.execute("DELETE FROM vault_values WHERE tenant = ? AND thread = ?", (tenant, thread))
            db.execute("DELETE FROM vault_threads WHERE tenant = ? AND thread = ?", (tenant, thread))
        return len(threads)

    def assign(self, tenant: str, thread: str, *, owner: str, items: Sequence[Item]) -> list[str]:
        now = self.clock()
        with self._transaction() as db:
            self._erase(db, "expires_at <= ?", (now,))
            db.execute(
                "INSERT INTO vault_threads (tenant, thread, owner, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, thread) DO UPDATE SET expires_at = excluded.expires_at",
                (tenant, thread, owner, now + self.ttl_s),
            )
            placeholders = []
            for label, digest, sealed in items:
                row = db.execute(
                    "SELECT placeholder FROM vault_values WHERE tenant = ? AND thread = ? AND digest = ?",
                    (tenant, thread, digest),
                ).fetchone()
                if row is None:
                    (count,) = db.execute(
                        "SELECT COUNT(*) FROM vault_values WHERE tenant = ? AND thread = ? AND label = ?",
                        (tenant, thread, label),
                    ).fetchone()
                    row = (f"<{label}_{count + 1}>",)
                    db.execute(
                        "INSERT INTO vault_values (tenant, thread, placeholder, label, digest, sealed) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (tenant, thread, row[0], label, digest, sealed),
                    )
                placeholders.append(row[0])
        return placeholders

    async def aassign(self, tenant: str, thread: str, *, owner: str, items: Sequence[Item]) -> list[str]:
        return await asyncio.to_thread(self.assign, tenant, thread, owner=owner, items=items)

    def load(self, tenant: str, thread: str) -> ThreadValues:
        with self._lock:
            row = self._db.execute(
                "SELECT owner FROM vault_threads WHERE tenant = ? AND thread = ? AND expires_at > ?",
                (tenant, thread, self.clock()),
            ).fetchone()
            if row is None:
                return ThreadValues()
            rows = self._db.execute(
                "SELECT placeholder, digest, sealed FROM vault_values WHERE tenant = ? AND thread = ?",
                (tenant, thread),
            ).fetchall()
        return ThreadValues(owner=row[0], values={p: Sealed(p, d, s) for p, d, s in rows})

    async def aload(self, tenant: str, thread: str) -> ThreadValues:
        return await asyncio.to_thread(self.load, tenant, thread)

    def _delete(self, where: str, args: Sequence[Any]) -> int:
        with self._transaction() as db:
            return self._erase(db, where, args)

    def delete_thread(self, thread: str, *, tenant: str | None = None, owner: str | None = None) -> int:
        where, args = ["thread = ?"], [thread]
        for column, value in (("tenant", tenant), ("owner", owner)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        return self._delete(" AND ".join(where), args)

    async def adelete_thread(self, thread: str, *, tenant: str | None = None, owner: str | None = None) -> int:
        return await asyncio.to_thread(self.delete_thread, thread, tenant=tenant, owner=owner)

    def delete_user(self, tenant: str, owner: str) -> int:
        return self._delete("tenant = ? AND owner = ?", (tenant, owner))

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- Redis ------------------------------------------------------------------------------------

_PREFIX = "{bulwark:vault}"  # one hash tag: every key in one Redis Cluster slot

# KEYS: thread hash, by-thread index, by-owner index.
# ARGV: now_ms, expires_ms, ttl_ms, owner, tenant, thread, then label, digest, sealed per item.
_ASSIGN = """
local exp = redis.call('HGET', KEYS[1], 'exp')
if exp and tonumber(exp) <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
if redis.call('HSETNX', KEYS[1], 'owner', ARGV[4]) == 1 then
  redis.call('HSET', KEYS[1], 'tenant', ARGV[5], 'thread', ARGV[6])
end
local out = {}
for i = 7, #ARGV, 3 do
  local label, digest = ARGV[i], ARGV[i + 1]
  local p = redis.call('HGET', KEYS[1], 'd:' .. digest)
  if not p then
    p = '<' .. label .. '_' .. redis.call('HINCRBY', KEYS[1], 'n:' .. label, 1) .. '>'
    redis.call('HSET', KEYS[1], 'd:' .. digest, p, 'v:' .. p, digest .. ' ' .. ARGV[i + 2])
  end
  out[#out + 1] = p
end
redis.call('HSET', KEYS[1], 'exp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SADD', KEYS[3], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return out
"""


def _sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _thread_key(tenant: str, thread: str) -> str:
    return f"{_PREFIX}:t:{_sha(tenant, thread)}"


def _thread_index(thread: str) -> str:
    return f"{_PREFIX}:thread:{_sha(thread)}"


def _owner_index(tenant: str, owner: str) -> str:
    return f"{_PREFIX}:owner:{_sha(tenant, owner)}"


class RedisVaultStore(VaultStore):
    """The vault in Redis (the checkpointer's), shared by every replica."""

    def __init__(self, url: str, *, ttl_s: float, clock: Clock = time.time) -> None:
        super().__init__(ttl_s=ttl_s, clock=clock)
        self.url = url
        self._client = redis.Redis.from_url(url, **_REDIS_OPTIONS)
        self._assign = self._client.register_script(_ASSIGN)
        self._async: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis, Any] | None = None

    def _bound(self) -> tuple[redis.asyncio.Redis, Any]:
        """The running loop's client and script (connection pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = redis.asyncio.Redis.from_url(self.url, **_REDIS_OPTIONS)
            self._async = (loop, client, client.register_script(_ASSIGN))
        return self._async[1], self._async[2]

    def _assign_call(self, tenant: str, thread: str, owner: str, items: Sequence[Item]) -> dict[str, list]:
        now_ms = int(self.clock() * 1000)
        ttl_ms = max(1, int(self.ttl_s * 1000))
        keys = [_thread_key(tenant, thread), _thread_index(thread), _owner_index(tenant, owner)]
        args: list[Any] = [now_ms, now_ms + ttl_ms, ttl_ms, owner, tenant, thread]
        for item in items:
            args.extend(item)
        return {"keys": keys, "args": args}

    def assign(self, tenant: str, thread: str, *, owner: str, items: Sequence[Item]) -> list[str]:
        return list(self._assign(**self._assign_call(tenant, thread, owner, items)))

    async def aassign(self, tenant: str, thread: str, *, owner: str, items: Sequence[Item]) -> list[str]:
        _, script = self._bound()
        return list(await script(**self._assign_call(tenant, thread, owner, items)))

    def _values(self, stored: dict[str, str]) -> ThreadValues:
        if not stored or int(stored.get("exp", 0)) <= self.clock() * 1000:
            return ThreadValues()
        values = {}
        for key, value in stored.items():
            if key.startswith("v:"):
                digest, sealed = value.split(" ", 1)
                values[key[2:]] = Sealed(key[2:], digest, sealed)
        return ThreadValues(owner=stored.get("owner"), values=values)

    def load(self, tenant: str, thread: str) -> ThreadValues:
        return self._values(self._client.hgetall(_thread_key(tenant, thread)))

    async def aload(self, tenant: str, thread: str) -> ThreadValues:
        client, _ = self._bound()
        return self._values(await client.hgetall(_thread_key(tenant, thread)))

    def delete_thread(self, thread: str, *, tenant: str | None = None, owner: str | None = None) -> int:
        keys = [_thread_key(tenant, thread)] if tenant is not None else list(self._client.smembers(_thread_index(thread)))
        if owner is not None:
            keys = [key for key in keys if self._client.hget(key, "owner") == owner]
        return int(self._client.delete(*keys)) if keys else 0

    async def adelete_thread(self, thread: str, *, tenant: str | None = None, owner: str | None = None) -> int:
        client, _ = self._bound()
        keys = [_thread_key(tenant, thread)] if tenant is not None else list(await client.smembers(_thread_index(thread)))
        if owner is not None:
            keys = [key for key in keys if await client.hget(key, "owner") == owner]
        return int(await client.delete(*keys)) if keys else 0

    def delete_user(self, tenant: str, owner: str) -> int:
        # A thread is indexed under every user whose input wrote to it: erase only the ones
        # this user owns.
        keys = [key for key in self._client.smembers(_owner_index(tenant, owner)) if self._client.hget(key, "owner") == owner]
        erased = int(self._client.delete(*keys)) if keys else 0
        self._client.delete(_owner_index(tenant, owner))
        return erased

    def close(self) -> None:
        self._client.close()


def vault_store_for(settings: Settings, *, clock: Clock = time.time) -> VaultStore:
    """The deployment's vault store: in Redis when the checkpointer is Redis (shared by the
    replicas), else ``<data_dir>/vault.db``."""
    url = settings.resolved_checkpointer_url
    if url.startswith(("redis://", "rediss://")):
        return RedisVaultStore(parse_redis_url(url)[0], ttl_s=settings.vault_ttl_s, clock=clock)
    return SqliteVaultStore(settings.data_dir / "vault.db", ttl_s=settings.vault_ttl_s, clock=clock)
