"""Bulwark's Prometheus series, safe with several worker processes, and their exposition.

The series are the metric contract the dashboard and alert rules are written against
(``deploy/`` and README): names and labels are fixed, labels are low-cardinality (model
spec, tool name, rail, tier, route template; never a tenant, user, thread or request id,
never message text). They are ``prometheus_client`` objects created once at import, so
recording is one ``labels(...)`` lookup in the metric's own dict and an increment: no
registry lookups, no I/O on the event loop beyond an mmap write in multiprocess mode.

They live in :data:`REGISTRY`, not ``prometheus_client``'s global one: langgraph-api
serves that global registry (its OTel Prometheus reader, process and GC series) on its
own ``/metrics``; :func:`exposition` returns both, ours first, so a scrape loses nothing.

Several processes (uvicorn or aegra workers): start every process with
``PROMETHEUS_MULTIPROC_DIR`` naming an empty directory (``prometheus_client``'s
multiprocess mode: each process writes its values to files there, read at import time of
``prometheus_client``) and :func:`exposition` sums the files of every process. The gauge
takes the most recent value any process wrote (``multiprocess_mode="mostrecent"``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY as GLOBAL_REGISTRY,
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :func:`exposition`'s body (Prometheus text format 0.0.4)."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry()
"""Bulwark's series (single-process mode)."""

_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds: HTTP requests and model calls (the run-route SLO is 10 s)."""
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: store and checkpoint operations."""

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route template.",
    ["method", "route", "status"], registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "HTTP request latency (to the end of the body), by route template.",
    ["method", "route"], buckets=_SLOW, registry=REGISTRY,
)
LLM_REQUESTS = Counter(
    "llm_requests_total", "Model calls, by model spec and status (ok|error).",
    ["model", "status"], registry=REGISTRY,
)
LLM_DURATION = Histogram(
    "llm_request_duration_seconds", "Model call latency.", ["model"], buckets=_SLOW, registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "llm_tokens_total", "Model tokens, by kind (input|output).", ["model", "kind"], registry=REGISTRY,
)
LLM_COST = Counter(
    "llm_cost_usd_total", "Model spend in USD at the model catalogue's prices, by rate-limit tier.",
    ["model", "tier"], registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "tool_calls_total", "Tool calls, by outcome (success|error|blocked|rejected|replayed).",
    ["tool_name", "status"], registry=REGISTRY,
)
TOOL_SUCCESSES = Counter(
    "tool_calls_success_total", "Tool calls that succeeded.", ["tool_name"], registry=REGISTRY,
)
AGENT_DECISIONS = Counter(
    "agent_decisions_total",
    "Agent decisions (refusal, route_<outcome>, model_fallback, no_model_available, cache_hit, tool_call, answer, approval_*).",
    ["decision_type"], registry=REGISTRY,
)
GUARDRAIL_VERDICTS = Counter(
    "guardrail_verdicts_total", "Rail verdicts, by rail (input|output|context) and action.",
    ["rail", "action"], registry=REGISTRY,
)
CIRCUIT_BREAKER_STATE = Gauge(
    "circuit_breaker_state", "A tool's circuit breaker: 0 closed, 1 half-open, 2 open.",
    ["breaker"], multiprocess_mode="mostrecent", registry=REGISTRY,
)
MEMORY_RECALL_DURATION = Histogram(
    "memory_recall_duration_seconds", "Memory store search latency, by recall route.",
    ["route"], buckets=_FAST, registry=REGISTRY,
)
CHECKPOINT_DURATION = Histogram(
    "checkpoint_duration_seconds", "Checkpointer operation latency, by operation.",
    ["op"], buckets=_FAST, registry=REGISTRY,
)
MEMORY_CACHE_HITS = Counter(
    "memory_cache_hits_total", "Answer cache lookups, by level (l1|l2|semantic) and outcome (hit|miss|error).",
    ["level", "outcome"], registry=REGISTRY,
)
RATE_LIMIT_REJECTIONS = Counter(
    "rate_limit_rejections_total", "Requests and runs refused by a rate limit, by limit and tier.",
    ["limit", "tier"], registry=REGISTRY,
)

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
""":class:`~bulwark.tools.policy.BreakerState` values as the gauge's numbers."""

def record_llm_call(
    *, model: str, tier: str, ok: bool, duration_s: float, input_tokens: int, output_tokens: int, cost_usd: float
) -> None:
    """One model call's series: count, latency, tokens and cost."""
    LLM_REQUESTS.labels(model, "ok" if ok else "error").inc()
    LLM_DURATION.labels(model).observe(duration_s)
    if input_tokens:
        LLM_TOKENS.labels(model, "input").inc(input_tokens)
    if output_tokens:
        LLM_TOKENS.labels(model, "output").inc(output_tokens)
    LLM_COST.labels(model, tier).inc(cost_usd)


def record_tool_call(tool_name: str, status: str, breaker: str | None) -> None:
    """One tool call's outcome, and its breaker's state after it (``None``: no breaker,
    an unknown tool)."""
    TOOL_CALLS.labels(tool_name, status).inc()
    if status == "success":
        TOOL_SUCCESSES.labels(tool_name).inc()
    if breaker is not None:
        CIRCUIT_BREAKER_STATE.labels(tool_name).set(BREAKER_STATES.get(breaker, 0))


@contextmanager
def timed(histogram: Histogram, label: str) -> Iterator[None]:
    """Observe how long the block takes (failures included) in ``histogram``'s ``label`` child."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(label).observe(time.perf_counter() - started)


def exposition(*, multiproc_dir: str | None = None, include_global: bool = True) -> bytes:
    """The text a scrape of ``/metrics`` returns.

    Args:
        multiproc_dir: the multiprocess directory to aggregate; ``PROMETHEUS_MULTIPROC_DIR``
            if omitted; without either, this process's :data:`REGISTRY`.
        include_global: append ``prometheus_client``'s global registry (what
            langgraph-api's own ``/metrics`` serves).
    """
    directory = multiproc_dir or os.environ.get(MULTIPROC_ENV)
    if directory:
        aggregated = CollectorRegistry()
        MultiProcessCollector(aggregated, path=directory)
        ours = generate_latest(aggregated)
    else:
        ours = generate_latest(REGISTRY)
    return ours + generate_latest(GLOBAL_REGISTRY) if include_global else ours
