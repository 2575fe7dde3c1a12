"""Tool policies, the circuit breaker and the transient-error rule (no real sleeping)."""

from __future__ import annotations

import errno
import random
import socket
import threading

import httpx
import pytest
from langchain_core.tools import ToolException
from pydantic import BaseModel, ValidationError

from clocks import ManualClock
from bulwark.settings import load_settings
from bulwark.tools.policy import (
    BreakerState,
    CircuitBreaker,
    ToolPolicy,
    TransientToolError,
    is_transient,
)


class FixedRandom(random.Random):
    """``random()`` always returns ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


# -- ToolPolicy ----------------------------------------------------------------------------


def test_policy_from_settings_takes_the_settings_defaults() -> None:
    settings = load_settings(
        tool_timeout_s=7,
        tool_retries=4,
        tool_breaker_failures=3,
        tool_breaker_recovery_s=12,
        tool_max_concurrency=2,
    )
    policy = ToolPolicy.from_settings(settings, "calculator")
    assert (policy.timeout_s, policy.retries, policy.failure_threshold) == (7, 4, 3)
    assert (policy.recovery_s, policy.max_concurrency) == (12, 2)
    assert policy.requires_approval is False
    assert ToolPolicy.from_settings(settings, "send_email").requires_approval is True


def test_policy_overrides_from_settings_apply_per_tool() -> None:
    settings = load_settings(
        tool_timeout_s=30,
        approval_tools=("http_fetch",),
        tool_policies={"http_fetch": {"timeout_s": 5, "retries": 0, "idempotent": False}},
    )
    fetch = ToolPolicy.from_settings(settings, "http_fetch")
    assert (fetch.timeout_s, fetch.retries, fetch.idempotent) == (5, 0, False)
    assert fetch.requires_approval is True
    assert ToolPolicy.from_settings(settings, "other").timeout_s == 30


def test_policy_overrides_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULWARK_TOOL_POLICIES", '{"search": {"max_concurrency": 1}}')
    assert ToolPolicy.from_settings(load_settings(), "search").max_concurrency == 1


def test_a_tools_own_policy_is_the_base_under_settings_overrides() -> None:
    settings = load_settings(
        tool_timeout_s=30,
        approval_tools=("deploy",),
        tool_policies={"deploy": {"retries": 0}},
    )
    base = ToolPolicy(timeout_s=3, retries=5, idempotent=False)
    policy = ToolPolicy.from_settings(settings, "deploy", base=base)
    assert policy.timeout_s == 3  # the tool's own value, not the settings default
    assert policy.retries == 0  # the operator's override wins
    assert policy.idempotent is False
    assert policy.requires_approval is True


def test_unknown_override_key_names_the_tool_and_key() -> None:
    settings = load_settings(tool_policies={"http_fetch": {"timeout": 5}})
    with pytest.raises(ValueError, match=r"tool_policies\['http_fetch'\]: unknown key 'timeout'"):
        ToolPolicy.from_settings(settings, "http_fetch")


def test_invalid_override_value_names_the_tool_and_key() -> None:
    settings = load_settings(tool_policies={"http_fetch": {"timeout_s": -1}})
    expected = r"tool_policies\['http_fetch'\]: timeout_s: .*greater than 0"
    with pytest.raises(ValueError, match=expected):
        ToolPolicy.from_settings(settings, "http_fetch")


def test_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        ToolPolicy().timeout_s = 1  # type: ignore[misc]


def test_side_effecting_tools_get_a_single_attempt() -> None:
    assert ToolPolicy(retries=3).attempts == 4
    assert ToolPolicy(retries=3, idempotent=False).attempts == 1


def test_backoff_is_exponential_capped_and_jittered_in_the_upper_half() -> None:
    policy = ToolPolicy(backoff_s=0.5, backoff_max_s=5)
    top = [policy.backoff(n, rng=FixedRandom(1.0)) for n in range(1, 7)]
    assert top == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    bottom = [policy.backoff(n, rng=FixedRandom(0.0)) for n in range(1, 7)]
    assert bottom == [0.25, 0.5, 1.0, 2.0, 2.5, 2.5]
    seeded = [policy.backoff(2, rng=random.Random(seed)) for seed in range(50)]
    assert all(0.5 <= d <= 1.0 for d in seeded) and len(set(seeded)) > 1


# -- CircuitBreaker ----------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, recovery_s=30, clock=clock)


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()


def test_breaker_stays_closed_below_threshold_and_success_resets_the_count(
    breaker: CircuitBreaker,
) -> None:
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.retry_in() == 0


def test_breaker_opens_at_threshold_and_refuses_with_retry_in(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    open_breaker(breaker)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 30
    clock.advance(12.5)
    assert not breaker.allow()
    assert breaker.retry_in() == 17.5


def test_breaker_half_opens_after_recovery_and_allows_one_trial(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    open_breaker(breaker)
    clock.advance(29.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_in() == 0
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one
    assert breaker.state is BreakerState.HALF_OPEN


def test_successful_trial_closes_the_breaker(breaker: CircuitBreaker, clock: ManualClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(5))
    breaker.record_failure()  # the count started again from zero
    assert breaker.state is BreakerState.CLOSED


def test_failed_trial_reopens_the_breaker_for_a_full_window(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    open_breaker(breaker)
    clock.advance(45)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == 30
    assert not breaker.allow()


def test_a_trial_that_never_reports_frees_its_slot_after_recovery(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow()  # this trial's run gets cancelled: no record_* call
    clock.advance(10)
    assert not breaker.allow()
    assert breaker.retry_in() == 20
    clock.advance(20)
    assert breaker.allow()


def test_late_failures_do_not_extend_the_open_window(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    open_breaker(breaker)
    clock.advance(20)
    breaker.record_failure()  # a call let through before the breaker opened
    assert breaker.retry_in() == 10


def test_only_one_of_many_concurrent_callers_gets_the_trial(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    open_breaker(breaker)
    clock.advance(30)
    start = threading.Barrier(16)
    granted: list[bool] = []

    def caller() -> None:
        start.wait()
        granted.append(breaker.allow())

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 1


def test_breaker_rejects_nonsense_settings(clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0, recovery_s=30, clock=clock)
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=1, recovery_s=0, clock=clock)


# -- transient errors --------------------------------------------------------------------

_REQUEST = httpx.Request("GET", "https://example.org")


def _status_error(code: int) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError(
        "status", request=_REQUEST, response=httpx.Response(code, request=_REQUEST)
    )


class FlakyUpstream(Exception):
    transient = True


class Pydantic(BaseModel):
    n: int


def _pydantic_error() -> ValidationError:
    try:
        Pydantic(n="x")  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        ConnectionResetError(),
        ConnectionRefusedError(),
        socket.gaierror(-2, "Name or service not known"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        httpx.ConnectTimeout("slow", request=_REQUEST),
        httpx.ReadError("reset", request=_REQUEST),
        httpx.RemoteProtocolError("peer closed", request=_REQUEST),
        _status_error(503),
        _status_error(429),
        FlakyUpstream(),
        TransientToolError("service busy"),
    ],
    ids=repr,
)
def test_transient_errors(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("x"),
        ToolException("bad input"),
        FileNotFoundError(errno.ENOENT, "No such file"),
        PermissionError(errno.EACCES, "denied"),
        OSError("no errno"),
        httpx.UnsupportedProtocol("ftp://", request=_REQUEST),
        httpx.LocalProtocolError("bad header", request=_REQUEST),
        _status_error(404),
        _status_error(500),
        _pydantic_error(),
    ],
    ids=repr,
)
def test_final_errors(exc: BaseException) -> None:
    assert not is_transient(exc)


async def test_a_tool_rejecting_bad_input_does_not_open_its_breaker() -> None:
    from langchain_core.tools import ToolException

    from bulwark.tools.registry import ToolRegistry

    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        if b == 0:
            raise ToolException("division by zero")
        return a / b

    registry = ToolRegistry()
    registry.register(divide, policy=ToolPolicy(failure_threshold=2))
    for i in range(3):
        reply = await registry.arun({"name": "divide", "args": {"a": 1, "b": 0}, "id": f"c{i}"})
        assert reply.status == "error" and reply.content == "division by zero"
    assert registry.stats()["divide"]["breaker"] == "closed"
