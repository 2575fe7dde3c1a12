"""OpenTelemetry spans and metrics of a turn, and the hooks that also feed the Prometheus series.

**Off unless configured.** :func:`telemetry` builds the process's :class:`Telemetry` from the
standard ``OTEL_*`` variables the first time it is asked: traces when ``OTEL_TRACES_EXPORTER``
names an exporter, or is unset and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``)
is set; metrics likewise (``OTEL_METRICS_EXPORTER``, ``..._METRICS_ENDPOINT``);
``OTEL_SDK_DISABLED=true`` turns both off. Unlike the SDK's own default (``otlp``), nothing is
exported when nothing is set: no provider, no exporter, and each hook below is a flag test.
``otlp`` is OTLP over HTTP/protobuf (``opentelemetry-exporter-otlp-proto-http``, the one
installed); other names are the SDK's exporter entry points (``console``). The SDK reads the
rest itself: endpoint, headers, timeout (the exporter), ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (the resource; service ``bulwark`` when neither names one),
sampler, batch sizes, export interval. Tests :func:`install` a :class:`Telemetry` on the SDK's
in-memory exporter and reader.

**One trace per run, trace id = run id.** LangGraph runs each node in an asyncio task of its
own, so a span opened in one node is not the current span in the next. So every node is
wrapped when the graph is built (:func:`traced_node`): its span opens inside the node's own
task, where the model, tool, rail and recall spans it starts nest under it naturally, and its
parent is a context derived from the LangGraph run id alone: trace id = the run id's 128 bits,
span id = its low 64 bits. Nothing is shared between tasks or processes, so a run resumed or
finished elsewhere stays in the same trace, and the trace id is the id LangSmith gives the
root run and the one the server's logs and API show. The real root span, ``bulwark.turn``, is
recorded by a LangChain callback handler on the compiled graph (:func:`with_turn_spans`),
which sees the root run start and end (or fail) whatever way the run ends; it gets exactly
those ids from this module's id generator. The run id is LangGraph's ``execution_info.run_id``
(the server passes one; so can any caller, ``config["run_id"]``); a run started without one
gets a generated id, which the handler maps from each child run to its root.

**Metrics.** OTel instruments ``llm.request.duration`` (ms, by model), ``tool.calls.total``
(by tool and status), ``agent.decisions`` (by type) and ``memory.cache.hits`` (answer cache
lookups by level and outcome, :mod:`bulwark.models.cache`). Each hook also records the
Prometheus series of :mod:`bulwark.observability.metrics`, which are always on.

No span or metric carries message text: attributes are ids (tenant, thread, request, run),
names (node, model, tool, rail), counts and verdict actions.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from bulwark.observability import metrics

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

TURN_SPAN = "bulwark.turn"
_LOW_64 = (1 << 64) - 1


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable names something that cannot be set up; one line saying which."""


class _RunIds(RandomIdGenerator):
    """Random ids, except the ids :func:`run_span_context` derives while a turn span starts."""

    def __init__(self) -> None:
        self.forced: contextvars.ContextVar[SpanContext | None] = contextvars.ContextVar("forced_ids", default=None)

    def generate_span_id(self) -> int:
        forced = self.forced.get()
        return forced.span_id if forced is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = self.forced.get()
        return forced.trace_id if forced is not None else super().generate_trace_id()


def run_span_context(run_id: str | uuid.UUID) -> SpanContext:
    """The span context of run ``run_id``'s ``bulwark.turn`` span: trace id the run id."""
    value = (run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))).int
    return SpanContext(trace_id=value, span_id=(value & _LOW_64) or 1, is_remote=False,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))


