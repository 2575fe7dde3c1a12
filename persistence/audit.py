"""Append-only, hash-chained audit log: a JSON-lines file, or a Redis stream shared by replicas.

**Chain.** Each record carries the SHA-256 of the previous record (``prev``) and of itself
(``hash``), so editing, removing or reordering a record breaks the chain and
:meth:`AuditChain.check` names the first bad record. Records hold hashes of the request and
answer, never the raw text.

**One record per run.** Every record is keyed by its ``run_id``: appending a run id the log
already holds writes nothing and returns ``None``, so a run resumed after a crash that re-runs
the audit node is audited once.

**Retention.** Each record names a retention policy (``retention``; by default
``SHORT_TERM`` 30 days, ``LONG_TERM`` 7 years, ``PERMANENT`` never: ``BULWARK_AUDIT_RETENTION_DAYS``).
:meth:`AuditChain.prune` removes the records older than a date whose policy has expired and
puts an *anchor* at the head of the log: the hash of the last record it covers, how many
records were removed in all, and the hashes, in order, of the records it kept among them
(records of longer policies), so what remains still verifies. A record ``prev``-links to the
record before it, or, right after the anchor's kept records, to the anchor's ``last_hash``.
The chain has no secret: it shows edits made without recomputing every later hash, and
cutting off the newest records shows only against a head hash kept elsewhere (``bulwark
audit verify`` prints it).

**Backends.** :class:`AuditLog` is a JSON-lines file (``<data_dir>/audit.jsonl``). Appends
and prunes take an exclusive lock on a sibling ``.lock`` file rather than on the log, because
a prune replaces the log by renaming a new file over it (atomic) and a writer still holding
the old file would write into the void. Each instance reads the log once, then only what
other processes appended since (the head hash and the run ids), so appends stay cheap; the
run ids of the whole file are kept in memory. :class:`RedisAuditLog` keeps the log in Redis
(on deployments whose checkpointer is Redis), shared by every replica: a stream of records
(``XADD``), the head hash, a hash of run ids for idempotence and the anchor, all under one
hash tag (one Redis Cluster slot). Redis' Lua has SHA-1 but no SHA-256, so the client hashes
the record and a Lua script appends it only if the head is still the record's ``prev`` and
its run id is new (compare-and-append, atomic across replicas); a replica that lost the race
rebuilds the record on the new head. Prunes swap the anchor with a compare-and-set, so a
concurrent prune or append never loses a record.

Why our own: the ecosystem's audit trails are services (immudb, Trillian) or tied to an ORM;
none keeps a hash chain with retention in a plain file and in core Redis, which is what the
rest of Bulwark's persistence runs on.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from bulwark.persistence.redis import mask_url, parse_redis_url

if TYPE_CHECKING:
    from bulwark.settings import Settings

GENESIS = "0" * 64
ANCHOR = "anchor"
DEFAULT_RETENTION = "LONG_TERM"
DEFAULT_RETENTION_DAYS: dict[str, int | None] = {"SHORT_TERM": 30, "LONG_TERM": 7 * 365, "PERMANENT": None}
"""Days a record of each retention policy is kept; ``None``: never pruned."""
POLICY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_CAS_ATTEMPTS = 100
_REDIS_TIMEOUTS = {"socket_timeout": 5, "socket_connect_timeout": 5}


class AuditError(ValueError):
    """The audit chain is broken; the message names the first bad record."""


@dataclass(frozen=True)
class ChainStatus:
    """What :meth:`AuditChain.check` found on an intact chain."""

    records: int
    """Records in the log (the anchor not counted)."""
    pruned: int
    """Records removed by prunes so far (as the anchor says)."""
    head: str
    """The hash the next record will name as ``prev``: keep it elsewhere to detect truncation."""


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`AuditChain.prune` did."""

    removed: int
    """Records removed by this prune."""
    kept: int
    """Records older than the date kept by their retention policy (listed by the anchor)."""
    anchor: str | None
    """Hash of the new anchor; ``None`` when nothing was removed (the log is unchanged)."""


