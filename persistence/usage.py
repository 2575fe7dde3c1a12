"""Token and cost accounting: a ledger of model calls and per-tenant daily and monthly budgets.

**Budgets.** A tenant's :class:`Budget` caps its spend in USD per UTC day and per UTC month
(of the ledger's clock); ``None`` is no cap. :func:`budget_for` reads one from the settings'
``budgets`` table (``"*"`` the default; a tenant's entry overrides the default field by
field, ``null`` lifting a cap), which :func:`check_budgets` validates.

**Reserve, then settle.** Before a model call the router reserves its estimated cost
(:meth:`~UsageLedger.reserve`): in one atomic step the ledger checks that the tenant's spend
plus the amount fits both windows and, if so, charges it, so replicas racing for the last
dollars of a budget never overspend between them (Redis: one Lua script; SQLite: one ``BEGIN
IMMEDIATE`` transaction). After the call :meth:`~UsageLedger.settle` replaces the reservation
by the real cost (which may take the window slightly over: the call already happened) and
appends the call to the ledger; a call that failed gives it back (:meth:`~UsageLedger.release`).
A reservation settles or releases once; doing it again records nothing, so a retry cannot
charge twice. A reservation its process never settles (a crash) stays charged until its
windows end: conservative, a budget is never overspent because a replica died. Money is kept
as integer micro-dollars, so sums never drift.

**Backends**, chosen like the audit log (:func:`usage_ledger_for`):

* :class:`SqliteUsageLedger`, ``<data_dir>/usage.db`` (WAL): a table of window counters
  (with the expiry a Redis key would have, swept on settle), one of open reservations and one
  of charges (kept :data:`RETENTION_DAYS`). The async twins run the same short transactions on
  a worker thread: aiosqlite is installed, but it is itself a thread around :mod:`sqlite3`,
  and one implementation is better than two.
* :class:`RedisUsageLedger`, in the checkpointer's Redis, shared by every replica: window
  counters are integer keys with a TTL a bit over their window, open reservations keys that
  end with their month, and the ledger a stream of one JSON field per call (redis-py parses
  one field much faster than ten), whose ids are the calls' times in ms (so
  :meth:`~UsageLedger.report`'s ``since``/``until`` are ``XRANGE`` bounds), trimmed to
  :data:`RETENTION_DAYS` with ``MINID`` on append. Every key carries one hash tag (one Redis
  Cluster slot), so a settle adjusts the counters and appends in one script. The operations
  are written once, as generators of Redis commands, driven by ``redis.Redis`` (sync) or
  ``redis.asyncio.Redis`` (``a*`` methods). Only core commands of Redis >= 6.2 are used.

Redis and SQLite errors propagate: the caller decides whether a call without a budget check
goes ahead.

Why our own: the budget features around LLM calls (LiteLLM's budget manager and proxy
budgets) keep spend in their own store or service and check it before a call without
holding it, so concurrent calls can all pass the check; none reserves atomically across
replicas on SQLite and core Redis, which is what the rest of Bulwark's persistence runs on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from bulwark.persistence.redis import mask_url, parse_redis_url
from bulwark.server.credentials import validate_id

if TYPE_CHECKING:
    from bulwark.settings import Settings

__all__ = [
    "BUDGET_FIELDS",
    "DEFAULT_TENANT",
    "GROUPS",
    "RETENTION_DAYS",
    "Budget",
    "Charge",
    "RedisUsageLedger",
    "Reservation",
    "SqliteUsageLedger",
    "UsageLedger",
    "budget_for",
    "check_budgets",
    "check_groups",
    "usage_ledger_for",
]

DEFAULT_TENANT = "*"
"""The ``budgets`` key of the budget for tenants the table does not name."""
BUDGET_FIELDS = ("daily_usd", "monthly_usd")
GROUPS = ("tenant", "model", "user", "thread", "day")
"""What :meth:`UsageLedger.report` groups by; ``user`` is the SHA-256 of the user id."""
RETENTION_DAYS = 400
"""Days the ledger keeps a call (a year, and a month to compare with)."""
_MICROS = 1_000_000
_TTL_MARGIN_S = 3600  # window counters outlive their window by this much (replicas' clock skew)
_DAY_MS = 86_400_000
_COLUMNS = {"tenant": "tenant", "model": "model", "user": "user_sha256", "thread": "thread_id", "day": "day"}
"""Each group's stored field (SQLite column, stream entry field; ``day`` is derived on Redis)."""
_REDIS_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5, "decode_responses": True}


