"""Rate limits of the server: token buckets per credential and per tenant.

Each bucket holds up to ``per_minute`` tokens and refills at ``per_minute / 60`` a second,
so a client may burst a minute's worth and then goes on at the steady rate. A request
takes one token from its credential's bucket and one from its tenant's; a new run (or
cron) takes one more from its credential's run bucket (:class:`RateLimits`). A refused
take says how long until a token is back, which becomes the 429's ``Retry-After``.

Two backends, one interface (:class:`Limiter`), the same behaviour, chosen like the effect
journal (:func:`limiter_for_checkpointer`):

* :class:`MemoryLimiter`: a dict of buckets in this process (one replica, or ``langgraph
  dev``); buckets that have refilled are dropped as the dict grows.
* :class:`RedisLimiter`: one Lua script per take does refill and take atomically in the
  checkpointer's Redis (``bulwark:ratelimit:{...}`` hashes), so every replica shares the
  buckets; each key's TTL is the time it takes to refill, so idle buckets vanish.

Both take time from a ``clock`` keyword (tests inject one; nobody sleeps). On Redis without
a clock the script reads the server's ``TIME``, so replicas never disagree about "now".

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
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio
import redis.exceptions

from bulwark.persistence.redis import parse_redis_url
from bulwark.server.credentials import Identity
from bulwark.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "bulwark:ratelimit:"
_PRUNE_AT = 10_000
"""In-process buckets kept before the full (idle) ones are dropped."""
_REDIS_TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}


class Limiter(ABC):
    """Token buckets by key."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock

    @abstractmethod
    async def take(self, key: str, per_minute: int) -> float:
        """Take one token from ``key``'s bucket of ``per_minute`` tokens.

        Returns:
            0.0 if taken; else the seconds until a token is back (nothing was taken).
        """


def _refill(tokens: float, since: float, now: float, capacity: int) -> float:
    return min(float(capacity), tokens + max(0.0, now - since) * capacity / 60.0)


class MemoryLimiter(Limiter):
    """Buckets in this process: ``{key: (tokens, last update, capacity)}``. A take has no
    ``await`` inside, so it is atomic on the event loop."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self._buckets: dict[str, tuple[float, float, int]] = {}

    async def take(self, key: str, per_minute: int) -> float:
        now = (self.clock or time.monotonic)()
        tokens, since, _ = self._buckets.get(key, (float(per_minute), now, per_minute))
        tokens = _refill(tokens, since, now, per_minute)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) * 60.0 / per_minute
        self._buckets[key] = (tokens, max(now, since), per_minute)
        if len(self._buckets) > _PRUNE_AT:
            self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled (a full bucket is the same as none)."""
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items()
            if _refill(bucket[0], bucket[1], now, bucket[2]) < bucket[2]
        }


_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = capacity / 60.0
local now = tonumber(ARGV[2])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
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
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', since))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""
"""Refill, then take one token; returns the wait (0 when taken) as a string (Lua numbers
become integers in replies). ``now < 0`` means: use the server's clock."""


class RedisLimiter(Limiter):
    """Buckets in Redis, shared by every replica; one atomic script per take."""

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self._url = url
        self._client: redis.asyncio.Redis | None = None
        self._script: object = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _take_script(self):  # noqa: ANN202 - redis' AsyncScript
        """The script bound to a client of the running loop (pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = redis.asyncio.Redis.from_url(self._url, **_REDIS_TIMEOUTS)
            self._script = self._client.register_script(_TAKE)
            self._loop = loop
        return self._script

    async def take(self, key: str, per_minute: int) -> float:
        now = self.clock() if self.clock else -1.0
        try:
            wait = await self._take_script()(keys=[f"{KEY_PREFIX}{{{key}}}"], args=[per_minute, repr(now)])
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("rate limit not checked: Redis unreachable (%s)", type(exc).__name__)
            return 0.0
        return float(wait)

    async def aclose(self) -> None:
        """Close the client (tests)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def limiter_for_checkpointer(url: str, *, clock: Callable[[], float] | None = None) -> Limiter:
    """The limiter that lives next to the checkpoints named by ``url``."""
    if url.startswith(("redis://", "rediss://")):
        return RedisLimiter(parse_redis_url(url)[0], clock=clock)  # ?ttl= is not a Redis option
    return MemoryLimiter(clock=clock)


class RateLimited(Exception):
    """A request or run over its limit; ``retry_after_s`` is a whole number of seconds."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"rate limit: {what}; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RateLimits:
    """The server's limits on a :class:`Limiter`; a limit of ``None`` or 0 is off."""

    limiter: Limiter
    requests_per_minute: int | None = 600
    tenant_requests_per_minute: int | None = 6000
    runs_per_minute: int | None = 120

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] | None = None) -> RateLimits:
        return cls(
            limiter=limiter_for_checkpointer(settings.resolved_checkpointer_url, clock=clock),
            requests_per_minute=settings.rate_limit_requests_per_minute,
            tenant_requests_per_minute=settings.rate_limit_tenant_requests_per_minute,
            runs_per_minute=settings.rate_limit_runs_per_minute,
        )

    async def _take(self, key: str, per_minute: int | None, what: str) -> None:
        if not per_minute:
            return
        wait = await self.limiter.take(key, per_minute)
        if wait > 0:
            raise RateLimited(f"{what} ({per_minute} a minute)", max(1, math.ceil(wait)))

    async def request(self, who: Identity) -> None:
        """Take a request token for ``who``'s credential, then one for its tenant.

        Raises:
            RateLimited: one of them is empty.
        """
        # Credential ids are unique per tenant only (``jwt:<user>``): key them by both.
        await self._take(f"cred:{who.tenant_id}/{who.credential}", self.requests_per_minute,
                         "too many requests for this credential")
        await self._take(f"tenant:{who.tenant_id}", self.tenant_requests_per_minute,
                         "too many requests for this tenant")

    async def run(self, who: Identity) -> None:
        """Take a new-run token for ``who``'s credential.

        Raises:
            RateLimited: it is empty.
        """
        await self._take(f"runs:{who.tenant_id}/{who.credential}", self.runs_per_minute,
                         "too many new runs for this credential")