@dataclass(frozen=True)
class _Entry:
    where: str
    """Where the record is, for messages: ``line 3``, ``entry 1700000000000-0``, ``the anchor``."""
    ref: Any
    """The backend's handle: the raw line (file) or the stream id (Redis)."""
    record: dict[str, Any]


@dataclass(frozen=True)
class _Plan:
    anchor: dict[str, Any]
    removed: list[_Entry]
    kept: list[_Entry]
    rest: list[_Entry]


def sha256(text: str) -> str:
    """Hex SHA-256 of a string, for storing a fingerprint instead of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest(record: Mapping[str, Any]) -> str:
    return sha256(json.dumps(record, sort_keys=True, separators=(",", ":")))


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def check_retention(days: Mapping[str, int | None], default: str | None = None) -> None:
    """Check a retention table and, if given, the default policy of new records.

    Raises:
        ValueError: one line naming the bad policy or value.
    """
    for name, value in days.items():
        if not POLICY_NAME.fullmatch(name):
            raise ValueError(f"invalid retention policy name {name[:40]!r}: use 1-32 capitals, digits or '_', e.g. SHORT_TERM")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"retention policy {name}: days must be a whole number >= 1 or null (never pruned), got {value!r}")
    if default is not None and default not in days:
        raise ValueError(f"unknown retention policy {default[:40]!r}: use one of {', '.join(days)}")


class AuditChain(ABC):
    """A hash-chained audit log; :class:`AuditLog` (file) and :class:`RedisAuditLog` store it.

    Args:
        retention: the policy of new records, a key of ``retention_days``.
        retention_days: days each policy keeps a record; ``None``: forever.
        clock: the time stamped on records and the "now" of prunes.
    """

    def __init__(
        self,
        *,
        retention: str = DEFAULT_RETENTION,
        retention_days: Mapping[str, int | None] = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        check_retention(retention_days, retention)
        self.retention = retention
        self.retention_days = dict(retention_days)
        self.clock = clock

    @property
    @abstractmethod
    def name(self) -> str:
        """Where the log is, for messages (a path, a masked URL and key)."""

    @abstractmethod
    def append(self, event: Mapping[str, Any], *, run_id: str) -> dict[str, Any] | None:
        """Append ``event`` as run ``run_id``'s record (timestamp, retention policy and chain
        fields added) and return it; ``None`` if the log already holds a record of the run."""

    @abstractmethod
    async def aappend(self, event: Mapping[str, Any], *, run_id: str) -> dict[str, Any] | None:
        """Async :meth:`append`."""

    @abstractmethod
    def prune(self, *, before: datetime) -> PruneReport:
        """Remove the records older than ``before`` that their retention policy lets go,
        behind an anchor that keeps the rest verifiable. Checks the chain first.

        Raises:
            AuditError: the chain is broken (pruning would hide it).
        """

    @abstractmethod
    def _entries(self) -> Iterable[_Entry]:
        """The log's records in order, the anchor (if any) first."""

    def check(self) -> ChainStatus:
        """Walk the whole chain.

        Raises:
            AuditError: naming the first record that was edited, removed, inserted or reordered.
        """
        return self._walk(self._entries())

    def verify(self) -> int:
        """Check the whole chain and return the number of records (see :meth:`check`)."""
        return self.check().records

    def export(self, *, tenant: str, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The records of ``tenant`` (from ``since`` on, if given), as stored, oldest first."""
        for entry in self._entries():
            record = entry.record
            if record.get("tenant_id") == tenant and (since is None or self._ts(entry) >= since):
                yield record

    def _stamp(self, event: Mapping[str, Any], *, run_id: str, prev: str) -> dict[str, Any]:
        record = {**event, "run_id": run_id, "retention": self.retention, "ts": self.clock().isoformat(), "prev": prev}
        record["hash"] = _digest(record)
        return record

    def _broken(self, where: str, why: str) -> AuditError:
        return AuditError(f"audit log {self.name} is broken at {where}: {why}")

    def _ts(self, entry: _Entry) -> datetime:
        try:
            ts = datetime.fromisoformat(entry.record["ts"])
        except (KeyError, TypeError, ValueError):
            raise self._broken(entry.where, "it has no valid timestamp") from None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    def _walk(self, entries: Iterable[_Entry]) -> ChainStatus:
        prev, kept, pruned, count = GENESIS, [], 0, 0
        for position, entry in enumerate(entries):
            record = dict(entry.record)
            claimed = record.pop("hash", None)
            if _digest(record) != claimed:
                raise self._broken(entry.where, "its content does not match its hash (edited)")
            if record.get("event") == ANCHOR:
                if position:
                    raise self._broken(entry.where, "an anchor can only head the log")
                prev, kept, pruned = record.get("last_hash"), record.get("kept"), record.get("pruned")
                if not (isinstance(prev, str) and isinstance(kept, list) and isinstance(pruned, int)):
                    raise self._broken(entry.where, "the anchor lacks last_hash, kept or pruned")
                continue
            if count < len(kept):
                if claimed != kept[count]:
                    raise self._broken(entry.where, "it is not the record the anchor kept here (one was removed or reordered)")
            elif record.get("prev") != prev:
                raise self._broken(entry.where, "it does not follow the record before it (one was removed, inserted or reordered)")
            else:
                prev = claimed
            count += 1
        if count < len(kept):
            raise self._broken("the end", f"{len(kept) - count} record(s) the anchor kept are missing")
        return ChainStatus(records=count, pruned=pruned, head=prev)

    def _plan(self, entries: list[_Entry], before: datetime) -> _Plan | None:
        """What a prune before ``before`` removes and keeps; ``None``: nothing to remove."""
        if before.tzinfo is None:
            raise ValueError("before must be timezone-aware")
        self._walk(entries)
        anchor = entries[0].record if entries and entries[0].record.get("event") == ANCHOR else None
        records = entries[1:] if anchor else entries
        old_kept = len(anchor["kept"]) if anchor else 0
        now = self.clock()
        region = 0  # the prefix older than ``before``, cut after its last removable record
        for index, entry in enumerate(records):
            if self._ts(entry) >= before:
                break
            if self._expired(entry, now):
                region = index + 1
        removed, kept = [], []
        for index, entry in enumerate(records[: max(region, old_kept)]):
            (removed if index < region and self._expired(entry, now) else kept).append(entry)
        if not removed:
            return None
        chained = records[old_kept:region]
        new_anchor = {
            "event": ANCHOR,
            "ts": now.isoformat(),
            "before": before.isoformat(),
            "pruned": (anchor["pruned"] if anchor else 0) + len(removed),
            "last_hash": chained[-1].record["hash"] if chained else anchor["last_hash"],  # type: ignore[index]
            "kept": [entry.record["hash"] for entry in kept],
            "prev": anchor["hash"] if anchor else GENESIS,
        }
        new_anchor["hash"] = _digest(new_anchor)
        return _Plan(anchor=new_anchor, removed=removed, kept=kept, rest=records[max(region, old_kept) :])

    def _expired(self, entry: _Entry, now: datetime) -> bool:
        days = self.retention_days.get(entry.record.get("retention"))  # unknown policy: kept
        return days is not None and self._ts(entry) < now - timedelta(days=days)


class AuditLog(AuditChain):
    """The audit log as a JSON-lines file (see the module docstring)."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._reset(inode=None)

    @property
    def name(self) -> str:
        return str(self.path)

    def _reset(self, *, inode: int | None) -> None:
        """Forget what was read of the file (it was replaced, or never read)."""
        self._inode, self._offset, self._head = inode, 0, GENESIS
        self._runs: set[str] = set()
        self._kept: set[str] = set()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, event: Mapping[str, Any], *, run_id: str) -> dict[str, Any] | None:
        with self._locked(), self.path.open("a+b") as f:
            torn = self._catch_up(f)
            if run_id in self._runs:
                return None
            record = self._stamp(event, run_id=run_id, prev=self._head)
            # After a writer that died mid-line, start a line of our own: verify reports the torn one.
            data = (b"\n" if torn else b"") + (_line(record) + "\n").encode("utf-8")
            f.write(data)
            f.flush()
            self._offset += len(data)
            self._head = record["hash"]
            self._runs.add(run_id)
        return record

    async def aappend(self, event: Mapping[str, Any], *, run_id: str) -> dict[str, Any] | None:
        """Async :meth:`append`: the lock, the write and the flush run on a worker thread, so
        a busy log never stalls the event loop."""
        return await asyncio.to_thread(self.append, event, run_id=run_id)

    def _catch_up(self, f: Any) -> bool:
        """Read what was appended since the last call (everything if the file was replaced);
        return whether the file ends in a torn line."""
        stat = os.fstat(f.fileno())
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._reset(inode=stat.st_ino)
        f.seek(self._offset)
        data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a broken line: verify names it; the chain goes on past it
            if record.get("event") == ANCHOR:
                self._head, self._kept = record["last_hash"], set(record["kept"])
                continue
            self._runs.add(record.get("run_id"))
            if record.get("hash") not in self._kept:
                self._head = record.get("hash", self._head)
        self._offset += end
        return end < len(data)

    def _entries(self) -> Iterator[_Entry]:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise self._broken(f"line {number}", "it is not a JSON record") from None
                if not isinstance(record, dict):
                    raise self._broken(f"line {number}", "it is not a JSON record")
                yield _Entry(f"line {number}", line if line.endswith(b"\n") else line + b"\n", record)

    def prune(self, *, before: datetime) -> PruneReport:
        with self._locked():
            plan = self._plan(list(self._entries()), before)
            if plan is None:
                return PruneReport(removed=0, kept=0, anchor=None)
            temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
            try:
                with temporary.open("wb") as out:
                    out.write((_line(plan.anchor) + "\n").encode("utf-8"))
                    out.writelines(entry.ref for entry in (*plan.kept, *plan.rest))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            finally:
                temporary.unlink(missing_ok=True)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        return PruneReport(removed=len(plan.removed), kept=len(plan.kept), anchor=plan.anchor["hash"])


