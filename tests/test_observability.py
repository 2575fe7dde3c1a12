"""Observability end to end: one turn of the real graph exported over OTLP/HTTP to a real
receiver and read back from its API, and one request through ``bulwark serve`` seen in all
four places an operator looks (LangSmith, the OTLP receiver, ``/metrics``, the JSON log),
under one request id and with no raw PII in any of them.

The receiver is Arize Phoenix (``make phoenix-install`` builds ``.venv-phoenix``; ``make test``
does it first): it takes OTLP over HTTP/protobuf at ``/v1/traces``, stores the spans, and
serves them back through its REST API, so this checks what an operator's collector gets.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import httpx
import pytest
from agent_server import REPO, free_port, running
from langsmith_server import LangSmithServer

from bulwark.graphs.agent import open_agent
from bulwark.graphs.state import RunContext
from bulwark.observability import telemetry
from bulwark.settings import load_settings

PHOENIX = REPO / ".venv-phoenix" / "bin" / "phoenix"


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PHOENIX.exists():
        pytest.skip(f"no OTLP receiver: {PHOENIX} is missing (make phoenix-install)")
    work = tmp_path_factory.mktemp("phoenix")
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PHOENIX_WORKING_DIR": str(work), "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_HOST": "127.0.0.1", "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = (work / "phoenix.log").open("w")
    process = subprocess.Popen([str(PHOENIX), "serve"], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"phoenix exited with {process.returncode}:\n{(work / 'phoenix.log').read_text()[-3000:]}")
            try:
                _get(f"{url}/v1/projects")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("phoenix did not start within 120 s")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def test_a_turn_reaches_the_receiver_as_one_trace(phoenix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix)  # the exporter reads it from the environment
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    exporting = telemetry.from_env()
    previous = telemetry.install(exporting)
    run_id = uuid.uuid4()
    try:
        settings = load_settings(data_dir=tmp_path / "data", guardrails_engine="direct")
        async with open_agent(settings) as agent:
            await agent.ainvoke(
                {"messages": [{"role": "user", "content": "what is 17*23"}]},
                {"configurable": {"thread_id": "otlp"}, "run_id": run_id},
                context=RunContext(user_id="ada", tenant_id="acme"),
            )
    finally:
        exporting.shutdown()  # flushes the batch
        telemetry.install(previous)

    deadline = time.monotonic() + 30
    while True:  # the receiver writes what it got asynchronously
        spans = [s for s in _get(f"{phoenix}/v1/projects/default/spans?limit=1000")["data"]
                 if s["context"]["trace_id"] == f"{run_id.int:032x}"]
        if any(s["name"] == "bulwark.turn" for s in spans) and len(spans) >= 10 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_id = {s["context"]["span_id"]: s for s in spans}
    (turn,) = [s for s in spans if s["name"] == "bulwark.turn"]
    assert turn["parent_id"] is None
    nodes = [s for s in spans if s["name"].startswith("node ")]
    assert {"node guard_input", "node agent", "node tools", "node audit"} <= {s["name"] for s in nodes}
    assert all(s["parent_id"] == turn["context"]["span_id"] for s in nodes)
    calls = [s for s in spans if s["name"] == "llm.call"]
    assert len(calls) == 2 and all(by_id[s["parent_id"]]["name"] == "node agent" for s in calls)
    assert all(s["attributes"]["llm.model"] == "offline" and s["attributes"]["bulwark.tenant_id"] == "acme" for s in calls)
    (tool,) = [s for s in spans if s["name"] == "tool.call"]
    assert tool["attributes"]["tool.name"] == "calculator" and by_id[tool["parent_id"]]["name"] == "node tools"
    assert "17*23" not in json.dumps(spans), "no user text leaves in a span"


EMAIL, PHONE, KEY = "grace.hopper@example.com", "+1 415 555 0188", "sk-live" + "a1B2c3D4e5F6g7H8i9J0"
REQUEST_ID = "req-e2e-1"


def _wait_for(what: str, found: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := found()):
        assert time.monotonic() < deadline, f"{what} did not arrive"
        time.sleep(0.3)
    return result


def test_one_served_request_is_traced_measured_and_logged_under_one_request_id(phoenix: str, tmp_path: Path) -> None:
    with LangSmithServer() as ls, running(
        "bulwark serve", tmp_path,
        LANGSMITH_TRACING="true", LANGCHAIN_TRACING_V2="true", LANGSMITH_ENDPOINT=ls.url,
        LANGSMITH_API_KEY="lsv2_pt_test", LANGSMITH_PROJECT="e2e",
        OTEL_EXPORTER_OTLP_ENDPOINT=phoenix, OTEL_METRICS_EXPORTER="none", OTEL_BSP_SCHEDULE_DELAY="200",
        BULWARK_LOG_FORMAT="json", BULWARK_APPROVAL_TOOLS="[]",
    ) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        text = f"what is 17*23? my key is {KEY}, write to {EMAIL} or call {PHONE}"
        run = client.post(
            f"/threads/{thread}/runs", headers={"x-request-id": REQUEST_ID},
            json={"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": text}]}},
        ).json()
        client.get(f"/threads/{thread}/runs/{run['run_id']}/join").raise_for_status()
        scraped = client.get("/metrics").text
        trace_id = f"{uuid.UUID(run['run_id']).int:032x}"
        spans = _wait_for("the turn's spans", lambda: [
            s for s in _get(f"{phoenix}/v1/projects/default/spans?limit=1000")["data"]
            if s["context"]["trace_id"] == trace_id and s["name"] == "bulwark.turn"
        ] and [s for s in _get(f"{phoenix}/v1/projects/default/spans?limit=1000")["data"]
               if s["context"]["trace_id"] == trace_id])
        _wait_for("the turn's LangSmith runs", lambda: any(
            r["name"] == "audit" and r.get("end_time") for r in ls.runs.values()))
    # The server has stopped: its LangSmith client and span processor have flushed.
    # LangSmith: one run tree, its root tagged with the request id.
    (root,) = [r for r in ls.runs.values() if r["parent_run_id"] is None and r["id"] == run["run_id"]]
    assert (root.get("extra") or {}).get("metadata", {}).get("request_id") == REQUEST_ID
    assert {r["name"] for r in ls.runs.values() if r.get("trace_id") == root["id"]} >= {"guard_input", "agent", "audit"}
    # OTLP: the trace id is the run id, every span carries the request id.
    assert {s["name"] for s in spans} >= {"bulwark.turn", "node agent", "llm.call", "tool.call"}
    assert {s["attributes"].get("bulwark.request_id") for s in spans if s["name"].startswith("node ")} == {REQUEST_ID}
    # Prometheus: the turn's series.
    assert 'llm_requests_total{model="offline",status="ok"}' in scraped
    assert "tool_calls_total{" in scraped and "guardrail_verdicts_total{" in scraped
    # Logs: JSON lines of the run carry the same request id (and the run id).
    lines = server.log.read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    of_run = [e for e in events if e.get("run_id") == run["run_id"]]
    assert of_run and {e["request_id"] for e in of_run} == {REQUEST_ID}
    assert {e.get("trace_id") for e in of_run if e["logger"].startswith("bulwark.nodes")} == {trace_id}
    # The audit record: the same request id.
    (record,) = [json.loads(line) for line in (server.data_dir / "audit.jsonl").read_text().splitlines()
                 if json.loads(line).get("run_id") == run["run_id"]]
    assert record["request_id"] == REQUEST_ID
    # No raw PII or key anywhere it went.
    stored = {
        "LangSmith": ls.received(), "OTLP receiver": json.dumps(spans), "/metrics": scraped,
        "log": server.log.read_text(), "audit": (server.data_dir / "audit.jsonl").read_text(),
    }
    for where, content in stored.items():
        for secret in (EMAIL, "555 0188", KEY):
            assert secret not in content, f"{secret!r} reached the {where}"
