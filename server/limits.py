"""Rate limits of the server: token buckets and run leases, per credential and per tenant,
sized by the credential's tier.

**Buckets.** Each holds up to ``per_minute`` tokens and refills at ``per_minute / 60`` a
second, so a client may burst a minute's worth and then goes on at the steady rate. A
request takes one token from its credential's bucket and one from its tenant's; a new run
(or cron) takes one more from its credential's run bucket. A refused take takes nothing and
says how long until the tokens are back, which becomes the 429's ``Retry-After``.

**Concurrent runs** (per tenant). A new run takes a lease: a slot in its tenant's set of
runs in flight, named by the run id and ending ``run_lease_s`` (300 s) later. When the set is
full the run is refused with the wait until the earliest lease ends (an upper bound: slots
usually free sooner). The graph's last node (``audit``, on every path that completes,
refusals included) gives the lease back (:meth:`RateLimits.ended`). A run that waits for
approval, fails, crashes or is cancelled, and a run the engine refuses after the auth
handler admitted it (a 409 on a busy thread, a 404 for a thread that is not the caller's),
keeps its slot until the lease ends; the run resumed after an approval takes a lease of its
own. Runs longer than the lease stop counting when it ends: set the lease above your
longest run. Crons take no lease (their runs are started by the engine, later).

**Model tokens per minute** (per tenant). A bucket of ``tokens_per_minute``: the agent node
debits each model call's input and output tokens after the call (:meth:`RateLimits.spent`;
the balance may go negative, a call in flight is never stopped), and a new run must find the
balance positive, else it is refused with the time it takes to refill to positive.

**Tiers.** The flat limits form tier ``default``; ``rate_limit_tiers`` names others, each
overriding some of them. A credential's tier comes from the credential only (its API-key
record, or its JWT's ``jwt_tier_claim``), never from a request; a tier the settings do not
name is refused (:class:`UnknownTier`, a 403). A tenant's buckets and leases are shared by
all its credentials, and each request is measured with its own credential's tier: give a
tenant's credentials one tier.

**Handing over to the graph.** The auth handler writes the run's tier and lease id into its
``configurable`` (:data:`TIER_KEY`, :data:`LEASE_KEY`; set there, whatever the client
sent), which the agent and audit nodes pass back to :meth:`RateLimits.spent` and
:meth:`RateLimits.ended`. Auth and graph share the limiter: one per checkpointer per
process (:func:`limiter_for_settings`), so in one process (``langgraph dev``, ``bulwark
serve`` on SQLite) they meet in the same dict, and on Redis every replica meets in Redis.

Two backends, one interface (:class:`Limiter`), the same behaviour, chosen like the effect
journal (:func:`limiter_for_checkpointer`):

* :class:`MemoryLimiter`: dicts of buckets and leases in this process (one replica, or
  ``langgraph dev``); buckets that have refilled are dropped as the dict grows.
* :class:`RedisLimiter`: one Lua script per take or debit does refill and take atomically
  in the checkpointer's Redis (``bulwark:ratelimit:{...}`` hashes), and one per lease does
  expire, count and add (``bulwark:ratelimit:{lease:<tenant>}`` sorted sets, scored by the
  lease's end; a release is a ``ZREM``), so every replica shares them; each key's TTL is the
  time it takes to refill (or the last lease to end), so idle keys vanish.

Both take time from a ``clock`` keyword (tests inject one; nobody sleeps). On Redis without
a clock the scripts read the server's ``TIME``, so replicas never disagree about "now".

Why not the ``limits`` package (PyPI, well kept, async, Redis): it has fixed windows,
moving windows and sliding-window counters but no token bucket; its moving window keeps
one Redis list entry per request (6000 for a tenant's minute), fixed windows allow twice
the limit across a boundary, and its clock cannot be injected, so tests would sleep. A
bucket is one short script here, and adding a dependency for it is not worth it.

When Redis cannot be reached the take is allowed (and logged): rate limits protect the
server, they should not take it down with them; ``/ready`` reports the outage.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import redis.asyncio
import redis.exceptions

from bulwark.observability.metrics import RATE_LIMIT_REJECTIONS
from bulwark.persistence.redis import parse_redis_url
from bulwark.server.credentials import DEFAULT_TIER, Identity
from bulwark.settings import RATE_LIMIT_TIER_FIELDS, Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "bulwark:ratelimit:"
LEASE_KEY = "bulwark_lease"
"""The run's ``configurable`` key holding its concurrent-run lease id (``None``: no lease)."""
TIER_KEY = "bulwark_tier"
"""The run's ``configurable`` key holding its credential's tier."""
_PRUNE_AT = 10_000
"""In-process buckets kept before the full (idle) ones are dropped."""
_MIN_WAIT_S = 0.001
"""A refused take waits at least this long (a wait of 0 means "taken")."""
_REDIS_TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Limiter(ABC):
    """Token buckets and leases by key."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock

    async def take(self, key: str, per_minute: int, amount: float = 1) -> float:
        """Take ``amount`` tokens from ``key``'s bucket of ``per_minute`` tokens, if it holds
        them; ``amount=0`` takes nothing but still needs a positive balance.

        Returns:
            0.0 if taken; else the seconds until the bucket holds them (nothing was taken).
        """
        return await self._apply(key, per_minute, amount, debit=False)

    async def debit(self, key: str, per_minute: int, amount: float) -> None:
        """Take ``amount`` tokens from ``key``'s bucket whatever it holds: never refused, the
        balance may go negative (later takes then wait until it is back)."""
        await self._apply(key, per_minute, amount, debit=True)

    @abstractmethod
    async def _apply(self, key: str, per_minute: int, amount: float, *, debit: bool) -> float:
        """Refill ``key``'s bucket, then take (or debit) ``amount``; the wait (0: done)."""

    @abstractmethod
    async def acquire(self, key: str, member: str, limit: int, lease_s: float) -> float:
        """Add a lease ``member`` ending in ``lease_s`` seconds to ``key``'s set, which
        holds at most ``limit`` unexpired leases; acquiring a member held renews it.

        Returns:
            0.0 if acquired; else the seconds until the earliest lease ends (nothing added).
        """

    @abstractmethod
    async def release(self, key: str, member: str) -> None:
        """Remove the lease ``member`` from ``key``'s set (nothing if it is not there)."""


