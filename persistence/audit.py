"""Append-only, hash-chained audit log (JSON lines).

Each record carries the SHA-256 of the previous record, so editing, removing or
reordering a record breaks the chain and :meth:`AuditLog.verify` finds it. Records hold
hashes of the request and answer, never the raw text. Appends take an exclusive file
lock, so several processes can share one log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

GENESIS = "0" * 64


def sha256(text: str) -> str:
    """Hex SHA-256 of a string, for storing a fingerprint instead of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(record: Mapping[str, Any]) -> str:
    return sha256(json.dumps(record, sort_keys=True, separators=(",", ":")))


def _last_hash(f: IO[bytes], block: int = 4096) -> str:
    """The ``hash`` of the file's last record, reading backwards from the end."""
    end = f.seek(0, 2)
    tail = b""
    while end > 0:
        start = max(end - block, 0)
        f.seek(start)
        tail = f.read(end - start) + tail
        end = start
        lines = tail.strip().splitlines()
        if len(lines) > 1 or (lines and start == 0):
            return json.loads(lines[-1])["hash"]
    return GENESIS


class AuditLog:
    """A JSON-lines audit file whose records form a hash chain."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = path
        self.clock = clock

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Append ``event`` with a timestamp and the chain fields; return the record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                record = {**event, "ts": self.clock().isoformat(), "prev": _last_hash(f)}
                record["hash"] = _digest(record)
                f.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return record

    def verify(self) -> int:
        """Check the whole chain and return the number of records.

        Raises:
            ValueError: naming the first line that was altered, removed or reordered.
        """
        if not self.path.exists():
            return 0
        prev = GENESIS
        count = 0
        with self.path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                claimed = record.pop("hash", None)
                if record.get("prev") != prev or _digest(record) != claimed:
                    raise ValueError(f"audit log {self.path} is broken at line {number}")
                prev = claimed
                count += 1
        return count
