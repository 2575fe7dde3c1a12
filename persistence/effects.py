"""Effect journal: side-effecting tool calls run at most once per idempotency key.

LangGraph re-runs a task whose results were not checkpointed (a crash, a kill, an outage),
so a tool can be asked twice to do the same thing. An idempotency key passed to the
receiver makes that safe when the receiver honours it; this journal makes it safe when it
does not. Before a side-effecting call runs, its key is claimed atomically; afterwards its
outcome is recorded. A repeated call then gets the recorded outcome instead of running
again, and a call whose first run was cut short is not repeated at all (its effect is
unknown): at most once.

Backends follow the checkpointer: a Redis URL keeps the journal in that Redis (``SET NX``,
shared by every replica); anything else keeps it in SQLite in the data directory.
``aclaim``/``afinish`` are the async path: ``redis.asyncio`` on Redis, the same short SQLite
transaction on a worker thread otherwise.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import redis
import redis.asyncio

from bulwark.persistence.redis import parse_redis_url

Status = Literal["success", "error"]


@dataclass(frozen=True)
class Claim:
    """The journal's answer to "may this call run?"."""

    fresh: bool
    """True: the key was free and is now claimed; run the call, then :meth:`finish`."""
    outcome: tuple[Status, str] | None = None
    """For a repeated call that finished before: its recorded status and content."""


_STARTED = "started"
_REDIS_TIMEOUTS = {"socket_timeout": 5, "socket_connect_timeout": 5}


class EffectJournal:
    """Claims and outcomes of side-effecting calls, by idempotency key."""

    def __init__(self, *, path: Path | None = None, redis_url: str | None = None,
                 ttl_s: int = 7 * 24 * 3600, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if (path is None) == (redis_url is None):
            raise ValueError("give exactly one of path (SQLite) or redis_url")
        self.clock = clock
        self.ttl_s = ttl_s
        self._redis = redis.Redis.from_url(redis_url, **_REDIS_TIMEOUTS) if redis_url else None
        self._redis_url = redis_url
        self._aclient: redis.asyncio.Redis | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._sqlite() as db:
                db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, record TEXT NOT NULL)")

    @classmethod
    def for_checkpointer(cls, url: str, *, data_dir: Path) -> EffectJournal:
        """The journal that lives next to the checkpoints named by ``url``."""
        if url.startswith(("redis://", "rediss://")):
            return cls(redis_url=parse_redis_url(url)[0])  # the checkpoints' ?ttl= is not a Redis option
        return cls(path=data_dir / "effects.db")

    def _sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30, isolation_level=None)

    def _redis_key(self, key: str) -> str:
        return f"bulwark:effects:{{{key}}}"

    def _aredis(self) -> redis.asyncio.Redis:
        """The asyncio client for the running event loop (one per loop: pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            # Only called when the journal is on Redis, so there is a URL.
            self._aclient = redis.asyncio.Redis.from_url(self._redis_url, **_REDIS_TIMEOUTS)  # type: ignore[arg-type]
            self._aclient_loop = loop
        return self._aclient

    def _started(self) -> str:
        return json.dumps({"status": _STARTED, "at": self.clock().isoformat()})

    def _outcome(self, status: Status, content: str) -> str:
        return json.dumps({"status": status, "content": content, "at": self.clock().isoformat()})

    def claim(self, key: str) -> Claim:
        """Atomically claim ``key`` or report what happened to it before."""
        record = self._started()
        if self._redis is None:
            return self._sqlite_claim(key, record)
        if self._redis.set(self._redis_key(key), record, nx=True, ex=self.ttl_s):
            return Claim(fresh=True)
        return _earlier(self._redis.get(self._redis_key(key)))

    async def aclaim(self, key: str) -> Claim:
        """Async :meth:`claim`."""
        record = self._started()
        if self._redis is None:
            # The standard library has no async SQLite driver; the claim is one short
            # transaction (an INSERT, maybe a SELECT), so a worker thread keeps the event
            # loop free, also while it waits up to ``timeout`` for another writer's lock.
            return await asyncio.to_thread(self._sqlite_claim, key, record)
        client = self._aredis()
        if await client.set(self._redis_key(key), record, nx=True, ex=self.ttl_s):
            return Claim(fresh=True)
        return _earlier(await client.get(self._redis_key(key)))

    def finish(self, key: str, status: Status, content: str) -> None:
        """Record the outcome of a claimed call."""
        record = self._outcome(status, content)
        if self._redis is None:
            self._sqlite_finish(key, record)
        else:
            self._redis.set(self._redis_key(key), record, ex=self.ttl_s)

    async def afinish(self, key: str, status: Status, content: str) -> None:
        """Async :meth:`finish`."""
        record = self._outcome(status, content)
        if self._redis is None:
            await asyncio.to_thread(self._sqlite_finish, key, record)  # see aclaim
        else:
            await self._aredis().set(self._redis_key(key), record, ex=self.ttl_s)

    def _sqlite_claim(self, key: str, record: str) -> Claim:
        with self._sqlite() as db:
            if db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (key, record)).rowcount:
                return Claim(fresh=True)
            row = db.execute("SELECT record FROM effects WHERE key = ?", (key,)).fetchone()
        return _earlier(row[0] if row else None)

    def _sqlite_finish(self, key: str, record: str) -> None:
        with self._sqlite() as db:
            db.execute("UPDATE effects SET record = ? WHERE key = ?", (record, key))


def _earlier(existing: str | bytes | None) -> Claim:
    """The answer for a key claimed before, from its stored record."""
    stored = json.loads(existing) if existing else {"status": _STARTED}
    if stored["status"] == _STARTED:
        return Claim(fresh=False)
    return Claim(fresh=False, outcome=(stored["status"], stored["content"]))