def _refill(tokens: float, since: float, now: float, capacity: int) -> float:
    return min(float(capacity), tokens + max(0.0, now - since) * capacity / 60.0)


class MemoryLimiter(Limiter):
    """Buckets in this process, ``{key: (tokens, last update, capacity)}``, and leases,
    ``{key: {member: end}}``. No operation has an ``await`` inside, so each is atomic on
    its event loop; a lock keeps them atomic across loops too (langgraph-api can run each
    run on a loop of its own, ``BG_JOB_ISOLATED_LOOPS``)."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self._buckets: dict[str, tuple[float, float, int]] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return (self.clock or time.monotonic)()

    async def _apply(self, key: str, per_minute: int, amount: float, *, debit: bool) -> float:
        with self._lock:
            return self._apply_now(key, per_minute, amount, debit=debit)

    def _apply_now(self, key: str, per_minute: int, amount: float, *, debit: bool) -> float:
        now = self._now()
        tokens, since, _ = self._buckets.get(key, (float(per_minute), now, per_minute))
        tokens = _refill(tokens, since, now, per_minute)
        wait = 0.0
        if debit or (tokens > 0 and tokens >= amount):
            tokens -= amount
        else:
            wait = max((amount - tokens) * 60.0 / per_minute, _MIN_WAIT_S)
        self._buckets[key] = (tokens, max(now, since), per_minute)
        if len(self._buckets) > _PRUNE_AT:
            self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled (a full bucket is the same as none), and the
        lease sets whose leases have all ended."""
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items()
            if _refill(bucket[0], bucket[1], now, bucket[2]) < bucket[2]
        }
        self._leases = {key: held for key, held in self._leases.items() if any(end > now for end in held.values())}

    async def acquire(self, key: str, member: str, limit: int, lease_s: float) -> float:
        with self._lock:
            now = self._now()
            held = {m: end for m, end in self._leases.get(key, {}).items() if end > now}
            wait = 0.0
            if member in held or len(held) < limit:
                held[member] = now + lease_s
            else:
                wait = max(min(held.values()) - now, _MIN_WAIT_S)
            self._leases[key] = held
            return wait

    async def release(self, key: str, member: str) -> None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None:
                held.pop(member, None)
                if not held:
                    del self._leases[key]


