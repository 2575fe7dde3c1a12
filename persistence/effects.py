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
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import redis

Status = Literal["success", "error"]


@dataclass(frozen=True)
class Claim:
    """The journal's answer to "may this call run?"."""

    fresh: bool
    """True: the key was free and is now claimed; run the call, then :meth:`finish`."""
    outcome: tuple[Status, str] | None = None
    """For a repeated call that finished before: its recorded status and content."""


_STARTED = "started"


class EffectJournal:
    """Claims and outcomes of side-effecting calls, by idempotency key."""

    def __init__(self, *, path: Path | None = None, redis_url: str | None = None,
                 ttl_s: int = 7 * 24 * 3600, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if (path is None) == (redis_url is None):
            raise ValueError("give exactly one of path (SQLite) or redis_url")
        self.clock = clock
        self.ttl_s = ttl_s
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5) if redis_url else None
        self._path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._sqlite() as db:
                db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, record TEXT NOT NULL)")

    @classmethod
    def for_checkpointer(cls, url: str, *, data_dir: Path) -> EffectJournal:
        """The journal that lives next to the checkpoints named by ``url``."""
        if url.startswith(("redis://", "rediss://")):
            return cls(redis_url=url)
        return cls(path=data_dir / "effects.db")

    def _sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30, isolation_level=None)

    def _redis_key(self, key: str) -> str:
        return f"bulwark:effects:{{{key}}}"

    def claim(self, key: str) -> Claim:
        """Atomically claim ``key`` or report what happened to it before."""
        record = json.dumps({"status": _STARTED, "at": self.clock().isoformat()})
        if self._redis is not None:
            if self._redis.set(self._redis_key(key), record, nx=True, ex=self.ttl_s):
                return Claim(fresh=True)
            existing = self._redis.get(self._redis_key(key))
        else:
            with self._sqlite() as db:
                if db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (key, record)).rowcount:
                    return Claim(fresh=True)
                row = db.execute("SELECT record FROM effects WHERE key = ?", (key,)).fetchone()
                existing = row[0] if row else None
        stored = json.loads(existing) if existing else {"status": _STARTED}
        if stored["status"] == _STARTED:
            return Claim(fresh=False)
        return Claim(fresh=False, outcome=(stored["status"], stored["content"]))

    def finish(self, key: str, status: Status, content: str) -> None:
        """Record the outcome of a claimed call."""
        record = json.dumps({"status": status, "content": content, "at": self.clock().isoformat()})
        if self._redis is not None:
            self._redis.set(self._redis_key(key), record, ex=self.ttl_s)
        else:
            with self._sqlite() as db:
                db.execute("UPDATE effects SET record = ? WHERE key = ?", (record, key))