def _check_usd(value: object, what: str, *, nullable: bool) -> None:
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        none = " or null (no limit)" if nullable else ""
        raise ValueError(f"{what} must be a number of USD >= 0{none}, got {value!r}")


def _micros(usd: float) -> int:
    return round(usd * _MICROS)


@dataclass(frozen=True, kw_only=True)
class Budget:
    """A tenant's spending caps in USD; ``None``: no cap in that window."""

    daily_usd: float | None = None
    """Cap per UTC day."""
    monthly_usd: float | None = None
    """Cap per UTC month."""

    def __post_init__(self) -> None:
        for field in BUDGET_FIELDS:
            _check_usd(getattr(self, field), f"budget {field}", nullable=True)

    @property
    def unlimited(self) -> bool:
        """Neither window is capped."""
        return self.daily_usd is None and self.monthly_usd is None

    def _limits(self) -> tuple[int, int]:
        """The caps in micro-dollars, ``-1`` for none (as the Redis script takes them)."""
        daily, monthly = (-1 if cap is None else _micros(cap) for cap in (self.daily_usd, self.monthly_usd))
        return daily, monthly


@dataclass(frozen=True, kw_only=True)
class Charge:
    """What one model call used, as :meth:`UsageLedger.settle` records it."""

    tenant: str
    user_id: str
    """The caller; the ledger stores only its SHA-256 (as the audit log's ``user_sha256``)."""
    model: str
    """The catalogue's name of the model called."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    thread_id: str | None = None
    run_id: str | None = None
    estimated: bool = False
    """The tokens are an estimate: the provider sent no usage."""
    at: float | None = None
    """When the call ended (epoch seconds); ``None``: the ledger's clock at settle."""

    def __post_init__(self) -> None:
        if min(self.input_tokens, self.output_tokens) < 0:
            raise ValueError(f"token counts must be >= 0, got {self.input_tokens} and {self.output_tokens}")
        _check_usd(self.cost_usd, "cost_usd", nullable=False)


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """An amount :meth:`UsageLedger.reserve` charged ahead of a call, for :meth:`UsageLedger.settle`."""

    id: str
    tenant: str
    micros: int
    """The amount held, in micro-dollars."""
    day: str
    """The UTC day it was charged to, ``YYYY-MM-DD``."""
    month: str
    """The UTC month it was charged to, ``YYYY-MM``."""

    @property
    def amount_usd(self) -> float:
        """The amount held, in USD."""
        return self.micros / _MICROS


@dataclass(frozen=True)
class _Windows:
    """The day and month windows holding a moment, and how long their counters live from now."""

    day: str
    month: str
    day_ttl: int
    month_ttl: int

    @property
    def names(self) -> tuple[str, str]:
        return f"day:{self.day}", f"month:{self.month}"


def _windows(at: float, now: float) -> _Windows:
    day = datetime.fromtimestamp(at, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)

    def ttl(end: datetime) -> int:
        return max(1, math.ceil(end.timestamp() + _TTL_MARGIN_S - now))

    return _Windows(f"{day:%Y-%m-%d}", f"{month:%Y-%m}", ttl(day + timedelta(days=1)), ttl(next_month))


def _day_of(at_ms: int) -> str:
    return f"{datetime.fromtimestamp(at_ms / 1000, UTC):%Y-%m-%d}"


