"""Fallback chains: what counts as a model being unavailable, one circuit breaker per model,
and the error a turn ends with when no model in its chain can answer.

The agent node walks the chain itself (:class:`bulwark.nodes.agent.Agent`) rather than using
LangChain's ``Runnable.with_fallbacks``: the walk has to skip models whose breaker is open
and models the tenant's budget cannot pay for, reserve each call's cost before it and settle
it after, and report which model answered and why each one before it did not; none of which
``with_fallbacks`` exposes. The breaker is the tools' :class:`~bulwark.tools.policy.CircuitBreaker`.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelConnectionError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from bulwark.models.catalogue import Catalogue
from bulwark.tools.policy import CircuitBreaker, Clock, is_transient

_UNAVAILABLE_STATUS = frozenset({408, 409, 425, 429})


class NoModelAvailable(RuntimeError):
    """Every model of the turn's chain failed, had its breaker open, or was over budget."""

    def __init__(self, attempts: Sequence[tuple[str, str]]) -> None:
        self.attempts = list(attempts)
        tried = "; ".join(f"{name}: {why}" for name, why in self.attempts) or "no model configured"
        super().__init__(f"no model is available ({tried})")

    @property
    def message(self) -> str:
        """What the user reads: why, and that the request is kept."""
        tried = "; ".join(f"{name} {why}" for name, why in self.attempts)
        return (
            f"Sorry, no model can answer right now ({tried}). Your message is kept in this "
            "conversation: send it again in a moment."
        )


def unavailable(exc: BaseException) -> str | None:
    """Why ``exc`` makes the model unavailable for now (the chain moves on), or ``None`` if it
    is the request's own fault and another model would fail the same way.

    Unavailable: LangChain's normalised model errors for rate limits, timeouts, connection
    failures, a prompt over the context window (a larger model may take it) and an unknown
    model name; HTTP 408/409/425/429 and 5xx from any provider SDK (their errors carry
    ``status_code``); and what the tools count as transient (timeouts, network errors).
    """
    if isinstance(exc, ModelRateLimitError):
        return "rate limited (HTTP 429)"
    if isinstance(exc, (ModelTimeoutError, TimeoutError)) or "Timeout" in type(exc).__name__:
        return "timed out"
    if isinstance(exc, (ModelConnectionError, ConnectionError)):
        return "unreachable"
    if isinstance(exc, ContextOverflowError):
        return "context too long"
    if isinstance(exc, ModelNotFoundError):
        return "not found (HTTP 404)"
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and (status >= 500 or status in _UNAVAILABLE_STATUS):
        return "rate limited (HTTP 429)" if status == 429 else f"failed (HTTP {status})"
    if is_transient(exc):
        return f"failed ({type(exc).__name__})"
    return None


def model_breakers(catalogue: Catalogue, *, failures: int, recovery_s: float, clock: Clock) -> dict[str, CircuitBreaker]:
    """A circuit breaker per model of ``catalogue``, by name."""
    return {
        entry.name: CircuitBreaker(failure_threshold=failures, recovery_s=recovery_s, clock=clock)
        for entry in catalogue.models
    }
