"""OpenTelemetry spans and metrics of real turns, on the SDK's in-memory exporter and reader."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from scripted_model import RuleModel

from bulwark.graphs.agent import build_agent, open_agent
from bulwark.graphs.state import RunContext
from bulwark.observability import metrics, telemetry
from bulwark.observability.telemetry import Telemetry, TelemetryConfigError, from_env
from bulwark.settings import Settings, load_settings

REQUEST = "what is 17*23"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", guardrails_engine="direct")


@pytest.fixture
def exported() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    previous = telemetry.install(Telemetry(span_processors=[SimpleSpanProcessor(spans)], metric_readers=[reader]))
    yield spans, reader
    telemetry.install(previous)


def _by_id(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans}


def _parent(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return spans.get(span.parent.span_id) if span.parent is not None else None


def _metric_points(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_one_turn_with_a_tool_is_one_trace_under_the_turn_span(settings: Settings, exported) -> None:
    spans_out, reader = exported
    run_id = uuid.uuid4()
    async with open_agent(settings) as agent:
        await agent.ainvoke(
            {"messages": [{"role": "user", "content": REQUEST}]},
            {"configurable": {"thread_id": "t1"}, "run_id": run_id},
            context=RunContext(user_id="ada", tenant_id="acme", request_id="req-1"),
        )
    spans = spans_out.get_finished_spans()
    assert {span.context.trace_id for span in spans} == {run_id.int}, "one trace, and its id is the run id"
    by_id = _by_id(spans)
    (turn,) = [s for s in spans if s.name == "bulwark.turn"]
    assert turn.parent is None and turn.attributes["langgraph.run_id"] == str(run_id)

    nodes = [s for s in spans if s.name.startswith("node ")]
    assert {s.name for s in nodes} >= {
        "node guard_input", "node recall", "node route", "node agent", "node tools", "node guard_output", "node audit",
    }
    assert all(_parent(s, by_id) is turn for s in nodes), "every node span hangs off the turn"
    (route,) = [s for s in nodes if s.name == "node route"]
    assert (route.attributes["route.model"], route.attributes["route.outcome"]) == ("offline", "routed")
    assert "cheapest" in route.attributes["route.reason"] and "route.budget_left_usd" not in route.attributes
    for s in nodes:
        assert (s.attributes["bulwark.tenant_id"], s.attributes["bulwark.thread_id"], s.attributes["bulwark.request_id"]) == ("acme", "t1", "req-1")

    calls = [s for s in spans if s.name == "llm.call"]
    assert len(calls) == 2 and all(_parent(s, by_id).name == "node agent" for s in calls)
    for call in calls:
        assert call.attributes["llm.model"] == "offline"
        assert call.attributes["llm.messages.count"] >= 2
        assert call.attributes["llm.tokens.input"] > 0 and call.attributes["llm.tokens.output"] > 0
        assert call.status.status_code is StatusCode.OK
        assert call.attributes["bulwark.tenant_id"] == "acme"
    (tool,) = [s for s in spans if s.name == "tool.call"]
    assert _parent(tool, by_id).name == "node tools"
    assert (tool.attributes["tool.name"], tool.attributes["tool.status"]) == ("calculator", "success")
    (recall,) = [s for s in spans if s.name == "memory.recall"]
    assert _parent(recall, by_id).name == "node recall"
    rails = {(_parent(s, by_id).name, s.attributes["rail.name"], s.attributes["rail.action"]) for s in spans if s.name == "rail.check"}
    assert {("node guard_input", "input", "allow"), ("node guard_output", "output", "allow"), ("tool.call", "context", "allow")} <= rails

    for s in spans:
        assert not any(isinstance(v, str) and "17*23" in v for v in s.attributes.values()), f"user text on {s.name}"

    points = _metric_points(reader)
    assert {p.attributes["llm.model"] for p in points["llm.request.duration"]} == {"offline"}
    assert sum(p.count for p in points["llm.request.duration"]) == 2
    assert [(p.attributes, p.value) for p in points["tool.calls.total"]] == [({"tool.name": "calculator", "status": "success"}, 1)]
    decisions = {p.attributes["decision.type"]: p.value for p in points["agent.decisions"]}
    assert decisions == {"route_routed": 1, "tool_call": 1, "answer": 1}


async def test_a_run_without_a_run_id_still_shares_one_trace(settings: Settings, exported) -> None:
    spans_out, _ = exported
    async with open_agent(settings) as agent:
        await agent.ainvoke({"messages": [{"role": "user", "content": "hello"}]}, {"configurable": {"thread_id": "t2"}})
    spans = spans_out.get_finished_spans()
    (turn,) = [s for s in spans if s.name == "bulwark.turn"]
    assert {s.context.trace_id for s in spans} == {turn.context.trace_id}
    assert uuid.UUID(turn.attributes["langgraph.run_id"]).int == turn.context.trace_id
    assert all(s.parent.span_id == turn.context.span_id for s in spans if s.name.startswith("node "))


class ModelDown(RuntimeError):
    pass


def _fail(messages: list[BaseMessage]) -> AIMessage:
    raise ModelDown("the model is down")


async def test_a_failing_model_call_records_the_error(settings: Settings, exported) -> None:
    spans_out, reader = exported
    errors = metrics.LLM_REQUESTS.labels("offline", "error")
    before = errors._value.get()
    agent = build_agent(settings, models={"offline": RuleModel(reply=_fail)})
    with pytest.raises(ModelDown):
        await agent.ainvoke({"messages": [{"role": "user", "content": "hello"}]}, {"run_id": uuid.uuid4()})
    spans = spans_out.get_finished_spans()
    (call,) = [s for s in spans if s.name == "llm.call"]
    assert call.status.status_code is StatusCode.ERROR
    (event,) = [e for e in call.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith("ModelDown")
    (node,) = [s for s in spans if s.name == "node agent"]
    (turn,) = [s for s in spans if s.name == "bulwark.turn"]
    assert node.status.status_code is StatusCode.ERROR and turn.status.status_code is StatusCode.ERROR
    assert errors._value.get() == before + 1
    (point,) = _metric_points(reader)["llm.request.duration"]
    assert point.attributes == {"llm.model": "offline", "status": "error"}


def test_telemetry_is_off_unless_the_environment_asks() -> None:
    assert not from_env({}).enabled
    assert not from_env({"OTEL_SERVICE_NAME": "x"}).enabled
    assert not from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}).enabled
    on = from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_METRICS_EXPORTER": "none"})
    try:
        assert on.tracing and not on.metering
        assert on.tracer_provider.resource.attributes["service.name"] == "bulwark"
    finally:
        on.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin: use otlp, none or one of"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "only http/protobuf"),
    ],
)
def test_a_bad_exporter_is_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(TelemetryConfigError, match=message) as caught:
        from_env(env)
    assert "\n" not in str(caught.value)