def _ms(when: datetime) -> int:
    return math.floor((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _left(budget: Budget, spent: tuple[int, int]) -> float | None:
    """USD left in the tightest capped window (never below 0), ``None`` if none is capped."""
    left = [cap - used for cap, used in zip(budget._limits(), spent, strict=True) if cap >= 0]
    return max(0, min(left)) / _MICROS if left else None


def _fits(budget: Budget, spent: tuple[int, int], micros: int) -> bool:
    return all(cap < 0 or used + micros <= cap for cap, used in zip(budget._limits(), spent, strict=True))


def _amount(amount_usd: float) -> int:
    _check_usd(amount_usd, "amount_usd", nullable=False)
    return _micros(amount_usd)


def check_groups(by: Sequence[str]) -> tuple[str, ...]:
    """``by`` as a tuple, once it is checked to name distinct :data:`GROUPS`.

    Raises:
        ValueError: one line naming the bad group.
    """
    groups = tuple(by)
    if not groups:
        raise ValueError(f"group by at least one of {', '.join(GROUPS)}")
    for group in groups:
        if group not in GROUPS:
            raise ValueError(f"cannot group by {group[:40]!r}: use {', '.join(GROUPS)}")
    if len(set(groups)) < len(groups):
        raise ValueError(f"group by each of {', '.join(GROUPS)} at most once")
    return groups


def check_budgets(value: object) -> None:
    """Check a ``budgets`` table: ``{"*" or tenant id: {"daily_usd": x, "monthly_usd": y}}``.

    Raises:
        ValueError: one line naming the bad tenant, field or amount.
    """
    if not isinstance(value, Mapping):
        raise ValueError('budgets must be an object of tenant ids ("*": the default) to budgets such as {"daily_usd": 5}')
    for tenant, budget in value.items():
        if tenant != DEFAULT_TENANT:
            validate_id("tenant", tenant)
        if not isinstance(budget, Mapping):
            raise ValueError(f'the budget of tenant {tenant!r} must be an object such as {{"daily_usd": 5, "monthly_usd": 100}}')
        for field, amount in budget.items():
            if field not in BUDGET_FIELDS:
                raise ValueError(f"unknown field {str(field)[:40]!r} in the budget of tenant {tenant!r}: use {', '.join(BUDGET_FIELDS)}")
            _check_usd(amount, f"the budget of tenant {tenant!r}: {field}", nullable=True)


def budget_for(budgets: Mapping[str, Mapping[str, float | None]], tenant: str) -> Budget:
    """``tenant``'s budget: its entry in ``budgets`` over the default's (``"*"``), field by field."""
    return Budget(**{**budgets.get(DEFAULT_TENANT, {}), **budgets.get(tenant, {})})


class _Totals:
    """Report rows summed in Python (the Redis stream has no GROUP BY)."""

    def __init__(self, by: tuple[str, ...]) -> None:
        self.by = by
        self._sums: dict[tuple[Any, ...], list[int]] = {}

    def add(self, entry: Mapping[str, Any]) -> None:
        key = tuple(entry.get(_COLUMNS[group]) for group in self.by)
        sums = self._sums.setdefault(key, [0, 0, 0, 0, 0])
        for i, value in enumerate((1, entry["input_tokens"], entry["output_tokens"], entry["micros"], entry["estimated"])):
            sums[i] += value

    def rows(self) -> list[dict[str, Any]]:
        ordered = sorted(self._sums.items(), key=lambda item: [(v is not None, v or "") for v in item[0]])
        return [_row(self.by, key, sums) for key, sums in ordered]


def _row(by: tuple[str, ...], key: Sequence[Any], sums: Sequence[int]) -> dict[str, Any]:
    calls, input_tokens, output_tokens, micros, estimated = sums
    return {
        **dict(zip(by, key, strict=True)),
        "calls": calls,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": micros / _MICROS,
        "estimated_calls": estimated,
    }


class UsageLedger(ABC):
    """Spend per tenant and window, reservations, and the ledger of calls (see the module docstring).

    Args:
        clock: epoch seconds (``time.time``); its UTC day and month are the budget windows.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    @property
    @abstractmethod
    def name(self) -> str:
        """Where the ledger is, for messages (a path, a masked URL and key)."""

    @abstractmethod
    def _spent(self, tenant: str) -> tuple[int, int]:
        """Micro-dollars charged to ``tenant`` this UTC day and month."""

    @abstractmethod
    async def _aspent(self, tenant: str) -> tuple[int, int]:
        """Async :meth:`_spent`."""

    @abstractmethod
    def reserve(self, tenant: str, amount_usd: float, budget: Budget) -> Reservation | None:
        """Charge ``amount_usd`` now if ``tenant``'s spend plus it fits both windows of
        ``budget``, atomically (one check-and-charge across replicas); ``None``, with nothing
        charged, if it does not. Settle the reservation after the call (release it if the
        call failed); one never settled stays charged until its windows end (conservative:
        a crashed process never lets the tenant overspend).

        Raises:
            ValueError: ``amount_usd`` is negative or not a number.
        """

    @abstractmethod
    async def areserve(self, tenant: str, amount_usd: float, budget: Budget) -> Reservation | None:
        """Async :meth:`reserve`."""

    @abstractmethod
    def settle(self, reservation: Reservation | None, charge: Charge) -> bool:
        """Replace ``reservation``'s amount by ``charge.cost_usd`` (in the windows of
        ``charge.at``, which may go over their cap: the call happened) and append ``charge``
        to the ledger; without a reservation, just add and append. Returns ``False``, and
        records nothing, when the reservation was settled before.

        Raises:
            ValueError: the reservation is another tenant's.
        """

    @abstractmethod
    async def asettle(self, reservation: Reservation | None, charge: Charge) -> bool:
        """Async :meth:`settle`."""

    @abstractmethod
    def release(self, reservation: Reservation) -> bool:
        """Give ``reservation``'s amount back, recording no call (the call failed or never
        ran). Returns ``False`` when the reservation was settled or released before."""

    @abstractmethod
    async def arelease(self, reservation: Reservation) -> bool:
        """Async :meth:`release`."""

    @abstractmethod
    def report(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = ("tenant", "model"),
    ) -> list[dict[str, Any]]:
        """Totals of the calls from ``since`` (inclusive) to ``until`` (exclusive; naive
        times are UTC), of ``tenant`` or all, grouped by ``by`` (of :data:`GROUPS`): one row
        per group, ordered by it, with the group's values (``user``: the SHA-256 of the user
        id; ``day``: ``YYYY-MM-DD``), ``calls``, ``input_tokens``, ``output_tokens``,
        ``cost_usd`` and ``estimated_calls``.

        Raises:
            ValueError: ``by`` names something else (see :func:`check_groups`).
        """

    @abstractmethod
    async def areport(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = ("tenant", "model"),
    ) -> list[dict[str, Any]]:
        """Async :meth:`report`."""

    def spent(self, tenant: str) -> dict[str, float]:
        """USD charged to ``tenant`` this UTC ``day`` and ``month`` (open reservations included)."""
        day, month = self._spent(tenant)
        return {"day": day / _MICROS, "month": month / _MICROS}

    async def aspent(self, tenant: str) -> dict[str, float]:
        """Async :meth:`spent`."""
        day, month = await self._aspent(tenant)
        return {"day": day / _MICROS, "month": month / _MICROS}

    def remaining(self, tenant: str, budget: Budget) -> float | None:
        """USD ``tenant`` has left in the tightest window of ``budget`` (0 when over it);
        ``None`` when ``budget`` caps nothing."""
        return None if budget.unlimited else _left(budget, self._spent(tenant))

    async def aremaining(self, tenant: str, budget: Budget) -> float | None:
        """Async :meth:`remaining`."""
        return None if budget.unlimited else _left(budget, await self._aspent(tenant))

    async def aclose(self) -> None:
        """Close the running event loop's connections, if the backend holds any."""

    def _reservation(self, tenant: str, micros: int, windows: _Windows) -> Reservation:
        return Reservation(id=uuid.uuid4().hex, tenant=tenant, micros=micros, day=windows.day, month=windows.month)

    def _settling(self, reservation: Reservation | None, charge: Charge) -> tuple[float, int, dict[str, Any]]:
        """``now``, the charge's time in ms and the entry to store for it."""
        if reservation is not None and reservation.tenant != charge.tenant:
            raise ValueError(f"reservation of tenant {reservation.tenant!r} settled with a charge of tenant {charge.tenant!r}")
        now = self.clock()
        at_ms = math.floor((now if charge.at is None else charge.at) * 1000)
        entry = {
            "tenant": charge.tenant,
            "user_sha256": _sha256(charge.user_id),
            "thread_id": charge.thread_id,
            "run_id": charge.run_id,
            "model": charge.model,
            "input_tokens": charge.input_tokens,
            "output_tokens": charge.output_tokens,
            "micros": _micros(charge.cost_usd),
            "estimated": int(charge.estimated),
        }
        return now, at_ms, entry


