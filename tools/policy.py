"""How a tool is run: timeout, retries, circuit breaker, concurrency and approval.

:class:`ToolPolicy` is the per-tool configuration (a frozen pydantic model, validated like
the settings it comes from). :class:`CircuitBreaker` stops calling a tool that keeps
failing. :func:`is_transient` decides which failures are worth a retry.

Why a breaker of our own: the circuit-breaker packages on PyPI (``pybreaker``,
``circuitbreaker``, ``aiobreaker``) read the wall clock directly, so their recovery
window cannot be tested without real sleeping, and each covers either sync or async code
but not both with one shared state. A tool is called from both :meth:`ToolRegistry.run
<bulwark.tools.registry.ToolRegistry.run>` and ``arun``, so the breaker here is a small
state machine behind a ``threading.Lock`` (held only for a few assignments, never across
an await) with an injected clock.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from langchain_core.tools import ToolException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bulwark.settings import Settings

try:  # httpx is optional: only tools that make HTTP calls need it
    import httpx
except ImportError:  # pragma: no cover - httpx ships with langchain-openai
    httpx = None  # type: ignore[assignment]

Clock = Callable[[], float]


class ToolPolicy(BaseModel):
    """How the registry runs one tool. Every field has the settings' default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=30.0, gt=0, description="Time limit of one attempt.")
    retries: int = Field(
        default=2, ge=0, le=10, description="Extra attempts after a transient error."
    )
    backoff_s: float = Field(
        default=0.5, ge=0, description="Base delay before the first retry; doubles per retry."
    )
    backoff_max_s: float = Field(default=10.0, ge=0, description="Cap of a retry's delay.")
    failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failed calls that open the breaker."
    )
    recovery_s: float = Field(
        default=30.0, gt=0, description="Seconds an open breaker waits before a trial call."
    )
    max_concurrency: int = Field(default=8, ge=1, description="Concurrent calls of the tool.")
    requires_approval: bool = Field(
        default=False, description="A human approves each call before it runs."
    )
    idempotent: bool = Field(
        default=True,
        description="Repeating a call is harmless (no side effects, or side effects "
        "deduplicated with the idempotency key). False: the call is never retried, since "
        "a timed-out attempt may already have had its effect.",
    )
    cacheable: bool = Field(
        default=True,
        description="An answer built on its results may be served again from the answer cache, "
        "to any user of the tenant. False for tools with side effects, the clock, live data or "
        "the user's own data: a turn that called one is never cached.",
    )
    pii_args: tuple[str, ...] = Field(
        default=(),
        description="Arguments that receive the user's real values for PII vault placeholders "
        "(`<EMAIL_1>`), restored just before the call runs; every other argument keeps the "
        "placeholders.",
    )

    @classmethod
    def from_settings(
        cls, settings: Settings, name: str, *, base: ToolPolicy | None = None
    ) -> ToolPolicy:
        """The policy of tool ``name`` under ``settings``.

        Starts from ``base`` (a tool's own policy, from code) or else from the settings'
        ``tool_*`` defaults; a tool listed in ``approval_tools`` requires approval; then
        ``settings.tool_policies[name]`` overrides any field.

        Raises:
            ValueError: an override names an unknown field or has an invalid value; the
                message names the tool and the key.
        """
        if base is not None:
            values: dict[str, Any] = base.model_dump()
        else:
            values = {
                "timeout_s": settings.tool_timeout_s,
                "retries": settings.tool_retries,
                "failure_threshold": settings.tool_breaker_failures,
                "recovery_s": settings.tool_breaker_recovery_s,
                "max_concurrency": settings.tool_max_concurrency,
            }
        if name in settings.approval_tools:
            values["requires_approval"] = True
        overrides = settings.tool_policies.get(name, {})
        for key in overrides:
            if key not in cls.model_fields:
                raise ValueError(
                    f"tool_policies[{name!r}]: unknown key {key!r}; "
                    f"known keys: {', '.join(cls.model_fields)}"
                )
        try:
            return cls(**{**values, **overrides})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"tool_policies[{name!r}]: {problems}") from None

    @property
    def attempts(self) -> int:
        """Attempts allowed per call: one, plus the retries if the tool is idempotent."""
        return 1 + (self.retries if self.idempotent else 0)

    def backoff(self, retry: int, *, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry).

        Exponential (``backoff_s * 2**(retry-1)``), capped at ``backoff_max_s``, with
        "equal jitter": a random point in the upper half of that delay, so concurrent
        callers spread out but never retry immediately.
        """
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1))
        return delay / 2 + rng.random() * delay / 2


class BreakerState(StrEnum):
    """A circuit breaker's state."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Refuses calls to a tool after ``failure_threshold`` consecutive failures.

    closed → (N consecutive failures) → open → (``recovery_s`` later) → half-open, which
    lets one trial call through → closed if it succeeds, open again if it fails. A trial
    that never reports back (its run was cancelled) frees its slot after ``recovery_s``,
    so the breaker cannot stay stuck half-open.
    """

    def __init__(self, *, failure_threshold: int, recovery_s: float, clock: Clock) -> None:
        if failure_threshold < 1 or recovery_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_s > 0")
        self.failure_threshold = failure_threshold
        self.recovery_s = recovery_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None
        self._open = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its recovery time reads half-open)."""
        with self._lock:
            return self._state(self._clock())

    def _state(self, now: float) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if now - self._opened_at >= self.recovery_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until a call may be let through: 0 when closed or half-open with no
        trial under way."""
        with self._lock:
            now = self._clock()
            if self._trial_started is not None:
                return max(0.0, self._trial_started + self.recovery_s - now)
            if self._open:
                return max(0.0, self._opened_at + self.recovery_s - now)
            return 0.0

    def allow(self) -> bool:
        """Whether a call may run now; in half-open, True claims the single trial."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.OPEN:
                return False
            trial_free = (
                self._trial_started is None or now - self._trial_started >= self.recovery_s
            )
            if trial_free:
                self._trial_started = now
            return trial_free

    def record_success(self) -> None:
        """A call succeeded: the breaker closes and the failure count resets."""
        with self._lock:
            self._failures = 0
            self._open = False
            self._trial_started = None

    def record_failure(self) -> None:
        """A call failed: a failed trial re-opens the breaker; in closed state the
        ``failure_threshold``-th consecutive failure opens it. A failure reported while
        open (a call let through before it opened) does not extend the open window."""
        with self._lock:
            if self._trial_started is None and self._open:
                return  # a call started before the breaker opened: keep the window
            self._failures += 1
            if self._trial_started is not None or self._failures >= self.failure_threshold:
                self._open = True
                self._opened_at = self._clock()
                self._trial_started = None


