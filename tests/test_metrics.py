"""The Prometheus series of the metric contract: recorded by real turns, served on GET /metrics
(in-process through the middleware, and by a real ``bulwark serve``), summed across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest
from agent_server import PROD, running
from clocks import ManualClock
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bulwark.graphs.agent import open_agent
from bulwark.graphs.state import RunContext
from bulwark.observability import metrics
from bulwark.server.credentials import Identity
from bulwark.server.limits import MemoryLimiter, RateLimited, RateLimits
from bulwark.server.routes import HttpMetrics
from bulwark.settings import load_settings

CONTRACT = {
    "http_requests": "counter", "http_request_duration_seconds": "histogram", "llm_requests": "counter",
    "llm_request_duration_seconds": "histogram", "llm_tokens": "counter", "llm_cost_usd": "counter", "memory_cache_hits": "counter",
    "tool_calls": "counter", "tool_calls_success": "counter", "agent_decisions": "counter",
    "guardrail_verdicts": "counter", "circuit_breaker_state": "gauge", "memory_recall_duration_seconds": "histogram",
    "checkpoint_duration_seconds": "histogram", "rate_limit_rejections": "counter",
}
"""Each series family of the contract and its type (counters are named without ``_total``)."""


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(name: str, **labels: str) -> float:
    return _samples(metrics.exposition(include_global=False).decode()).get((name, frozenset(labels.items())), 0.0)


async def test_a_turn_records_the_contract_series(tmp_path: Path) -> None:
    catalogue = tmp_path / "models.yaml"
    catalogue.write_text("models:\n  - {name: offline, spec: offline, cost_per_1k_input: 0.001, cost_per_1k_output: 0.002}\n")
    settings = load_settings(data_dir=tmp_path / "data", guardrails_engine="direct", models=catalogue)
    names = ("llm_requests_total", "tool_calls_total", "tool_calls_success_total", "agent_decisions_total",
             "guardrail_verdicts_total", "llm_tokens_total", "llm_cost_usd_total")
    keys = [
        ("llm_requests_total", {"model": "offline", "status": "ok"}),
        ("llm_tokens_total", {"model": "offline", "kind": "input"}),
        ("llm_tokens_total", {"model": "offline", "kind": "output"}),
        ("llm_cost_usd_total", {"model": "offline", "tier": "default"}),
        ("tool_calls_total", {"tool_name": "calculator", "status": "success"}),
        ("tool_calls_success_total", {"tool_name": "calculator"}),
        ("agent_decisions_total", {"decision_type": "tool_call"}),
        ("agent_decisions_total", {"decision_type": "answer"}),
        ("guardrail_verdicts_total", {"rail": "input", "action": "allow"}),
        ("guardrail_verdicts_total", {"rail": "context", "action": "allow"}),
        ("memory_recall_duration_seconds_count", {"route": "semantic"}),
        ("checkpoint_duration_seconds_count", {"op": "put"}),
        ("checkpoint_duration_seconds_count", {"op": "get"}),
    ]
    assert set(names) <= {k for k, _ in keys}
    before = {(name, tuple(labels.items())): _value(name, **labels) for name, labels in keys}
    async with open_agent(settings) as agent:
        state = await agent.ainvoke({"messages": [{"role": "user", "content": "what is 17*23"}]},
                                    {"configurable": {"thread_id": "m1"}}, context=RunContext(user_id="ada"))
    grown = {(name, tuple(labels.items())): _value(name, **labels) - before[(name, tuple(labels.items()))] for name, labels in keys}
    assert grown[("llm_requests_total", (("model", "offline"), ("status", "ok")))] == 2
    assert grown[("tool_calls_total", (("tool_name", "calculator"), ("status", "success")))] == 1
    assert grown[("agent_decisions_total", (("decision_type", "tool_call"),))] == 1
    assert all(value > 0 for value in grown.values()), grown
    tokens_in = grown[("llm_tokens_total", (("model", "offline"), ("kind", "input")))]
    tokens_out = grown[("llm_tokens_total", (("model", "offline"), ("kind", "output")))]
    cost = grown[("llm_cost_usd_total", (("model", "offline"), ("tier", "default")))]
    assert cost == pytest.approx((tokens_in * 1.0 + tokens_out * 2.0) / 1e6)
    assert state["usage"]["cost_usd"] == pytest.approx(cost), "the state's usage carries the same figure"
    assert _value("circuit_breaker_state", breaker="calculator") == 0
    text = metrics.exposition(include_global=False).decode()
    assert "ada" not in text and "m1" not in text and "17*23" not in text, "no ids or text in labels"


def test_the_breaker_gauge_follows_the_breaker() -> None:
    before = _value("tool_calls_total", tool_name="gauge_probe", status="blocked")
    metrics.record_tool_call("gauge_probe", "error", "open")
    assert _value("circuit_breaker_state", breaker="gauge_probe") == 2
    metrics.record_tool_call("gauge_probe", "blocked", "half_open")
    assert _value("circuit_breaker_state", breaker="gauge_probe") == 1
    assert _value("tool_calls_total", tool_name="gauge_probe", status="blocked") == before + 1


async def test_rate_limit_rejections_are_counted_by_limit_and_tier() -> None:
    limits = RateLimits(MemoryLimiter(clock=ManualClock()), requests_per_minute=1, concurrent_runs=1,
                        runs_per_minute=None, tiers={"free": {}})
    who = Identity(tenant_id="acme", user_id="u", scopes=frozenset(), credential="k", tier="free")
    before = _value("rate_limit_rejections_total", limit="requests", tier="free")
    await limits.request(who)
    with pytest.raises(RateLimited):
        await limits.request(who)
    await limits.run(who, lease=str(uuid.uuid4()))
    with pytest.raises(RateLimited):
        await limits.run(who, lease=str(uuid.uuid4()))
    assert _value("rate_limit_rejections_total", limit="requests", tier="free") == before + 1
    assert _value("rate_limit_rejections_total", limit="concurrent_runs", tier="free") >= 1


def _app(**options: object) -> Starlette:
    async def thread(request):  # noqa: ANN001, ANN202
        return PlainTextResponse(request.path_params["thread_id"])

    async def boom(request):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    return Starlette(
        routes=[Route("/threads/{thread_id}", thread), Route("/boom", boom)],
        middleware=[Middleware(HttpMetrics, **options)],
    )


async def test_the_middleware_labels_by_route_template_and_serves_metrics() -> None:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    before = _value("http_requests_total", method="GET", route="/threads/{thread_id}", status="200")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for thread in ("a", "b"):
            assert (await client.get(f"/threads/{thread}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/boom")).status_code == 500
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    samples = _samples(scrape.text)
    assert samples[("http_requests_total", frozenset({"method": "GET", "route": "/threads/{thread_id}", "status": "200"}.items()))] == before + 2
    assert samples[("http_requests_total", frozenset({"method": "GET", "route": "other", "status": "404"}.items()))] >= 1
    assert samples[("http_requests_total", frozenset({"method": "GET", "route": "/boom", "status": "500"}.items()))] >= 1
    assert samples[("http_request_duration_seconds_count", frozenset({"method": "GET", "route": "/threads/{thread_id}"}.items()))] >= 2
    assert not any(dict(labels).get("route") in ("/threads/a", "/threads/b") for _, labels in samples), "no raw paths"
    families = {family.name: family.type for family in text_string_to_metric_families(scrape.text)}
    assert CONTRACT.items() <= families.items()


async def test_metrics_wants_the_token_when_one_is_set() -> None:
    transport = httpx.ASGITransport(app=_app(token="s3cret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})).status_code == 200


WRITER = textwrap.dedent(
    """
    from bulwark.observability import metrics
    metrics.record_tool_call("calculator", "success", "closed")
    metrics.HTTP_REQUESTS.labels("GET", "/ok", "200").inc(3)
    metrics.CIRCUIT_BREAKER_STATE.labels("calculator").set({state})
    """
)


def test_several_processes_are_summed_by_one_scrape(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    for state in (0, 2):  # two worker processes, one after the other: the gauge keeps the latest
        subprocess.run([sys.executable, "-c", WRITER.format(state=state)], env=env, check=True, timeout=120)
    samples = _samples(metrics.exposition(multiproc_dir=str(directory), include_global=False).decode())
    assert samples[("tool_calls_total", frozenset({"tool_name": "calculator", "status": "success"}.items()))] == 2
    assert samples[("tool_calls_success_total", frozenset({"tool_name": "calculator"}.items()))] == 2
    assert samples[("http_requests_total", frozenset({"method": "GET", "route": "/ok", "status": "200"}.items()))] == 6
    assert samples[("circuit_breaker_state", frozenset({"breaker": "calculator"}.items()))] == 2


@pytest.mark.parametrize("launcher", ["bulwark serve", PROD])
async def test_served_metrics_carry_the_contract(launcher: str, tmp_path: Path) -> None:
    with running(launcher, tmp_path) as server:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "what is 17*23"}]})
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            text = response.read().decode()
    samples = _samples(text)
    run_route = {"method": "POST", "route": "/threads/{thread_id}/runs/wait", "status": "200"}
    assert samples[("http_requests_total", frozenset(run_route.items()))] == 1
    assert samples[("llm_requests_total", frozenset({"model": "offline", "status": "ok"}.items()))] == 2
    assert samples[("tool_calls_success_total", frozenset({"tool_name": "calculator"}.items()))] == 1
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert CONTRACT.items() <= families.items()
    if launcher != PROD:
        assert "lg_api_workers_active" in families, "langgraph-api's own series are kept"
    assert thread["thread_id"] not in text, "thread ids never become label values"
