"""Structured logs (observability/log_format.py): the format, the ids, the levels, and
Bulwark's own events, captured as rendered, in-process."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from langchain_core.messages import ToolCall
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.trace import TracerProvider

from bulwark.cli.main import main
from bulwark.graphs.agent import build_agent
from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import RailPolicy
from bulwark.observability.log_format import CONTEXT_FIELDS, configure_logging, install_log_format
from bulwark.settings import ConfigError, load_settings
from bulwark.tools.policy import ToolPolicy
from bulwark.tools.registry import ToolRegistry

EMAIL, PHONE = "ada.lovelace@example.com", "+1 415 555 0123"
FIELDS = ("timestamp", "level", "logger", "event", *CONTEXT_FIELDS)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Every test ends with the root logger and record factory it found."""
    root = logging.getLogger()
    handlers, level, factory = root.handlers[:], root.level, logging.getLogRecordFactory()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    structlog.contextvars.clear_contextvars()


def lines(out: io.StringIO) -> list[dict]:
    """Every rendered line, parsed: each must be one JSON object with every field."""
    parsed = [json.loads(line) for line in out.getvalue().splitlines()]
    for event in parsed:
        assert list(event)[: len(FIELDS)] == list(FIELDS)
    return parsed


def json_logs(level: str = "DEBUG") -> io.StringIO:
    out = io.StringIO()
    configure_logging(load_settings(log_level=level, log_format="json"), policy=RailPolicy(), stream=out)
    return out


def test_a_run_logs_its_ids_from_inside_the_nodes(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, guardrails_engine="direct", approval_tools=[])
    out = json_logs("INFO")
    agent = build_agent(settings, checkpointer=InMemorySaver())
    agent.invoke(
        {"messages": [{"role": "user", "content": f"what is 17*23? I am {EMAIL}, call {PHONE}"}]},
        {"configurable": {"thread_id": "t-logs", "run_id": "run-7"}},
        context=RunContext(user_id="ada", tenant_id="acme", request_id="req-1"),
    )
    events = {(event["event"], event["node"]): event for event in lines(out)}
    for key in (("turn_started", "guard_input"), ("rail_verdict", "guard_input"), ("turn_ended", "audit")):
        ids = {"request_id": "req-1", "thread_id": "t-logs", "run_id": "run-7", "tenant": "acme"}
        assert events[key] | ids == events[key]
    assert events["rail_verdict", "guard_input"]["reasons"] == ["pii:EMAIL", "pii:PHONE_NUMBER"]
    events = {name: event for (name, _), event in events.items()}
    assert events["turn_ended"]["input_action"] == "sanitize" and events["turn_ended"]["model_calls"] >= 1
    assert EMAIL not in out.getvalue() and "555 0123" not in out.getvalue()


def test_unknown_ids_are_null_and_the_call_s_own_win() -> None:
    out = json_logs()
    log = logging.getLogger("bulwark.test.logs")
    log.info("outside")
    with structlog.contextvars.bound_contextvars(tenant="acme", request_id="bound"):
        log.warning("inside", extra={"request_id": "explicit", "tool": "calculator"})
    outside, inside = lines(out)
    assert all(outside[key] is None for key in CONTEXT_FIELDS)
    assert (inside["request_id"], inside["tenant"]) == ("explicit", "acme")
    assert (inside["tool"], inside["level"]) == ("calculator", "warning")


def test_the_server_s_context_fills_the_ids() -> None:
    """langgraph-api's logging context (set by its request-id middleware and run workers)."""
    import contextvars

    from langgraph_api.logging import set_logging_context

    out = json_logs()

    def in_a_worker() -> None:
        set_logging_context({"request_id": "hdr-1", "run_id": "run-1", "thread_id": "thr-1"})
        logging.getLogger("bulwark.test.logs").info("run line")

    contextvars.copy_context().run(in_a_worker)
    (event,) = lines(out)
    assert (event["request_id"], event["run_id"], event["thread_id"]) == ("hdr-1", "run-1", "thr-1")


def test_ids_a_client_chose_are_redacted() -> None:
    out = json_logs()
    with structlog.contextvars.bound_contextvars(request_id=EMAIL):
        logging.getLogger("bulwark.test.logs").info("hello")
    (event,) = lines(out)
    assert event["request_id"] == "<EMAIL>"


def test_the_current_span_gives_trace_and_span_ids() -> None:
    out = json_logs()
    tracer = TracerProvider().get_tracer("test")  # local provider: nothing is exported
    with tracer.start_as_current_span("turn") as span:
        logging.getLogger("bulwark.test.logs").info("traced")
    (event,) = lines(out)
    context = span.get_span_context()
    assert event["trace_id"] == f"{context.trace_id:032x}" and event["span_id"] == f"{context.span_id:016x}"