_NETWORK_ERRNOS = frozenset(
    getattr(errno, code)
    for code in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "ENETDOWN",
        "ENETUNREACH", "ENETRESET", "EHOSTDOWN", "EHOSTUNREACH",
    )
    if hasattr(errno, code)
)
_RETRYABLE_HTTP_STATUS = frozenset({408, 429, 502, 503, 504})


class TransientToolError(ToolException):
    """Raised by a tool for a failure that may go away (a busy or unreachable service);
    the registry retries it with backoff."""

    transient = True


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth a retry.

    Transient: ``TimeoutError``, ``ConnectionError``, network ``OSError`` s (DNS failures
    and errnos such as ``ENETUNREACH``, not e.g. ``FileNotFoundError``), httpx transport
    errors except those that are the caller's own mistake (``UnsupportedProtocol``,
    ``LocalProtocolError``), httpx status errors 408/429/502/503/504, and any exception
    whose class sets ``transient = True`` (such as :class:`TransientToolError`).
    Anything else, including validation errors, is final.
    """
    if getattr(exc, "transient", False) is True:
        return True
    if isinstance(exc, (TimeoutError, ConnectionError, socket.gaierror)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _NETWORK_ERRNOS
    if httpx is not None:
        if isinstance(exc, httpx.TransportError):
            return not isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError))
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code in _RETRYABLE_HTTP_STATUS
    return False
