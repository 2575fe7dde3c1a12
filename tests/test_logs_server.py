"""Structured logs through the real ``bulwark serve``: the LangGraph server's lines and
Bulwark's come out as one JSON object a line, with the run's ids and no raw PII."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from agent_server import running

EMAIL, PHONE = "grace.hopper@example.com", "+1 415 555 0188"
REQUEST_ID = "req-logs-1"


def test_served_run_logs_json_lines_with_its_ids_and_no_pii(tmp_path: Path) -> None:
    # No approval: send_email (which the offline model picks for a request with an
    # address) writes to the local outbox, so the turn ends with the audit node.
    with running("bulwark serve", tmp_path, BULWARK_APPROVAL_TOOLS="[]") as server, httpx.Client(
        base_url=server.url, timeout=60
    ) as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        run = client.post(
            f"/threads/{thread}/runs",
            headers={"x-request-id": REQUEST_ID},
            json={"assistant_id": "agent", "input": {"messages": [
                {"role": "user", "content": f"what is 17*23? write to {EMAIL} or call {PHONE}"}
            ]}},
        ).json()
        client.get(f"/threads/{thread}/runs/{run['run_id']}/join").raise_for_status()
    text = server.log.read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))  # after the CLI's own prints
    events = [json.loads(line) for line in lines[first:]]
    of_run = [e for e in events if e.get("run_id") == run["run_id"]]
    assert {e["logger"] for e in of_run} >= {"langgraph_api.worker", "bulwark.nodes.guard_input", "bulwark.nodes.audit"}
    for event in of_run:
        assert (event["request_id"], event["thread_id"]) == (REQUEST_ID, thread)
    ours = {e["event"]: e for e in of_run if e["logger"].startswith("bulwark.") and e["node"] != "guard_output"}
    assert ours["turn_ended"]["node"] == "audit" and ours["turn_ended"]["tenant"] == "default"
    assert ours["rail_verdict"]["reasons"] == ["pii:EMAIL", "pii:PHONE_NUMBER"]
    assert EMAIL not in text and "555 0188" not in text