def test_exceptions_are_rendered_redacted() -> None:
    out = json_logs()
    try:
        raise ConnectionError(f"refused for {EMAIL}")
    except ConnectionError:
        logging.getLogger("bulwark.test.logs").exception("call %s failed", PHONE)
    (event,) = lines(out)
    assert event["event"] == "call <PHONE_NUMBER> failed"
    assert "ConnectionError: refused for <EMAIL>" in event["exception"] and EMAIL not in out.getvalue()


def test_level_filtering() -> None:
    out = json_logs("WARNING")
    log = logging.getLogger("bulwark.test.logs")
    log.info("hidden")
    log.warning("shown")
    log.debug("hidden too")
    assert [event["event"] for event in lines(out)] == ["shown"]


def test_console_format_on_a_terminal() -> None:
    master, slave = os.openpty()
    with open(slave, "w", encoding="utf-8") as terminal:
        install_log_format(level="INFO", fmt=None, stream=terminal)
        with structlog.contextvars.bound_contextvars(tenant="acme"):
            logging.getLogger("bulwark.test.logs").info("turn_started", extra={"messages": 2})
        terminal.flush()
        line = ANSI.sub("", os.read(master, 4096).decode())
    os.close(master)
    assert not line.lstrip().startswith("{")
    assert "turn_started" in line and "tenant=acme" in line and "messages=2" in line
    assert "request_id" not in line  # unknown ids are left out of the readable form


@pytest.mark.parametrize(("fmt", "is_json"), [("console", False), ("json", True), (None, True)])
def test_format_setting_wins_over_the_stream(fmt: str | None, is_json: bool) -> None:
    out = io.StringIO()  # not a terminal
    install_log_format(level="INFO", fmt=fmt, stream=out)  # type: ignore[arg-type]
    logging.getLogger("bulwark.test.logs").info("hello")
    assert out.getvalue().startswith("{") is is_json


def test_a_second_install_replaces_the_first() -> None:
    first, second = io.StringIO(), io.StringIO()
    install_log_format(level="INFO", fmt="json", stream=first)
    install_log_format(level="INFO", fmt="json", stream=second)
    logging.getLogger("bulwark.test.logs").info("once")
    assert first.getvalue() == "" and len(lines(second)) == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BULWARK_LOG_LEVEL": "loud"},
            "BULWARK_LOG_LEVEL: unknown log level 'loud': use DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        ({"BULWARK_LOG_FORMAT": "xml"}, "BULWARK_LOG_FORMAT: Input should be 'json' or 'console'"),
    ],
)
def test_invalid_settings_are_one_line_errors(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings()
    assert main(["graph"]) == 2
    assert capsys.readouterr().err == f"bulwark: error: {message}\n"


def test_level_names_are_case_insensitive() -> None:
    assert load_settings(log_level="debug").log_level == "DEBUG"


def test_the_cli_logs_on_stderr_never_among_the_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in {"BULWARK_DATA_DIR": str(tmp_path / "data"), "BULWARK_GUARDRAILS_ENGINE": "direct",
                       "BULWARK_LOG_LEVEL": "INFO"}.items():
        monkeypatch.setenv(key, value)
    assert main(["ask", f"what is 17*23? I am {PHONE}", "--thread", "cli-logs", "--tenant", "acme"]) == 0
    out, err = capsys.readouterr()
    assert "391" in out and "{" not in out
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    ended = next(event for event in logged if event["event"] == "turn_ended")
    assert (ended["thread_id"], ended["tenant"], ended["node"]) == ("cli-logs", "acme", "audit")
    assert "555 0123" not in err


async def test_tool_failures_and_an_opened_breaker_are_logged() -> None:
    out = json_logs("INFO")
    registry = ToolRegistry()

    def lookup_order(order_id: str) -> str:
        """Look up an order."""
        raise ConnectionError(f"backend down while looking up {order_id} for {EMAIL}")

    registry.register(lookup_order, policy=ToolPolicy(retries=0, failure_threshold=2))
    call = ToolCall(name="lookup_order", args={"order_id": "A-1"}, id="c1", type="tool_call")
    for _ in range(3):  # two failures open the breaker; the third call is refused
        await registry.arun(call)
    events = [(e["event"], e.get("tool"), e.get("error"), e["level"]) for e in lines(out)]
    assert events == [
        ("tool_failed", "lookup_order", "ConnectionError", "warning"),
        ("tool_failed", "lookup_order", "ConnectionError", "warning"),
        ("breaker_opened", "lookup_order", None, "warning"),
    ]
    assert "backend down" not in out.getvalue()
