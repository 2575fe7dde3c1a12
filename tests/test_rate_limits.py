"""Rate limits (server/limits.py): both backends through one suite, then the real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from agent_server import free_port, running
from clocks import ManualClock
from bulwark.server.credentials import ApiKeys, Identity
from bulwark.server.limits import (
    KEY_PREFIX,
    MemoryLimiter,
    RateLimited,
    RateLimits,
    RedisLimiter,
    limiter_for_checkpointer,
)
from bulwark.settings import load_settings


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.slow)])
def make(request: pytest.FixtureRequest) -> Iterator:
    """``make(clock)``: a limiter of each backend (Redis: a fresh Valkey)."""
    if request.param == "memory":
        yield lambda clock=None: MemoryLimiter(clock=clock)
        return
    url = request.getfixturevalue("redis_url")
    yield lambda clock=None: RedisLimiter(url, clock=clock)


def _run(coro):
    return asyncio.run(coro)


async def _takes(limiter, key: str, per_minute: int, n: int) -> list[float]:
    return [await limiter.take(key, per_minute) for _ in range(n)]


def test_a_full_bucket_allows_a_burst_then_refuses_with_the_wait(make) -> None:
    clock = ManualClock()
    limiter = make(clock)
    waits = _run(_takes(limiter, "a", 6, 7))
    assert waits[:6] == [0.0] * 6
    assert waits[6] == pytest.approx(10.0, abs=0.01)  # 6 a minute: one token every 10 s


def test_a_refused_take_takes_nothing_and_tokens_come_back_at_the_rate(make) -> None:
    clock = ManualClock()
    limiter = make(clock)

    async def scenario() -> None:
        assert await _takes(limiter, "a", 6, 6) == [0.0] * 6
        for _ in range(5):
            assert await limiter.take("a", 6) > 0  # refusals do not dig a hole
        clock.advance(9.0)
        assert await limiter.take("a", 6) == pytest.approx(1.0, abs=0.01)
        clock.advance(1.0)
        assert await limiter.take("a", 6) == 0.0
        assert await limiter.take("a", 6) == pytest.approx(10.0, abs=0.01)

    _run(scenario())


def test_a_bucket_refills_to_its_capacity_only(make) -> None:
    clock = ManualClock()
    limiter = make(clock)

    async def scenario() -> None:
        await _takes(limiter, "a", 4, 4)
        clock.advance(3600)
        waits = await _takes(limiter, "a", 4, 5)
        assert waits[:4] == [0.0] * 4 and waits[4] > 0

    _run(scenario())


def test_keys_have_their_own_buckets(make) -> None:
    limiter = make(ManualClock())

    async def scenario() -> None:
        await _takes(limiter, "a", 2, 2)
        assert await limiter.take("a", 2) > 0
        assert await limiter.take("b", 2) == 0.0

    _run(scenario())


def test_concurrent_takes_never_exceed_the_limit(make) -> None:
    limiter = make(ManualClock())

    async def scenario() -> list[float]:
        return await asyncio.gather(*(limiter.take("a", 10) for _ in range(40)))

    assert sum(1 for w in _run(scenario()) if w == 0.0) == 10


def test_the_server_clock_works_without_an_injected_one(make) -> None:
    limiter = make(None)
    waits = _run(_takes(limiter, "a", 3, 4))
    assert waits[:3] == [0.0] * 3 and 0 < waits[3] <= 20.0


def _identity(user: str, tenant: str = "acme") -> Identity:
    return Identity(tenant_id=tenant, user_id=user, scopes=frozenset(), credential=f"key-{user}")


def test_rate_limits_per_credential_per_tenant_and_for_runs(make) -> None:
    clock = ManualClock()
    limits = RateLimits(make(clock), requests_per_minute=3, tenant_requests_per_minute=5, runs_per_minute=1)
    alice, bob, carol = _identity("alice"), _identity("bob"), _identity("carol", "globex")

    async def scenario() -> None:
        for _ in range(3):
            await limits.request(alice)
        with pytest.raises(RateLimited, match=r"credential .*retry in 20 s") as refused:
            await limits.request(alice)
        assert refused.value.retry_after_s == 20
        await limits.request(bob)
        await limits.request(bob)
        with pytest.raises(RateLimited, match="tenant"):  # acme's 5 are spent
            await limits.request(bob)
        await limits.request(carol)  # another tenant
        await limits.run(alice)
        with pytest.raises(RateLimited, match=r"runs .*retry in 60 s"):
            await limits.run(alice)
        await limits.run(bob)

    _run(scenario())


def test_a_limit_of_zero_or_none_is_off(make) -> None:
    limits = RateLimits(make(ManualClock()), requests_per_minute=0, tenant_requests_per_minute=None, runs_per_minute=0)

    async def scenario() -> None:
        for _ in range(50):
            await limits.request(_identity("alice"))
            await limits.run(_identity("alice"))

    _run(scenario())


@pytest.mark.slow
def test_redis_buckets_expire_when_idle(redis_url: str) -> None:
    limiter = RedisLimiter(redis_url, clock=ManualClock())
    _run(_takes(limiter, "idle", 60, 3))
    client = redis.Redis.from_url(redis_url)
    key = f"{KEY_PREFIX}{{idle}}"
    assert 2000 <= client.pttl(key) <= 5000  # 3 tokens at 1 a second, plus a second
    assert set(client.hkeys(key)) == {b"tokens", b"ts"}


def test_an_unreachable_redis_allows_the_take() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
    assert _run(limiter.take("a", 1)) == 0.0


def test_the_backend_follows_the_checkpointer(tmp_path: Path) -> None:
    assert isinstance(limiter_for_checkpointer("redis://127.0.0.1:6379/0?ttl=60"), RedisLimiter)
    assert limiter_for_checkpointer("redis://h:1/2?ttl=60")._url == "redis://h:1/2"  # type: ignore[attr-defined]
    assert isinstance(limiter_for_checkpointer(f"sqlite:///{tmp_path}/c.db"), MemoryLimiter)
    settings = load_settings(data_dir=tmp_path)
    limits = RateLimits.from_settings(settings)
    assert (limits.requests_per_minute, limits.tenant_requests_per_minute, limits.runs_per_minute) == (600, 6000, 120)


# -- the real server ---------------------------------------------------------------------------


def _keys(path: Path, *users: str) -> dict[str, str]:
    keys = ApiKeys(path)
    return {user: keys.create(tenant_id="acme", user_id=user, scopes=())[1] for user in users}


def _ask(text: str) -> dict:
    return {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": text}]}}


@pytest.mark.slow
def test_the_server_answers_429_with_retry_after_and_starts_nothing(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "data" / "api_keys.json", "alice", "bob")
    env = {"BULWARK_AUTH": "keys", "BULWARK_RATE_LIMIT_REQUESTS_PER_MINUTE": "8",
           "BULWARK_RATE_LIMIT_RUNS_PER_MINUTE": "1"}
    with running("bulwark serve", tmp_path, **env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            alice = {"x-api-key": keys["alice"]}
            statuses = [http.post("/threads/search", json={}, headers=alice).status_code for _ in range(8)]
            assert statuses == [200] * 8
            refused = http.post("/threads/search", json={}, headers=alice)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) == 8  # 8 a minute: one every 7.5 s
            assert refused.json()["detail"] == (
                "rate limit: too many requests for this credential (8 a minute); retry in 8 s"
            )
            assert http.get("/ok").status_code == 200  # no credential, no limit

            bob = {"x-api-key": keys["bob"]}
            first = http.post("/threads", json={}, headers=bob).json()["thread_id"]
            assert http.post(f"/threads/{first}/runs", json=_ask("hello"), headers=bob).status_code == 200
            second = http.post("/threads", json={}, headers=bob).json()["thread_id"]
            run = http.post(f"/threads/{second}/runs", json=_ask("hello again"), headers=bob)
            assert run.status_code == 429 and int(run.headers["retry-after"]) == 60
            assert "new runs" in run.json()["detail"]
            assert http.get(f"/threads/{second}/runs", headers=bob).json() == []
            state = http.get(f"/threads/{second}/state", headers=bob).json()
            assert not state["values"] and state["next"] == []
            assert http.get(f"/threads/{second}", headers=bob).json()["status"] == "idle"


@pytest.mark.slow
def test_two_replicas_on_one_redis_share_the_limit(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    redis_url = request.getfixturevalue("redis_url")  # Valkey
    shared = tmp_path / "api_keys.json"
    key = _keys(shared, "alice")["alice"]
    env = {"BULWARK_AUTH": "keys", "BULWARK_CHECKPOINTER_URL": redis_url,
           "BULWARK_API_KEYS_FILE": str(shared), "BULWARK_RATE_LIMIT_REQUESTS_PER_MINUTE": "6"}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with running("bulwark serve", tmp_path / "one", **env) as one, running("bulwark serve", tmp_path / "two", **env) as two:
        statuses = []
        for i in range(14):
            url = (one, two)[i % 2].url
            statuses.append(httpx.post(f"{url}/threads/search", json={}, headers={"x-api-key": key}, timeout=30).status_code)
        assert statuses.count(200) == 6, statuses
        assert statuses[:6] == [200] * 6 and set(statuses[6:]) == {429}
