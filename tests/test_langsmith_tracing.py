"""LangSmith tracing against a local server speaking LangSmith's protocol (tests/langsmith_server.py).

A turn is one run tree (graph → nodes → model, tool, rail and recall runs), its runs carry
the tenant, the hashed user, the request, the route and the model, and no raw PII or secret
sent in the request reaches the server; with tracing off nothing is sent at all. One test
runs the real ``bulwark serve``; the others trace the graph in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import langsmith
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_sdk import get_client
from langsmith_server import LangSmithServer

from agent_server import running
from bulwark.graphs.agent import build_agent
from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import RailPolicy
from bulwark.memory.store import open_memory_store
from bulwark.observability import langsmith as tracing
from bulwark.persistence.audit import sha256
from bulwark.settings import ConfigError, Settings, load_settings

EMAIL, PHONE, KEY = "ada.lovelace@example.com", "+1 415 555 0100", "sk-live0123456789abcdefghijkl"
QUESTION = f"calculate 17*23 for {EMAIL} ({PHONE}, {KEY})"
NODES = {"guard_input", "recall", "route", "agent", "tools", "guard_output", "remember", "audit"}


@pytest.fixture(scope="module")
def server() -> Iterator[LangSmithServer]:
    with LangSmithServer() as running_server:
        yield running_server


@pytest.fixture
def ls(server: LangSmithServer) -> LangSmithServer:
    server.clear()
    return server


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=tmp_path / "data", memory_url="memory://", guardrails_engine="direct", **overrides)


def _turn(settings: Settings, question: str, context: RunContext) -> dict:
    with open_memory_store(settings) as store:
        agent = build_agent(settings, checkpointer=InMemorySaver(), store=store)
        config = {"configurable": {"thread_id": "t1"}, "metadata": tracing.trace_metadata(context)}
        return asyncio.run(agent.ainvoke({"messages": [{"role": "user", "content": question}]}, config, context=context))


def _traced_turn(settings: Settings, ls: LangSmithServer, question: str = QUESTION) -> dict:
    """One turn traced to ``ls`` with the client Bulwark installs, set for this turn only."""
    client = tracing.tracing_client(settings, api_url=ls.url, api_key="test-key")
    context = RunContext(user_id="ada", tenant_id="acme", request_id="req-1")
    with langsmith.tracing_context(enabled=True, client=client, project_name="bulwark-test"):
        result = _turn(settings, question, context)
    client.flush()
    return result


def _root(ls: LangSmithServer, name: str = "bulwark-agent") -> dict[str, Any]:
    roots = [run for run in ls.runs.values() if run["parent_run_id"] is None and run["name"] == name]
    assert len(roots) == 1, [run["name"] for run in ls.runs.values() if run["parent_run_id"] is None]
    return roots[0]


def _descendants(ls: LangSmithServer, run_id: str) -> list[dict[str, Any]]:
    found = []
    for child in ls.children(run_id):
        found += [child, *_descendants(ls, child["id"])]
    return found


def _metadata(run: dict[str, Any]) -> dict[str, Any]:
    return (run.get("extra") or {}).get("metadata") or {}


def _assert_turn_tree(ls: LangSmithServer, *, screened_at_intake: bool = False) -> dict[str, Any]:
    """One root graph run whose tree holds every node, the model, tool, rail and recall
    runs under the right nodes, all of one trace; returns the root. Input the server
    screened at intake is not screened again by ``guard_input``."""
    root = _root(ls)
    tree = _descendants(ls, root["id"])
    assert all(run["trace_id"] == root["id"] for run in tree)
    assert all(run["parent_run_id"] in ls.runs for run in tree)
    nodes = {run["name"]: run for run in ls.children(root["id"])}
    assert NODES <= set(nodes)

    def under(node: str) -> list[tuple[str, str]]:
        return [(run["name"], run["run_type"]) for run in _descendants(ls, nodes[node]["id"])]

    assert (("rail:input", "chain") in under("guard_input")) is not screened_at_intake
    assert ("memory_recall", "chain") in under("recall")
    models = [run for run in _descendants(ls, nodes["agent"]["id"]) if run["run_type"] == "llm"]
    (guarded,) = [run for run in models if run["name"] == "GuardedChatModel"]
    assert [run["parent_run_id"] for run in models if run is not guarded] == [guarded["id"]] * (len(models) - 1) != []
    tool_call = next(run for run in _descendants(ls, nodes["tools"]["id"]) if run["name"] == "tool_call")
    assert [(run["name"], run["run_type"]) for run in ls.children(tool_call["id"])] == [("calculator", "tool")]
    assert tool_call["outputs"]["status"] == "success" and tool_call["outputs"]["artifact"]["attempts"] == 1
    assert ("rail:context", "chain") in under("tools")
    assert ("rail:output", "chain") in under("guard_output")
    assert all(run["end_time"] for run in [root, *tree])
    return root


def _assert_no_raw_pii(ls: LangSmithServer) -> None:
    received = ls.received()
    assert received  # something arrived, so the absence below means something
    for raw in (EMAIL, PHONE, KEY, "555 0100", "0123456789abcdefghijkl"):
        assert raw not in received


def test_a_turn_is_one_run_tree_with_metadata_and_no_raw_pii(tmp_path: Path, ls: LangSmithServer) -> None:
    result = _traced_turn(_settings(tmp_path), ls)
    assert "391" in result["messages"][-1].text
    root = _assert_turn_tree(ls)
    assert root["session_name"] == "bulwark-test"
    tree = [root, *_descendants(ls, root["id"])]
    for run in tree:  # every run inherits who asked: the user only as the audit log's hash
        assert _metadata(run)["tenant_id"] == "acme" and _metadata(run)["request_id"] == "req-1"
        assert _metadata(run)["user_id"] == f"sha256:{sha256('ada')}"
    route = next(run for run in tree if run["name"] == "route" and "route" in _metadata(run))
    assert _metadata(route)["route"] == "offline" and 0 <= _metadata(route)["complexity"] <= 1
    assert any(_metadata(run).get("model") == "offline" for run in tree if run["name"] == "agent")
    rail = next(run for run in tree if run["name"] == "rail:input")
    assert rail["outputs"]["verdict"]["action"] == "sanitize"
    assert "<EMAIL_1>" in rail["inputs"]["text"]  # the vault's placeholder: the rail never saw the value
    _assert_no_raw_pii(ls)
    assert not ls.unknown


def test_anonymizer_redacts_pii_and_secrets_and_hashes_user_ids() -> None:
    anonymize = tracing.anonymizer(RailPolicy())
    data = {
        "user_id": "ada@example.com",
        "owner": "ada",
        "tenant_id": "acme",
        "messages": [{"content": f"mail {EMAIL} or call {PHONE}", "user_id": "nested stays text"}],
        "error": "401: key lsv2_pt_0123456789abcdef0123456789abcdef_0a1b2c3d rejected",
        "note": KEY,
    }
    out = anonymize(data)
    assert out["user_id"] == f"sha256:{sha256('ada@example.com')}" and out["owner"] == f"sha256:{sha256('ada')}"
    assert anonymize({"user_id": out["user_id"]})["user_id"] == out["user_id"]  # never hashed twice
    assert out["tenant_id"] == "acme"
    assert out["messages"][0]["content"] == "mail <EMAIL> or call <PHONE_NUMBER>"
    assert out["messages"][0]["user_id"] == "nested stays text"
    assert "lsv2_pt" not in out["error"] and KEY not in out["note"]


def test_sampling_rate_zero_sends_no_run(tmp_path: Path, ls: LangSmithServer) -> None:
    _traced_turn(_settings(tmp_path, trace_sample_rate=0.0), ls)
    assert ls.runs == {} and ("POST", "/runs/multipart") not in ls.requests


def test_sample_rate_is_validated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^BULWARK_TRACE_SAMPLE_RATE: .*less than or equal to 1$"):
        load_settings(trace_sample_rate=1.5)
    for bad in ("2", "often"):
        monkeypatch.setenv("LANGSMITH_TRACING_SAMPLING_RATE", bad)
        with pytest.raises(ConfigError, match=f"^LANGSMITH_TRACING_SAMPLING_RATE must be a number from 0 to 1, got '{bad}'$"):
            tracing.tracing_client(_settings(tmp_path), api_url="http://127.0.0.1:9", api_key="k")
    monkeypatch.setenv("LANGSMITH_TRACING_SAMPLING_RATE", "0.25")
    assert tracing.tracing_client(_settings(tmp_path), api_url="http://127.0.0.1:9", api_key="k").tracing_sample_rate == 0.25


def test_install_tracing_installs_one_anonymizing_client_when_tracing_is_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ls: LangSmithServer
) -> None:
    monkeypatch.setattr(tracing, "_installed", None)
    monkeypatch.delenv("LANGCHAIN_TRACING_V2")  # conftest's "false" would win over LANGSMITH_TRACING
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", ls.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    monkeypatch.setenv("LANGSMITH_PROJECT", "bulwark-installed")
    settings = _settings(tmp_path)
    try:
        client = tracing.install_tracing(settings)
        assert client is not None and tracing.install_tracing(settings) is client
        assert langsmith.run_trees.get_cached_client() is client  # what LangChain's tracer uses
        _turn(settings, QUESTION, RunContext(user_id="ada", tenant_id="acme"))
        client.flush()
    finally:
        langsmith.configure(client=None)
    assert _root(ls)["session_name"] == "bulwark-installed"
    _assert_no_raw_pii(ls)


def test_tracing_off_sends_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ls: LangSmithServer) -> None:
    monkeypatch.setattr(tracing, "_installed", None)
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", ls.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    settings = _settings(tmp_path)
    assert tracing.install_tracing(settings) is None
    result = _turn(settings, QUESTION, RunContext(user_id="ada"))
    assert "391" in result["messages"][-1].text
    assert ls.requests == []


@pytest.mark.parametrize(
    ("environ", "dotenv", "expected"),
    [
        ({}, {}, {"LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "OTHER": "1"}),
        # a switch set anywhere keeps every default switch unset (the _V2 ones would win)
        ({"LANGSMITH_TRACING": "true"}, {}, {"OTHER": "1"}),
        ({"OTHER": "0"}, {"LANGSMITH_TRACING": "true", "LANGSMITH_ENDPOINT": "http://ls"},
         {"LANGSMITH_TRACING": "true", "LANGSMITH_ENDPOINT": "http://ls"}),
        # the environment wins over .env; .env's other variables are not the SDK's business
        ({"LANGSMITH_PROJECT": "env"}, {"LANGSMITH_PROJECT": "dotenv", "BULWARK_MODEL": "offline"},
         {"LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "OTHER": "1"}),
    ],
)
def test_offline_env_never_overwrites_a_configured_value(
    environ: dict[str, str], dotenv: dict[str, str], expected: dict[str, str]
) -> None:
    defaults = {"LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "OTHER": "1"}
    assert tracing.offline_env(defaults, environ=environ, dotenv=dotenv) == expected


@pytest.mark.slow
def test_bulwark_serve_traces_a_turn_to_langsmith(tmp_path: Path, ls: LangSmithServer) -> None:
    env = {
        "LANGSMITH_TRACING": "true", "LANGCHAIN_TRACING_V2": "true", "LANGSMITH_ENDPOINT": ls.url, "LANGSMITH_API_KEY": "lsv2_pt_test",
        "LANGSMITH_PROJECT": "bulwark-served", "BULWARK_GUARDRAILS_ENGINE": "direct",
    }
    with running("bulwark serve", tmp_path, **env) as served:

        async def ask() -> dict:
            client = get_client(url=served.url)
            thread = await client.threads.create()
            return await client.runs.wait(
                thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": QUESTION}]}
            )

        answer = asyncio.run(ask())
        assert "391" in answer["messages"][-1]["content"]
        deadline = time.monotonic() + 60  # the server's client sends from its own thread
        while not any(r["name"] == "audit" and r.get("end_time") for r in ls.runs.values()):
            assert time.monotonic() < deadline, "the turn's trace did not arrive"
            time.sleep(0.2)
    root = _assert_turn_tree(ls, screened_at_intake=True)  # the server stopped: its client flushed
    metadata = _metadata(root)
    assert root["session_name"] == "bulwark-served"
    assert metadata["tenant_id"] == "default" and metadata["thread_id"] and metadata["request_id"]
    for key in tracing.HASHED_KEYS:
        assert metadata[key].startswith("sha256:")
    # the intake screened the raw request in the auth handler, before any run: a trace of its own
    assert _root(ls, "rail:input")["outputs"]["verdict"]["action"] == "sanitize"
    _assert_no_raw_pii(ls)
    assert ("POST", "/v1/metadata/submit") not in ls.requests  # no usage report to LangSmith