class Telemetry:
    """The process's tracer and OTel instruments; disabled (every hook a no-op) without
    span processors and metric readers.

    Args:
        span_processors: where finished spans go (a ``BatchSpanProcessor`` on an exporter).
        metric_readers: what collects the instruments (a ``PeriodicExportingMetricReader``).
        resource: the service's resource; ``Resource.create()`` (the ``OTEL_*`` variables).
    """

    def __init__(
        self,
        *,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        resource: Resource | None = None,
    ) -> None:
        resource = resource or Resource.create()
        self._ids = _RunIds()
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.tracing = bool(span_processors)
        self.tracer: trace.Tracer = trace.NoOpTracer()
        if span_processors:
            self.tracer_provider = TracerProvider(resource=resource, id_generator=self._ids)
            for processor in span_processors:
                self.tracer_provider.add_span_processor(processor)
            self.tracer = self.tracer_provider.get_tracer("bulwark")
        self.metering = bool(metric_readers)
        if metric_readers:
            self.meter_provider = MeterProvider(resource=resource, metric_readers=list(metric_readers))
            meter = self.meter_provider.get_meter("bulwark")
            self.llm_duration = meter.create_histogram("llm.request.duration", unit="ms", description="Model call latency.")
            self.tool_calls = meter.create_counter("tool.calls.total", description="Tool calls by tool and status.")
            self.decisions = meter.create_counter("agent.decisions", description="Agent decisions by type.")
            self.cache_hits = meter.create_counter("memory.cache.hits", description="Answer cache lookups by level and outcome.")

    @property
    def enabled(self) -> bool:
        """Whether anything is exported."""
        return self.tracing or self.metering

    def start_turn(self, run_id: uuid.UUID, attributes: Mapping[str, Any]) -> trace.Span:
        """Start run ``run_id``'s root span, with the ids :func:`run_span_context` gives it."""
        token = self._ids.forced.set(run_span_context(run_id))
        try:
            return self.tracer.start_span(TURN_SPAN, context=Context(), kind=SpanKind.INTERNAL, attributes=attributes)
        finally:
            self._ids.forced.reset(token)

    def shutdown(self) -> None:
        """Flush and stop the exporters."""
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                provider.shutdown()


def from_env(environ: Mapping[str, str] | None = None) -> Telemetry:
    """The :class:`Telemetry` the ``OTEL_*`` variables describe (see the module docstring).

    ``environ`` (default ``os.environ``) chooses the exporters; they read their own settings
    (endpoint, headers) from ``os.environ``, as the SDK does.

    Raises:
        TelemetryConfigError: an exporter name or protocol that is not installed.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry()
    spans = [BatchSpanProcessor(exporter()) for exporter in _exporters(env, "traces")]
    readers = [
        exporter() if isinstance(exporter, type) and issubclass(exporter, MetricReader)
        else PeriodicExportingMetricReader(exporter())
        for exporter in _exporters(env, "metrics")
    ]
    if not spans and not readers:
        return Telemetry()
    named = OTEL_SERVICE_NAME in env or "service.name" in env.get(OTEL_RESOURCE_ATTRIBUTES, "")
    resource = Resource.create({} if named else {"service.name": "bulwark"})
    return Telemetry(span_processors=spans, metric_readers=readers, resource=resource)


def _exporters(env: Mapping[str, str], signal: str) -> list[Any]:
    """The exporter classes ``OTEL_<SIGNAL>_EXPORTER`` names (off when unset without an endpoint)."""
    from importlib.metadata import entry_points

    variable = f"OTEL_{signal.upper()}_EXPORTER"
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    names = env.get(variable) or ("otlp" if any(env.get(e) for e in endpoints) else "none")
    found = []
    for name in (n.strip() for n in names.split(",")):
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                raise TelemetryConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is installed (port 4318)"
                )
            name = "otlp_proto_http"
        points = {e.name: e for e in entry_points(group=f"opentelemetry_{signal}_exporter")}
        if name not in points:
            raise TelemetryConfigError(f"{variable}={name}: use otlp, none or one of {', '.join(sorted(points))}")
        found.append(points[name].load())
    return found


_current: Telemetry | None = None


def telemetry() -> Telemetry:
    """The process's telemetry: the installed one, else built once from the environment."""
    global _current
    if _current is None:
        _current = from_env()
    return _current


def install(new: Telemetry | None) -> Telemetry | None:
    """Make ``new`` the process's telemetry (tests, embedding apps; ``None``: from the
    environment again); returns the previous one."""
    global _current
    previous, _current = _current, new
    return previous


# -- the root span -----------------------------------------------------------------------


