"""The answer cache through the graph, against a local OpenAI-protocol server: repeats and
paraphrases are answered with no model call, near misses never are, and nothing that may
not be reused is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulwark.graphs.agent import build_agent
from bulwark.graphs.state import RunContext
from bulwark.memory.store import QdrantStore, open_memory_store
from bulwark.models.cache import normalise_request
from bulwark.persistence.audit import audit_log_for
from bulwark.settings import Settings, load_settings
from openai_server import Reply, ScriptedOpenAIServer, ToolCall

DATA = Path(__file__).resolve().parents[1] / "evals" / "datasets"
ACME = RunContext(user_id="ada", tenant_id="acme")


def _pairs(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def _echo(body: dict[str, Any]) -> Reply:
    """Answers name the request they answer, so a false hit shows."""
    request = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return Reply(content=f"answer to: {request}")


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer(respond=_echo) as running:
        yield running


def _settings(tmp_path: Path, server: ScriptedOpenAIServer, **overrides: Any) -> Settings:
    # No LLM judge: the scripted model echoes, and counting model calls is what these tests do.
    return load_settings(data_dir=tmp_path / "data", model="openai:gpt-test", openai_base_url=server.base_url,
                         guardrails_engine="direct", guardrails_judge="off", memory_url="memory://", **overrides)


@pytest.fixture
def store(tmp_path: Path, server: ScriptedOpenAIServer) -> Iterator[QdrantStore]:
    with open_memory_store(_settings(tmp_path, server)) as opened:
        yield opened


async def _ask(agent: Any, text: str, thread: str, context: RunContext = ACME) -> dict[str, Any]:
    return await agent.ainvoke({"messages": [("user", text)]}, {"configurable": {"thread_id": thread}}, context=context)


def test_the_cache_is_off_by_default(tmp_path: Path, server: ScriptedOpenAIServer) -> None:
    agent = build_agent(_settings(tmp_path, server))
    for thread in ("a", "b"):
        state = agent.invoke({"messages": [("user", "what is the capital of France?")]},
                             {"configurable": {"thread_id": thread}}, context=ACME)
        assert state.get("cache") is None
    assert len(server.requests) == 2


@pytest.fixture(params=["in-process", "redis"])
def levels(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where checkpoints live decides the cache's levels: L1 only, or L1 and Redis."""
    return {} if request.param == "in-process" else {"checkpointer_url": request.getfixturevalue("redis_url")}


async def test_a_repeated_question_is_answered_from_the_cache_with_no_model_call(
    tmp_path: Path, server: ScriptedOpenAIServer, levels: dict[str, Any]
) -> None:
    settings = _settings(tmp_path, server, cache="exact", **levels)
    agent = build_agent(settings)
    first = await _ask(agent, "What is the capital of France?", "t1")
    assert first["cache"]["hit"] is None and first["cache"]["stored"]["l1"] == "stored"
    again = await _ask(agent, "what is the capital of france", "t2")  # case and punctuation aside, the same
    assert len(server.requests) == 1, "no model call"
    assert again["messages"][-1].text == "answer to: What is the capital of France?"
    assert again["cache"]["hit"] == "l1" and again["output_verdict"]["action"] == "allow", "the output rail ran"
    assert again["route"]["answered_by"] is None and not again.get("usage", {}).get("model_calls")
    record = list(audit_log_for(settings).export(tenant="acme"))[-1]
    assert record["cache"]["hit"] == "l1" and record["cost_usd"] == 0
    if levels:
        replica = build_agent(settings)  # another process: its own L1, the shared Redis
        shared = await _ask(replica, "What is the capital of France?", "t3")
        assert shared["cache"]["hit"] == "l2" and len(server.requests) == 1
    other = await _ask(agent, "What is the capital of France?", "t4", RunContext(user_id="bo", tenant_id="globex"))
    assert other["cache"]["hit"] is None and len(server.requests) == 2, "never shared across tenants"


async def test_a_paraphrase_is_answered_from_the_semantic_cache(
    tmp_path: Path, server: ScriptedOpenAIServer, store: QdrantStore
) -> None:
    agent = build_agent(_settings(tmp_path, server, cache="semantic"), store=store)
    pairs = _pairs("cache_paraphrases.jsonl")[:40]
    hits = 0
    for i, pair in enumerate(pairs):
        await _ask(agent, pair["question"], f"q{i}")
        calls = len(server.requests)
        state = await _ask(agent, pair["paraphrase"], f"p{i}")
        if state["cache"]["hit"] == "semantic":
            hits += 1
            assert len(server.requests) == calls, "a hit calls no model"
            assert state["messages"][-1].text == f"answer to: {pair['question']}"
            assert state["cache"]["similarity"] >= 0.95
    assert hits >= 10, f"{hits}/{len(pairs)} paraphrases answered from the semantic cache"


async def test_the_near_miss_set_gets_no_false_hits(tmp_path: Path, server: ScriptedOpenAIServer, store: QdrantStore) -> None:
    agent = build_agent(_settings(tmp_path, server, cache="semantic"), store=store)
    pairs = _pairs("cache_near_miss.jsonl")
    assert len(pairs) >= 100
    false_hits, hits = [], 0
    for i, pair in enumerate(pairs):
        for thread, text in ((f"q{i}", pair["question"]), (f"n{i}", pair["near_miss"])):
            state = await _ask(agent, text, thread)
            if (state.get("cache") or {}).get("hit") is None:  # no cache: a redacted name, never looked up
                continue
            hits += 1  # an earlier pair may have asked this very request: a true hit
            served = state["messages"][-1].text.removeprefix("answer to: ")
            if normalise_request(served) != normalise_request(text):
                false_hits.append((pair["differs"], text, served))
    assert false_hits == []
    assert len(server.requests) == 2 * len(pairs) - hits, "every request not asked before went to the model"


async def test_turns_that_may_not_be_reused_are_not_stored(tmp_path: Path, store: QdrantStore) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply(content="done")
        if "time" in body["messages"][-1]["content"]:
            return Reply(tool_calls=[ToolCall("current_time", {"timezone": "UTC"})])
        return Reply(tool_calls=[ToolCall("calculator", {"expression": "17*23"})])

    with ScriptedOpenAIServer(respond=respond) as scripted:
        agent = build_agent(_settings(tmp_path, scripted, cache="exact"), store=store)
        clock = await _ask(agent, "what time is it in UTC?", "a")
        assert "stored" not in clock["cache"], "current_time's answers go stale"
        sum_ = await _ask(agent, "what is 17*23?", "b")
        assert sum_["cache"]["stored"] == {"l1": "stored"}, "a pure tool's answer may be reused"
        assert (await _ask(agent, "what is 17*23?", "c"))["cache"]["hit"] == "l1"
