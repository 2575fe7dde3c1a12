"""Fallback chains and budgets through the graph, against a local OpenAI-protocol server that
plays several models: one failing with 500s, one slower than its timeout, one healthy."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI

from bulwark.graphs.agent import build_agent, open_agent
from bulwark.graphs.state import RunContext
from bulwark.models.fallback import unavailable
from bulwark.persistence.usage import usage_ledger_for
from bulwark.settings import Settings, load_settings
from clocks import ManualClock
from openai_server import Reply, ScriptedOpenAIServer
from scripted_model import ScriptedModel

HARD = ("Design a multi-region architecture for a payments service that must survive the loss of a region, "
        "and explain the trade-offs of each choice.")
ACME = RunContext(user_id="ada", tenant_id="acme")


def _settings(tmp_path: Path, server: ScriptedOpenAIServer, models: list[dict[str, Any]], **overrides: Any) -> Settings:
    """A catalogue of ``models`` on ``server``, chained in that order. Routing picks the
    cheapest model good enough, so the tests order the first pick by price."""
    path = tmp_path / "models.yaml"
    for model in models:
        model.setdefault("spec", f"openai:{model['name']}")
        model.setdefault("base_url", server.base_url)
    path.write_text(yaml.safe_dump({"models": models, "fallback_chain": [m["name"] for m in models]}))
    return load_settings(data_dir=tmp_path / "data", models=path, guardrails_engine="direct", **overrides)


def _healthy(body: dict[str, Any]) -> Reply:
    return Reply(content=f"answer from {body['model']}")


async def _ask(agent: Any, text: str, thread: str, context: RunContext = ACME) -> dict[str, Any]:
    return await agent.ainvoke({"messages": [("user", text)]}, {"configurable": {"thread_id": thread}}, context=context)


async def test_a_500_then_a_timeout_is_answered_by_the_third_model(tmp_path: Path) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        return {"flaky": Reply(status=500), "slow": Reply(content="too late", delay_s=3)}.get(body["model"]) or _healthy(body)

    with ScriptedOpenAIServer(respond=respond) as server:
        settings = _settings(tmp_path, server, [
            {"name": "flaky", "cost_per_1k_input": 0.001}, {"name": "slow", "cost_per_1k_input": 0.002, "timeout_s": 0.3},
            {"name": "healthy", "cost_per_1k_input": 0.003}])
        result = await _ask(build_agent(settings), "what is the capital of France?", "t1")
    assert result["messages"][-1].text == "answer from healthy"
    assert [r["model"] for r in server.requests] == ["flaky", "slow", "healthy"]
    route = result["route"]
    assert route["answered_by"] == "healthy"
    assert route["attempts"] == [
        {"model": "flaky", "outcome": "failed (HTTP 500)"},
        {"model": "slow", "outcome": "timed out"},
        {"model": "healthy", "outcome": "ok"},
    ]
    record = json.loads((settings.data_dir / "audit.jsonl").read_text().splitlines()[-1])
    assert record["route"]["attempts"] == route["attempts"], "the audit record has the fallback's story"


async def test_an_open_breaker_skips_the_model_until_its_trial(tmp_path: Path) -> None:
    down = {"flaky"}

    def respond(body: dict[str, Any]) -> Reply:
        return Reply(status=503) if body["model"] in down else _healthy(body)

    clock = ManualClock()
    with ScriptedOpenAIServer(respond=respond) as server:
        settings = _settings(tmp_path, server, [{"name": "flaky"}, {"name": "healthy", "cost_per_1k_input": 0.001}],
                             model_breaker_failures=2, model_breaker_recovery_s=30)
        agent = build_agent(settings, clock=clock)
        for thread in ("a", "b"):
            await _ask(agent, "what is 2+2?", thread)
        assert [r["model"] for r in server.requests] == ["flaky", "healthy"] * 2
        skipped = await _ask(agent, "what is 2+2?", "c")
        assert skipped["route"]["attempts"][0] == {"model": "flaky", "outcome": "circuit open"}
        assert [r["model"] for r in server.requests[4:]] == ["healthy"], "an open breaker sends nothing"
        down.clear()
        clock.advance(31)
        recovered = await _ask(agent, "what is 2+2?", "d")
    assert recovered["route"]["answered_by"] == "flaky", "the half-open trial succeeds and closes the breaker"


async def test_no_model_left_ends_the_turn_and_the_same_request_succeeds_later(tmp_path: Path) -> None:
    down = {"one", "two"}

    def respond(body: dict[str, Any]) -> Reply:
        return Reply(status=500) if body["model"] in down else _healthy(body)

    clock = ManualClock()
    with ScriptedOpenAIServer(respond=respond) as server:
        settings = _settings(tmp_path, server, [{"name": "one"}, {"name": "two", "cost_per_1k_input": 0.001}],
                             model_breaker_recovery_s=10)
        async with open_agent(settings, clock=clock) as agent:  # a checkpointer: the thread persists
            failed = await _ask(agent, "what is the capital of France?", "t")
            reply = failed["messages"][-1]
            assert "no model can answer right now" in reply.text and "one failed (HTTP 500)" in reply.text
            assert "send it again" in reply.text
            assert failed["route"]["answered_by"] is None
            assert not failed.get("usage", {}).get("model_calls"), "no call was counted"
            down.clear()
            clock.advance(11)
            again = await _ask(agent, "what is the capital of France?", "t")
    assert again["messages"][-1].text == "answer from one"
    prompt = server.requests[-1]["messages"]
    assert not any("no model can answer" in str(m.get("content")) for m in prompt), "the apology is not sent to models"
    assert sum(m.get("role") == "user" for m in prompt) == 2, "both copies of the request are in the thread"


def _pricey(server: ScriptedOpenAIServer) -> list[dict[str, Any]]:
    return [
        {"name": "big", "quality": 0.95, "cost_per_1k_input": 0.1, "cost_per_1k_output": 0.3},
        {"name": "small", "quality": 0.6, "cost_per_1k_input": 0.0, "cost_per_1k_output": 0.0},
    ]


@pytest.fixture(params=["sqlite", "redis"])
def ledger_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The budget ledger's backend: SQLite in the data directory, or the checkpointer's Redis."""
    if request.param == "sqlite":
        return {}
    return {"checkpointer_url": request.getfixturevalue("redis_url")}