_NOW = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

_TAKE = _NOW + """
local capacity = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local debit = ARGV[4] == '1'
local rate = capacity / 60.0
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local since = tonumber(state[2])
if tokens == nil or since == nil then
  tokens = capacity
  since = now
end
if now > since then
  tokens = math.min(capacity, tokens + (now - since) * rate)
  since = now
end
local wait = 0
if debit or (tokens > 0 and tokens >= amount) then
  tokens = tokens - amount
else
  wait = math.max((amount - tokens) / rate, 0.001)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', since))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""
"""Refill, then take ``amount`` tokens if there are that many and more than none (or take
them anyway: a debit); returns the wait (0 when taken) as a string (Lua numbers become
integers in replies). ``now < 0`` means: use the server's clock."""

_ACQUIRE = _NOW + """
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local member = ARGV[4]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], member) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + lease, member)
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) * 1000) + 1000)
  return '0'
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return string.format('%.6f', math.max(tonumber(first[2]) - now, 0.001))
"""
"""Drop the ended leases, then add (or renew) ``member`` ending ``lease`` seconds from now
if the set has room; else the wait until the earliest lease ends. The key lives until the
last lease ends."""


class RedisLimiter(Limiter):
    """Buckets and leases in Redis, shared by every replica; one atomic script per take,
    debit or acquire."""

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self._url = url
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _bound(self) -> tuple[redis.asyncio.Redis, dict[str, Any]]:
        """The running loop's client (pools are loop-bound: the auth handler's loop and a run's
        may differ) and the scripts registered on it; clients of closed loops are dropped."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(id(loop))
            if entry is None or entry[0] is not loop:
                client = redis.asyncio.Redis.from_url(self._url, **_REDIS_TIMEOUTS)
                scripts = {"take": client.register_script(_TAKE), "acquire": client.register_script(_ACQUIRE)}
                self._clients = {k: e for k, e in self._clients.items() if not e[0].is_closed()}
                entry = self._clients[id(loop)] = (loop, client, scripts)
        return entry[1], entry[2]

    def _redis(self) -> redis.asyncio.Redis:
        return self._bound()[0]

    def _script(self, name: str):  # noqa: ANN202 - redis' AsyncScript
        return self._bound()[1][name]

    def _now(self) -> str:
        return repr(self.clock() if self.clock else -1.0)

    @staticmethod
    def _key(key: str) -> str:
        return f"{KEY_PREFIX}{{{key}}}"

    async def _apply(self, key: str, per_minute: int, amount: float, *, debit: bool) -> float:
        try:
            wait = await self._script("take")(
                keys=[self._key(key)], args=[self._now(), per_minute, repr(float(amount)), int(debit)]
            )
        except _UNREACHABLE as exc:
            log.warning("rate limit not checked: Redis unreachable (%s)", type(exc).__name__)
            return 0.0
        return float(wait)

    async def acquire(self, key: str, member: str, limit: int, lease_s: float) -> float:
        try:
            wait = await self._script("acquire")(
                keys=[self._key(key)], args=[self._now(), limit, repr(float(lease_s)), member]
            )
        except _UNREACHABLE as exc:
            log.warning("concurrent runs not checked: Redis unreachable (%s)", type(exc).__name__)
            return 0.0
        return float(wait)

    async def release(self, key: str, member: str) -> None:
        try:
            await self._redis().zrem(self._key(key), member)
        except _UNREACHABLE as exc:
            log.warning("run lease not released (it ends by itself): Redis unreachable (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        """Close the running loop's client (tests)."""
        with self._lock:
            entry = self._clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].aclose()