# -- SQLite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    tenant TEXT NOT NULL, window TEXT NOT NULL, micros INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (tenant, window)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS windows_expires ON windows (expires);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
    micros INTEGER NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_expires ON reservations (expires);
CREATE TABLE IF NOT EXISTS charges (
    at_ms INTEGER NOT NULL, day TEXT NOT NULL, tenant TEXT NOT NULL, user_sha256 TEXT NOT NULL,
    thread_id TEXT, run_id TEXT, model TEXT NOT NULL, input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL, micros INTEGER NOT NULL, estimated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_at ON charges (at_ms);
CREATE INDEX IF NOT EXISTS charges_tenant_at ON charges (tenant, at_ms);
"""
_ADD = (
    "INSERT INTO windows VALUES (?, ?, ?, ?) "
    "ON CONFLICT (tenant, window) DO UPDATE SET micros = micros + excluded.micros"
)


class SqliteUsageLedger(UsageLedger):
    """The ledger in a SQLite file (see the module docstring); every process on the host shares it."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, kept open: closing the last connection to a WAL database checkpoints
        # and deletes the WAL, which cost more than the transaction itself (measured 2 ms).
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL sync with WAL: a commit survives the process crashing, not the host
            # losing power, and costs no fsync (the ledger is written on every model call).
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)

    @property
    def name(self) -> str:
        return str(self.path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the database's write lock from its first statement,
        so what it reads cannot change before it writes (other writers wait, up to 30 s)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @staticmethod
    def _read(db: sqlite3.Connection, tenant: str, windows: _Windows) -> tuple[int, int]:
        day, month = windows.names
        rows = dict(db.execute("SELECT window, micros FROM windows WHERE tenant = ? AND window IN (?, ?)", (tenant, day, month)))
        return rows.get(day, 0), rows.get(month, 0)

    @staticmethod
    def _add(db: sqlite3.Connection, tenant: str, windows: _Windows, micros: int, now: float) -> None:
        day, month = windows.names
        db.executemany(_ADD, [(tenant, day, micros, now + windows.day_ttl), (tenant, month, micros, now + windows.month_ttl)])

    def _spent(self, tenant: str) -> tuple[int, int]:
        now = self.clock()
        with self._connect() as db:
            return self._read(db, tenant, _windows(now, now))

    async def _aspent(self, tenant: str) -> tuple[int, int]:
        return await asyncio.to_thread(self._spent, tenant)

    def reserve(self, tenant: str, amount_usd: float, budget: Budget) -> Reservation | None:
        micros = _amount(amount_usd)
        now = self.clock()
        windows = _windows(now, now)
        with self._transaction() as db:
            if not _fits(budget, self._read(db, tenant, windows), micros):
                return None
            self._add(db, tenant, windows, micros, now)
            reservation = self._reservation(tenant, micros, windows)
            db.execute(
                "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)",
                (reservation.id, tenant, windows.day, windows.month, micros, now + windows.month_ttl),
            )
        return reservation

    async def areserve(self, tenant: str, amount_usd: float, budget: Budget) -> Reservation | None:
        return await asyncio.to_thread(self.reserve, tenant, amount_usd, budget)

    @staticmethod
    def _sweep(db: sqlite3.Connection, now: float) -> None:
        """Remove what a Redis key's TTL (or the stream's trim) would have removed by now."""
        db.execute("DELETE FROM windows WHERE expires <= ?", (now,))
        db.execute("DELETE FROM reservations WHERE expires <= ?", (now,))
        db.execute("DELETE FROM charges WHERE at_ms < ?", (math.floor(now * 1000) - RETENTION_DAYS * _DAY_MS,))

    @staticmethod
    def _release(db: sqlite3.Connection, reservation: Reservation) -> bool:
        held = db.execute("DELETE FROM reservations WHERE id = ? RETURNING micros", (reservation.id,)).fetchone()
        if held is None:
            return False
        db.execute(
            "UPDATE windows SET micros = micros - ? WHERE tenant = ? AND window IN (?, ?)",
            (held[0], reservation.tenant, f"day:{reservation.day}", f"month:{reservation.month}"),
        )
        return True

    def settle(self, reservation: Reservation | None, charge: Charge) -> bool:
        now, at_ms, entry = self._settling(reservation, charge)
        with self._transaction() as db:
            self._sweep(db, now)
            if reservation is not None and not self._release(db, reservation):
                return False
            self._add(db, charge.tenant, _windows(at_ms / 1000, now), entry["micros"], now)
            entry = {"at_ms": at_ms, "day": _day_of(at_ms), **entry}
            db.execute(f"INSERT INTO charges ({', '.join(entry)}) VALUES ({', '.join('?' * len(entry))})", tuple(entry.values()))
        return True

    async def asettle(self, reservation: Reservation | None, charge: Charge) -> bool:
        return await asyncio.to_thread(self.settle, reservation, charge)

    def release(self, reservation: Reservation) -> bool:
        now = self.clock()
        with self._transaction() as db:
            self._sweep(db, now)
            return self._release(db, reservation)

    async def arelease(self, reservation: Reservation) -> bool:
        return await asyncio.to_thread(self.release, reservation)

    def report(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = ("tenant", "model"),
    ) -> list[dict[str, Any]]:
        groups = check_groups(by)
        columns = ", ".join(_COLUMNS[group] for group in groups)
        where, params = ["1"], []
        for clause, value in (("tenant = ?", tenant), ("at_ms >= ?", since and _ms(since)), ("at_ms < ?", until and _ms(until))):
            if value is not None:
                where.append(clause)
                params.append(value)
        query = (
            f"SELECT {columns}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(micros), SUM(estimated) "
            f"FROM charges WHERE {' AND '.join(where)} GROUP BY {columns} ORDER BY {columns}"
        )
        with self._connect() as db:
            return [_row(groups, row[: len(groups)], row[len(groups) :]) for row in db.execute(query, params)]

    async def areport(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = ("tenant", "model"),
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(lambda: self.report(tenant=tenant, since=since, until=until, by=by))


# -- Redis -------------------------------------------------------------------------------------

_RESERVE = """
-- KEYS: day counter, month counter, reservation.  ARGV: amount, day cap, month cap (-1: none),
-- day TTL, month TTL (seconds).
local amount = tonumber(ARGV[1])
for i = 1, 2 do
  local cap = tonumber(ARGV[i + 1])
  if cap >= 0 and tonumber(redis.call('GET', KEYS[i]) or '0') + amount > cap then return 0 end
end
for i = 1, 2 do
  redis.call('INCRBY', KEYS[i], amount)
  redis.call('EXPIRE', KEYS[i], ARGV[i + 3])
end
redis.call('SET', KEYS[3], amount, 'EX', ARGV[5])
return 1
"""

_SETTLE = """
-- KEYS: reservation, its day and month counters, the charge's day and month counters, the
-- stream, the stream's last id.  ARGV: 1 if settling a reservation, cost, day TTL, month TTL,
-- the charge's time (ms), the oldest time kept (ms), the entry (JSON).
-- A release passes the first three keys and ARGV 1 alone.
if ARGV[1] == '1' then
  local held = redis.call('GET', KEYS[1])
  if not held then return 0 end
  redis.call('DEL', KEYS[1])
  for i = 2, 3 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DECRBY', KEYS[i], held) end
  end
end
if #ARGV == 1 then return 1 end
for i = 4, 5 do
  redis.call('INCRBY', KEYS[i], ARGV[2])
  redis.call('EXPIRE', KEYS[i], ARGV[i - 1])
end
-- The id is the charge's time, moved just past the last id when a replica's clock is behind.
local ms, seq = tonumber(ARGV[5]), 0
local last = redis.call('GET', KEYS[7])
if last then
  local last_ms, last_seq = string.match(last, '^(%d+)-(%d+)$')
  if ms <= tonumber(last_ms) then ms, seq = tonumber(last_ms), tonumber(last_seq) + 1 end
end
local id = string.format('%d-%d', ms, seq)
redis.call('XADD', KEYS[6], 'MINID', '~', ARGV[6], id, 'charge', ARGV[7])
redis.call('SET', KEYS[7], id)
return 1
"""

_Command = tuple[str, tuple[Any, ...], dict[str, Any]]
"""A client method or script name, its arguments and keyword arguments."""
_Steps = Generator[_Command, Any, Any]
_PAGE = 1000


class RedisUsageLedger(UsageLedger):
    """The ledger in Redis, shared by every replica (see the module docstring).

    Args:
        url: a ``redis[s]://`` URL (without Bulwark's ``?ttl=``: the ledger keeps its own times).
        key: the keys' common name, used as their hash tag: ``{bulwark:usage}:ledger``...
    """

    def __init__(self, url: str, *, key: str = "bulwark:usage", clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.url = url
        self._shown = f"{mask_url(url)} {key}"
        self._tag = "{" + key + "}"
        self.stream, self._last = f"{self._tag}:ledger", f"{self._tag}:last"
        client = redis.Redis.from_url(url, **_REDIS_OPTIONS)
        self._sync = (client, self._scripts(client))
        self._async: dict[int, tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis, dict[str, Any]]] = {}

    @property
    def name(self) -> str:
        return self._shown

    @staticmethod
    def _scripts(client: redis.Redis | redis.asyncio.Redis) -> dict[str, Any]:
        return {"reserve": client.register_script(_RESERVE), "settle": client.register_script(_SETTLE)}

    def _bound(self) -> tuple[redis.asyncio.Redis, dict[str, Any]]:
        """The running loop's client and scripts (connection pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(id(loop))
        if entry is None or entry[0] is not loop:
            client = redis.asyncio.Redis.from_url(self.url, **_REDIS_OPTIONS)
            self._async = {key: kept for key, kept in self._async.items() if not kept[0].is_closed()}
            entry = self._async[id(loop)] = (loop, client, self._scripts(client))
        return entry[1], entry[2]

    async def aclose(self) -> None:
        entry = self._async.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].aclose()

    @staticmethod
    def _call(handle: tuple[Any, dict[str, Any]], command: _Command) -> Any:
        client, scripts = handle
        name, args, kwargs = command
        return (scripts.get(name) or getattr(client, name))(*args, **kwargs)

    def _run(self, steps: _Steps) -> Any:
        try:
            command = next(steps)
            while True:
                command = steps.send(self._call(self._sync, command))
        except StopIteration as done:
            return done.value

    async def _arun(self, steps: _Steps) -> Any:
        handle = self._bound()
        try:
            command = next(steps)
            while True:
                command = steps.send(await self._call(handle, command))
        except StopIteration as done:
            return done.value

    def _keys(self, tenant: str, windows: _Windows) -> list[str]:
        return [f"{self._tag}:{name}:{tenant}" for name in windows.names]

    def _reserved(self, reservation: Reservation) -> list[str]:
        held = _Windows(reservation.day, reservation.month, 0, 0)
        return [f"{self._tag}:reservation:{reservation.id}", *self._keys(reservation.tenant, held)]

    def _spending(self, tenant: str) -> _Steps:
        now = self.clock()
        day, month = yield ("mget", (self._keys(tenant, _windows(now, now)),), {})
        return int(day or 0), int(month or 0)

    def _spent(self, tenant: str) -> tuple[int, int]:
        return self._run(self._spending(tenant))

    async def _aspent(self, tenant: str) -> tuple[int, int]:
        return await self._arun(self._spending(tenant))

    def _reserving(self, tenant: str, amount_usd: float, budget: Budget) -> _Steps:
        micros = _amount(amount_usd)
        now = self.clock()
        windows = _windows(now, now)
        reservation = self._reservation(tenant, micros, windows)
        keys = [*self._keys(tenant, windows), self._reserved(reservation)[0]]
        args = [micros, *budget._limits(), windows.day_ttl, windows.month_ttl]
        charged = yield ("reserve", (), {"keys": keys, "args": args})
        return reservation if charged else None

    def reserve(self, tenant: str, amount_usd: float, budget: Budget) -> Reservation | None:
        return self._run(self._reserving(tenant, amount_usd, budget))

    async def areserve(self, tenant: str, amount_usd: float, budget: Budget) -> Reservation | None:
        return await self._arun(self._reserving(tenant, amount_usd, budget))

    def _settling_steps(self, reservation: Reservation | None, charge: Charge) -> _Steps:
        now, at_ms, entry = self._settling(reservation, charge)
        windows = _windows(at_ms / 1000, now)
        current = self._keys(charge.tenant, windows)
        held = self._reserved(reservation) if reservation else [f"{self._tag}:reservation:-", *current]
        minid = math.floor(now * 1000) - RETENTION_DAYS * _DAY_MS
        stored = json.dumps({**entry, "at_ms": at_ms}, separators=(",", ":"))
        args = [int(reservation is not None), entry["micros"], windows.day_ttl, windows.month_ttl, at_ms, max(minid, 0), stored]
        settled = yield ("settle", (), {"keys": [*held, *current, self.stream, self._last], "args": args})
        return bool(settled)

    def settle(self, reservation: Reservation | None, charge: Charge) -> bool:
        return self._run(self._settling_steps(reservation, charge))

    async def asettle(self, reservation: Reservation | None, charge: Charge) -> bool:
        return await self._arun(self._settling_steps(reservation, charge))

    def _releasing(self, reservation: Reservation) -> _Steps:
        released = yield ("settle", (), {"keys": self._reserved(reservation), "args": [1]})
        return bool(released)

    def release(self, reservation: Reservation) -> bool:
        return self._run(self._releasing(reservation))

    async def arelease(self, reservation: Reservation) -> bool:
        return await self._arun(self._releasing(reservation))

    def _reporting(self, tenant: str | None, since: datetime | None, until: datetime | None, by: Sequence[str]) -> _Steps:
        totals = _Totals(check_groups(by))
        by_day = "day" in totals.by
        start, end = str(_ms(since)) if since else "-", str(_ms(until) - 1) if until else "+"
        while page := (yield ("xrange", (self.stream,), {"min": start, "max": end, "count": _PAGE})):
            for _, fields in page:
                entry = json.loads(fields["charge"])
                if tenant is None or entry["tenant"] == tenant:
                    if by_day:
                        entry["day"] = _day_of(entry["at_ms"])
                    totals.add(entry)
            start = "(" + page[-1][0]
        return totals.rows()

    def report(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = ("tenant", "model"),
    ) -> list[dict[str, Any]]:
        return self._run(self._reporting(tenant, since, until, by))

    async def areport(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = ("tenant", "model"),
    ) -> list[dict[str, Any]]:
        return await self._arun(self._reporting(tenant, since, until, by))


def usage_ledger_for(settings: Settings, *, clock: Callable[[], float] = time.time) -> UsageLedger:
    """The deployment's ledger: in Redis when the checkpointer is Redis (shared by the
    replicas), else ``<data_dir>/usage.db``."""
    url = settings.resolved_checkpointer_url
    if url.startswith(("redis://", "rediss://")):
        return RedisUsageLedger(parse_redis_url(url)[0], clock=clock)  # the checkpoints' ?ttl= is not the ledger's
    return SqliteUsageLedger(settings.data_dir / "usage.db", clock=clock)