class TurnSpans(BaseCallbackHandler):
    """Records ``bulwark.turn`` for each root run of the graph it is attached to, and maps
    child runs to their root for runs started without a run id."""

    run_inline = True  # called in the run's own task, in order, not on an executor
    ignore_llm = ignore_chat_model = ignore_retriever = ignore_agent = ignore_retry = ignore_custom_event = True

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._turns: dict[uuid.UUID, trace.Span] = {}
        self._roots: dict[uuid.UUID, uuid.UUID] = {}

    def root_of(self, run_id: uuid.UUID | None) -> uuid.UUID | None:
        """The root run of the (still running) run ``run_id``."""
        return None if run_id is None else self._roots.get(run_id)

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: uuid.UUID, parent_run_id: uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            self._roots[run_id] = run_id
            attributes = {"langgraph.run_id": str(run_id)}
            if thread_id := (metadata or {}).get("thread_id"):
                attributes["bulwark.thread_id"] = str(thread_id)
            self._turns[run_id] = self.telemetry.start_turn(run_id, attributes)
        elif (root := self._roots.get(parent_run_id)) is not None:
            self._roots[run_id] = root

    def on_chain_end(self, outputs: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._end(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    def _end(self, run_id: uuid.UUID, error: BaseException | None) -> None:
        self._roots.pop(run_id, None)
        span = self._turns.pop(run_id, None)
        if span is None:
            return
        if error is not None and not isinstance(error, GraphBubbleUp):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


_turn_spans: TurnSpans | None = None


def with_turn_spans(graph: Any) -> Any:
    """``graph`` (a compiled graph) with the ``bulwark.turn`` handler attached when tracing
    is on; ``graph`` itself otherwise."""
    global _turn_spans
    current = telemetry()
    if not current.tracing:
        return graph
    if _turn_spans is None or _turn_spans.telemetry is not current:
        _turn_spans = TurnSpans(current)
    return graph.with_config(callbacks=[_turn_spans])


# -- node spans --------------------------------------------------------------------------

_attributes: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("bulwark_span_attributes", default={})
"""The run's ids, set by the node span for the spans opened inside the node."""


def _run_ids() -> tuple[str | None, dict[str, str]]:
    """The run id (from LangGraph, else through the turn handler) and the ids every span of
    the node carries."""
    from langgraph.config import get_config
    from langgraph.runtime import get_runtime

    from bulwark.graphs.state import RunContext

    runtime = get_runtime(RunContext)
    info = runtime.execution_info
    run_id = None
    if info is not None and info.run_id:
        run_id = info.run_id
    elif _turn_spans is not None:
        manager = get_config().get("callbacks")
        root = _turn_spans.root_of(getattr(manager, "parent_run_id", None))
        run_id = str(root) if root is not None else None
    context = runtime.context
    ids = {"bulwark.tenant_id": context.tenant_id if context else "default"}
    if context is not None and context.request_id:
        ids["bulwark.request_id"] = context.request_id
    if info is not None and info.thread_id:
        ids["bulwark.thread_id"] = info.thread_id
    if run_id:
        ids["langgraph.run_id"] = run_id
    return run_id, ids


@contextmanager
def _opened(name: str, context: Context | None, attributes: Mapping[str, Any]) -> Iterator[trace.Span]:
    """A span made current; an exception is recorded and sets the error status, except an
    interrupt (an approval) or a hand-off, which LangGraph raises and which is no failure."""
    with telemetry().tracer.start_as_current_span(
        name, context=context, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as opened:
        try:
            yield opened
        except GraphBubbleUp:
            opened.set_attribute("bulwark.interrupted", True)
            raise
        except BaseException as exc:
            opened.record_exception(exc)
            opened.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


@contextmanager
def _node_span(name: str) -> Iterator[None]:
    run_id, ids = _run_ids()
    parent = trace.set_span_in_context(NonRecordingSpan(run_span_context(run_id))) if run_id else Context()
    token = _attributes.set(ids)
    try:
        with _opened(f"node {name}", parent, {**ids, "langgraph.node": name}):
            yield
    finally:
        _attributes.reset(token)


def annotate_span(**attributes: Any) -> None:
    """Set ``attributes`` (``None`` values left out) on the span now open, a node's when
    called from one; nothing when tracing is off."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({key: value for key, value in attributes.items() if value is not None})


def traced_node(name: str, func: F) -> F:
    """``func`` (a node's sync or async callable) run inside a ``node <name>`` span when
    tracing is on. The signature is kept, so LangGraph still passes ``config`` and the like."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def anode(*args: Any, **kwargs: Any) -> Any:
            if not telemetry().tracing:
                return await func(*args, **kwargs)
            with _node_span(name):
                return await func(*args, **kwargs)

        return anode  # type: ignore[return-value]

    @functools.wraps(func)
    def node(*args: Any, **kwargs: Any) -> Any:
        if not telemetry().tracing:
            return func(*args, **kwargs)
        with _node_span(name):
            return func(*args, **kwargs)

    return node  # type: ignore[return-value]


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span | None]:
    """A child span of the current one, with the run's ids; ``None`` when tracing is off.
    An exception (other than an interrupt) is recorded on it and sets its status to error."""
    if not telemetry().tracing:
        yield None
        return
    with _opened(name, None, {**_attributes.get(), **attributes}) as opened:
        yield opened


# -- hooks: spans, OTel metrics and the Prometheus series -------------------------------


@dataclass
class LlmCall:
    """What :func:`llm_call` learns of the call: set :attr:`usage` from the reply."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def usage(self, usage: Mapping[str, Any] | None, *, cost_usd: float) -> None:
        """The reply's ``usage_metadata`` and what the call cost."""
        self.input_tokens = int((usage or {}).get("input_tokens", 0))
        self.output_tokens = int((usage or {}).get("output_tokens", 0))
        self.cost_usd = cost_usd


@contextmanager
def llm_call(*, model: str, messages: int, tier: str, clock: Callable[[], float] = time.perf_counter) -> Iterator[LlmCall]:
    """One model call: the ``llm.call`` span, ``llm.request.duration`` and the ``llm_*`` series.

    Args:
        model: the model spec (``offline``, ``openai:gpt-4o-mini``).
        messages: how many messages the prompt holds.
        tier: the run's rate-limit tier, for ``llm_cost_usd_total``.
        clock: monotonic seconds.
    """
    call = LlmCall()
    started = clock()
    ok = False
    try:
        with span("llm.call", **{"llm.model": model, "llm.messages.count": messages}) as opened:
            yield call
            ok = True
            if opened is not None:
                opened.set_attributes({"llm.tokens.input": call.input_tokens, "llm.tokens.output": call.output_tokens,
                                        "llm.cost_usd": call.cost_usd})
                opened.set_status(Status(StatusCode.OK))
    finally:
        elapsed = clock() - started
        metrics.record_llm_call(model=model, tier=tier, ok=ok, duration_s=elapsed,
                                input_tokens=call.input_tokens, output_tokens=call.output_tokens, cost_usd=call.cost_usd)
        current = telemetry()
        if current.metering:
            current.llm_duration.record(elapsed * 1000, {"llm.model": model, "status": "ok" if ok else "error"})


def tool_called(tool_name: str, status: str, breaker: str | None) -> None:
    """A tool call's outcome: ``tool.calls.total``, the ``tool_calls_*`` series and the
    breaker gauge."""
    metrics.record_tool_call(tool_name, status, breaker)
    current = telemetry()
    if current.metering:
        current.tool_calls.add(1, {"tool.name": tool_name, "status": status})


def decided(decision_type: str) -> None:
    """An agent decision: ``agent.decisions`` and ``agent_decisions_total``."""
    metrics.AGENT_DECISIONS.labels(decision_type).inc()
    current = telemetry()
    if current.metering:
        current.decisions.add(1, {"decision.type": decision_type})


def cache_lookup(level: str, outcome: str) -> None:
    """One answer-cache level consulted (``l1``, ``l2``, ``semantic``) and its outcome
    (``hit``, ``miss``, ``error``): ``memory.cache.hits`` and ``memory_cache_hits_total``."""
    metrics.MEMORY_CACHE_HITS.labels(level, outcome).inc()
    current = telemetry()
    if current.metering:
        current.cache_hits.add(1, {"level": level, "outcome": outcome})


_RAIL_ACTIONS = {"sanitize": "redact"}


def rail_verdict(rail: str, verdict: Mapping[str, Any], opened: trace.Span | None) -> None:
    """A rail's verdict: ``guardrail_verdicts_total`` (action ``allow``, ``flag``, ``redact``,
    ``block``, or ``error`` for a rail that failed), and on its ``rail.check`` span."""
    failed = any(reason.startswith("rail_error") for reason in verdict.get("reasons", ()))
    action = "error" if failed else _RAIL_ACTIONS.get(verdict["action"], verdict["action"])
    metrics.GUARDRAIL_VERDICTS.labels(rail, action).inc()
    if opened is not None:
        opened.set_attribute("rail.action", action)