@pytest.mark.parametrize("exhausted", ["downgrade", "refuse"])
async def test_a_spent_budget_downgrades_or_refuses(tmp_path: Path, ledger_overrides: dict[str, Any], exhausted: str) -> None:
    def respond(body: dict[str, Any]) -> Reply:  # big reports a long, expensive answer
        return Reply(content=f"answer from {body['model']}", prompt_tokens=3000, completion_tokens=3000)

    with ScriptedOpenAIServer(respond=respond) as server:
        settings = _settings(tmp_path, server, _pricey(server), budgets={"*": {"daily_usd": 1.0}},
                             budget_exhausted=exhausted, **ledger_overrides)
        agent = build_agent(settings)
        first = await _ask(agent, HARD, "t1")
        assert first["route"]["answered_by"] == "big" and first["route"]["budget_left_usd"] == 1.0
        assert first["usage"]["cost_usd"] == pytest.approx(3 * 0.1 + 3 * 0.3)
        second = await _ask(agent, HARD, "t2")
        other_tenant = await _ask(agent, HARD, "t3", RunContext(user_id="bo", tenant_id="globex"))
    assert second["route"]["budget_left_usd"] == 0.0
    if exhausted == "downgrade":
        assert second["route"]["outcome"] == "budget_downgrade"
        assert second["messages"][-1].text == "answer from small"
        assert [r["model"] for r in server.requests] == ["big", "small", "big"]
    else:
        assert second["route"]["outcome"] == "budget_refused"
        assert "budget is spent" in second["messages"][-1].text and "$1.00 a day" in second["messages"][-1].text
        assert [r["model"] for r in server.requests] == ["big", "big"], "a refused turn calls no model"
    assert other_tenant["route"]["answered_by"] == "big", "another tenant's budget is its own"
    ledger = usage_ledger_for(settings)
    rows = {(row["tenant"], row["model"]): row for row in ledger.report(by=("tenant", "model"))}
    assert rows[("acme", "big")]["cost_usd"] == pytest.approx(1.2)
    assert ledger.spent("acme")["day"] == pytest.approx(1.2)


async def test_a_budget_that_pays_only_for_the_small_model_downgrades(tmp_path: Path) -> None:
    with ScriptedOpenAIServer(respond=_healthy) as server:
        settings = _settings(tmp_path, server, _pricey(server), budgets={"acme": {"monthly_usd": 0.01}})
        result = await _ask(build_agent(settings), HARD, "t")
    assert result["route"]["outcome"] == "downgraded" and result["route"]["answered_by"] == "small"
    assert "downgraded" in result["route"]["reason"]


async def test_a_provider_that_sends_no_usage_is_estimated_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: quiet, spec: offline, cost_per_1k_input: 1.0, cost_per_1k_output: 2.0}\n")
    settings = load_settings(data_dir=tmp_path / "data", models=path, guardrails_engine="direct")
    quiet = ScriptedModel(responses=[AIMessage("a reply with no usage metadata at all")])
    result = await _ask(build_agent(settings, models={"quiet": quiet}), "what is the capital of France?", "t")
    usage = result["usage"]
    assert usage["estimated_calls"] == 1 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cost_usd"] == pytest.approx((usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1000)
    assert result["messages"][-1].response_metadata["usage_estimated"] is True
    (row,) = usage_ledger_for(settings).report(by=("model",))
    assert (row["calls"], row["estimated_calls"], row["cost_usd"]) == (1, 1, pytest.approx(usage["cost_usd"]))


async def test_a_model_whose_server_is_gone_is_passed_over(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with ScriptedOpenAIServer(respond=_healthy) as server:
        settings = _settings(tmp_path, server, [
            {"name": "gone", "base_url": f"http://127.0.0.1:{closed}/v1"}, {"name": "healthy", "cost_per_1k_input": 0.001}])
        result = await _ask(build_agent(settings), "what is the capital of France?", "t")
    assert result["route"]["attempts"] == [{"model": "gone", "outcome": "unreachable"}, {"model": "healthy", "outcome": "ok"}]


@pytest.mark.parametrize(
    ("status", "why"),
    [(429, "rate limited (HTTP 429)"), (500, "failed (HTTP 500)"), (503, "failed (HTTP 503)"),
     (404, "not found (HTTP 404)"), (400, None), (401, None)],
)
def test_which_provider_errors_move_the_chain_on(status: int, why: str | None) -> None:
    with ScriptedOpenAIServer(respond=lambda body: Reply(status=status)) as server:
        model = ChatOpenAI(model="m", base_url=server.base_url, api_key="k", max_retries=0)
        with pytest.raises(Exception) as caught:
            model.invoke("hi")
    assert unavailable(caught.value) == why, "a request the provider rejects fails on every model alike"