_APPEND = """
-- KEYS: stream, runs, head.  ARGV: run id, the record's prev, the record, its hash.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {0, ''} end
local head = redis.call('GET', KEYS[3]) or ARGV[5]
if head ~= ARGV[2] then return {-1, head} end
local id = redis.call('XADD', KEYS[1], '*', 'record', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('SET', KEYS[3], ARGV[4])
return {1, id}
"""

_PRUNE = """
-- KEYS: anchor, stream, runs.  ARGV: the anchor read, the new anchor, n, n stream ids, run ids.
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
for i = 4, 3 + n do redis.call('XDEL', KEYS[2], ARGV[i]) end
for i = 4 + n, #ARGV do redis.call('HDEL', KEYS[3], ARGV[i]) end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

_Step = Generator[list[str], list[Any], "dict[str, Any] | None"]


class RedisAuditLog(AuditChain):
    """The audit log in Redis, shared by replicas (see the module docstring).

    Args:
        url: a ``redis[s]://`` URL (without Bulwark's ``?ttl=``: audit records never expire).
        key: the keys' common name, used as their hash tag: ``{bulwark:audit}:stream``...
    """

    def __init__(self, url: str, *, key: str = "bulwark:audit", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self._shown = f"{mask_url(url)} {key}"
        tag = "{" + key + "}"
        self.stream, self.runs, self.head, self.anchor = (f"{tag}:{part}" for part in ("stream", "runs", "head", "anchor"))
        self._client = redis.Redis.from_url(url, **_REDIS_TIMEOUTS)
        self._append_script = self._client.register_script(_APPEND)
        self._aclient: redis.asyncio.Redis | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._last_head = GENESIS  # a guess of the head, corrected by the script if stale

    @property
    def name(self) -> str:
        return self._shown

    def _aredis(self) -> redis.asyncio.Redis:
        """The asyncio client for the running event loop (one per loop: pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            self._aclient = redis.asyncio.Redis.from_url(self.url, **_REDIS_TIMEOUTS)
            self._aclient_loop = loop
        return self._aclient

    def _appending(self, event: Mapping[str, Any], run_id: str) -> _Step:
        """The compare-and-append loop: yields the script's arguments, receives its reply."""
        head = self._last_head
        for _ in range(_CAS_ATTEMPTS):
            record = self._stamp(event, run_id=run_id, prev=head)
            status, value = yield [run_id, head, _line(record), record["hash"], GENESIS]
            if status == 0:
                return None
            if status == 1:
                self._last_head = record["hash"]
                return record
            head = value.decode()  # another replica appended first: chain onto its record
        raise RuntimeError(f"could not append to audit log {self.name}: {_CAS_ATTEMPTS} concurrent appends won the race")

    def append(self, event: Mapping[str, Any], *, run_id: str) -> dict[str, Any] | None:
        step = self._appending(event, run_id)
        keys = [self.stream, self.runs, self.head]
        try:
            args = next(step)
            while True:
                args = step.send(self._append_script(keys=keys, args=args))
        except StopIteration as done:
            return done.value

    async def aappend(self, event: Mapping[str, Any], *, run_id: str) -> dict[str, Any] | None:
        script = self._aredis().register_script(_APPEND)
        step = self._appending(event, run_id)
        keys = [self.stream, self.runs, self.head]
        try:
            args = next(step)
            while True:
                args = step.send(await script(keys=keys, args=args))
        except StopIteration as done:
            return done.value

    def _read(self) -> tuple[bytes | None, list[_Entry]]:
        """The anchor as stored and every record, read again if a prune ran meanwhile."""
        while True:
            anchor = self._client.get(self.anchor)
            entries = [_Entry("the anchor", None, json.loads(anchor))] if anchor else []
            start = "-"
            while page := self._client.xrange(self.stream, min=start, max="+", count=1000):
                for stream_id, fields in page:
                    where = f"entry {stream_id.decode()}"
                    try:
                        record = json.loads(fields[b"record"])
                    except (KeyError, ValueError):
                        raise self._broken(where, "it is not a JSON record") from None
                    entries.append(_Entry(where, stream_id, record))
                start = "(" + page[-1][0].decode()
            if self._client.get(self.anchor) == anchor:
                return anchor, entries

    def _entries(self) -> list[_Entry]:
        return self._read()[1]

    def prune(self, *, before: datetime) -> PruneReport:
        script = self._client.register_script(_PRUNE)
        for _ in range(_CAS_ATTEMPTS):
            stored, entries = self._read()
            plan = self._plan(entries, before)
            if plan is None:
                return PruneReport(removed=0, kept=0, anchor=None)
            ids = [entry.ref for entry in plan.removed]
            runs = [entry.record["run_id"] for entry in plan.removed if "run_id" in entry.record]
            args = [stored or b"", _line(plan.anchor), len(ids), *ids, *runs]
            if script(keys=[self.anchor, self.stream, self.runs], args=args):
                return PruneReport(removed=len(ids), kept=len(plan.kept), anchor=plan.anchor["hash"])
        raise RuntimeError(f"could not prune audit log {self.name}: other prunes kept changing it")


def audit_log_for(settings: Settings) -> AuditChain:
    """The deployment's audit log: in Redis when the checkpointer is Redis (shared by the
    replicas), else ``<data_dir>/audit.jsonl``; retention from the settings."""
    retention = {"retention": settings.audit_retention, "retention_days": settings.audit_retention_days}
    url = settings.resolved_checkpointer_url
    if url.startswith(("redis://", "rediss://")):
        return RedisAuditLog(parse_redis_url(url)[0], **retention)  # the checkpoints' ?ttl= is not for the audit
    return AuditLog(settings.data_dir / "audit.jsonl", **retention)