def limiter_for_checkpointer(url: str, *, clock: Callable[[], float] | None = None) -> Limiter:
    """A new limiter that lives next to the checkpoints named by ``url``."""
    if url.startswith(("redis://", "rediss://")):
        return RedisLimiter(parse_redis_url(url)[0], clock=clock)  # ?ttl= is not a Redis option
    return MemoryLimiter(clock=clock)


_SHARED: dict[str, Limiter] = {}


def limiter_for_settings(settings: Settings) -> Limiter:
    """This process's limiter for ``settings``' checkpointer: the same object on every call,
    so the auth module and the graph, loaded separately by the server, count together."""
    url = settings.resolved_checkpointer_url
    if url not in _SHARED:
        _SHARED[url] = limiter_for_checkpointer(url)
    return _SHARED[url]


class RateLimited(Exception):
    """A request or run over its limit; ``retry_after_s`` is a whole number of seconds."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"rate limit: {what}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UnknownTier(Exception):
    """A credential names a tier the settings do not define; the message is safe to show."""


@dataclass(frozen=True)
class Tier:
    """One tier's limits; ``None`` or 0 is off. The fields are what ``rate_limit_tiers``
    may set (:data:`bulwark.settings.RATE_LIMIT_TIER_FIELDS`)."""

    requests_per_minute: int | None = 600
    tenant_requests_per_minute: int | None = 6000
    runs_per_minute: int | None = 120
    concurrent_runs: int | None = 32
    tokens_per_minute: int | None = None


assert tuple(f.name for f in fields(Tier)) == RATE_LIMIT_TIER_FIELDS


@dataclass(frozen=True)
class RateLimits:
    """The server's limits on a :class:`Limiter`; a limit of ``None`` or 0 is off.

    The flat fields are tier ``default``; ``tiers`` maps other names (and ``default``, to
    change it) to the fields they override.

    Raises:
        ValueError: on construction, a tier sets a field :class:`Tier` does not have.
    """

    limiter: Limiter
    requests_per_minute: int | None = 600
    tenant_requests_per_minute: int | None = 6000
    runs_per_minute: int | None = 120
    concurrent_runs: int | None = 32
    tokens_per_minute: int | None = None
    run_lease_s: float = 300.0
    tiers: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)
    _resolved: dict[str, Tier] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flat = Tier(**{name: getattr(self, name) for name in RATE_LIMIT_TIER_FIELDS})
        resolved = {DEFAULT_TIER: flat}
        for name, overrides in self.tiers.items():
            if unknown := sorted(set(overrides) - set(RATE_LIMIT_TIER_FIELDS)):
                raise ValueError(f"tier {name!r}: unknown limits {unknown}")
            resolved[name] = replace(flat, **overrides)
        object.__setattr__(self, "_resolved", resolved)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] | None = None) -> RateLimits:
        """The limits ``settings`` set, on this process's shared limiter (a new one with
        ``clock``)."""
        return cls(
            limiter=limiter_for_settings(settings) if clock is None else
            limiter_for_checkpointer(settings.resolved_checkpointer_url, clock=clock),
            requests_per_minute=settings.rate_limit_requests_per_minute,
            tenant_requests_per_minute=settings.rate_limit_tenant_requests_per_minute,
            runs_per_minute=settings.rate_limit_runs_per_minute,
            concurrent_runs=settings.rate_limit_concurrent_runs,
            tokens_per_minute=settings.rate_limit_tokens_per_minute,
            run_lease_s=settings.rate_limit_run_lease_s,
            tiers=settings.rate_limit_tiers,
        )

    @property
    def tier_names(self) -> frozenset[str]:
        """The tiers a credential may name."""
        return frozenset(self._resolved)

    def tier(self, name: str) -> Tier:
        """The limits of tier ``name``.

        Raises:
            UnknownTier: the settings define no such tier.
        """
        try:
            return self._resolved[name]
        except KeyError:
            raise UnknownTier(
                f"this credential's rate-limit tier {name[:64]!r} is not configured on this server"
            ) from None

    async def _take(
        self, key: str, per_minute: int | None, what: str, amount: float = 1, *, limit: str, tier: str
    ) -> None:
        if not per_minute:
            return
        wait = await self.limiter.take(key, per_minute, amount)
        if wait > 0:
            RATE_LIMIT_REJECTIONS.labels(limit, tier).inc()
            raise RateLimited(f"{what} ({per_minute} a minute)", max(1, math.ceil(wait)))

    async def request(self, who: Identity) -> None:
        """Take a request token for ``who``'s credential, then one for its tenant.

        Raises:
            RateLimited: one of them is empty.
            UnknownTier: ``who``'s tier is not configured.
        """
        tier = self.tier(who.tier)
        # Credential ids are unique per tenant only (``jwt:<user>``): key them by both.
        await self._take(f"cred:{who.tenant_id}/{who.credential}", tier.requests_per_minute,
                         "too many requests for this credential", limit="requests", tier=who.tier)
        await self._take(f"tenant:{who.tenant_id}", tier.tenant_requests_per_minute,
                         "too many requests for this tenant", limit="tenant_requests", tier=who.tier)

    async def run(self, who: Identity, *, lease: str | None = None) -> None:
        """Admit a new run for ``who`` under the lease id ``lease`` (its run id): its
        tenant's model tokens must be positive, a concurrent-run slot free; then take a
        token from the credential's run bucket. Without ``lease`` (a cron: its runs start
        later) only the run token is taken. A refusal leaves nothing held.

        Raises:
            RateLimited: over one of the limits.
            UnknownTier: ``who``'s tier is not configured.
        """
        tier = self.tier(who.tier)
        if lease is not None:
            await self._take(f"tokens:{who.tenant_id}", tier.tokens_per_minute,
                             "this tenant's model tokens are spent", amount=0, limit="tokens", tier=who.tier)
            if tier.concurrent_runs:
                wait = await self.limiter.acquire(f"lease:{who.tenant_id}", lease, tier.concurrent_runs, self.run_lease_s)
                if wait > 0:
                    RATE_LIMIT_REJECTIONS.labels("concurrent_runs", who.tier).inc()
                    raise RateLimited(
                        f"too many runs in flight for this tenant ({tier.concurrent_runs} at once)",
                        max(1, math.ceil(wait)),
                    )
        try:
            await self._take(f"runs:{who.tenant_id}/{who.credential}", tier.runs_per_minute,
                             "too many new runs for this credential", limit="runs", tier=who.tier)
        except RateLimited:
            if lease is not None:
                await self.end(who.tenant_id, lease)
            raise

    def leases(self, who: Identity) -> bool:
        """Whether ``who``'s runs take a concurrent-run lease (its tier limits them)."""
        return bool(self.tier(who.tier).concurrent_runs)

    async def end(self, tenant_id: str, lease: str) -> None:
        """Give back the concurrent-run lease ``lease`` of ``tenant_id`` (none: nothing)."""
        await self.limiter.release(f"lease:{tenant_id}", lease)

    # -- the graph's side: what the agent and audit nodes call --------------------------------

    def _tier_of_run(self, configurable: Mapping[str, Any]) -> Tier:
        """The tier the auth handler wrote into the run; ``default`` for runs it did not
        admit (crons) or a tier no longer configured."""
        return self._resolved.get(configurable.get(TIER_KEY) or DEFAULT_TIER, self._resolved[DEFAULT_TIER])

    async def spent(self, tenant_id: str, configurable: Mapping[str, Any], tokens: int) -> None:
        """Debit ``tokens`` (a model call's input and output) from ``tenant_id``'s token
        bucket; never refused, the balance may go negative."""
        per_minute = self._tier_of_run(configurable).tokens_per_minute
        if per_minute and tokens > 0:
            await self.limiter.debit(f"tokens:{tenant_id}", per_minute, tokens)

    async def ended(self, tenant_id: str, configurable: Mapping[str, Any]) -> None:
        """The run ended: give back the lease the auth handler wrote into it, if any."""
        lease = configurable.get(LEASE_KEY)
        if isinstance(lease, str) and lease:
            await self.end(tenant_id, lease)
