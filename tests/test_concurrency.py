"""Concurrent runs wait on the model together: nothing queues behind a thread pool.

Sync nodes run in asyncio's default executor (six threads on a two-core machine), which
would cap the model calls in flight at six however many runs there are. Every node has an
async path, so in-process runs and the LangGraph server's jobs all await the model at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph_sdk import get_client
from pydantic import Field

from agent_server import running
from bulwark.graphs.agent import open_agent
from bulwark.graphs.state import RunContext
from bulwark.persistence.effects import EffectJournal
from bulwark.settings import load_settings
from openai_server import Reply, ScriptedOpenAIServer

RUNS = 32


class SlowModel(BaseChatModel):
    """Answers after ``delay_s`` of awaiting, and counts the calls awaiting at once."""

    delay_s: float = 0.2
    counts: dict[str, int] = Field(default_factory=lambda: {"in_flight": 0, "max_in_flight": 0})

    @property
    def _llm_type(self) -> str:
        return "slow"

    def bind_tools(self, tools: Any, **kwargs: Any) -> SlowModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise AssertionError("the async path must not fall back to the sync call")

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.counts["in_flight"] += 1
        self.counts["max_in_flight"] = max(self.counts["max_in_flight"], self.counts["in_flight"])
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.counts["in_flight"] -= 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage("Noted."))])


def _ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def _all_at_once(run: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return await asyncio.gather(*(run(i) for i in range(RUNS)))


async def test_in_process_runs_await_the_model_together(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", checkpointer_url="memory://", memory_url="memory://")
    model = SlowModel()
    async with open_agent(settings, models={settings.model: model}) as agent:

        async def run(i: int) -> dict:
            return await agent.ainvoke(
                _ask(f"I live in city number {i}."),  # remembered: the store is written too
                {"configurable": {"thread_id": f"t{i}"}},
                context=RunContext(user_id=f"u{i}"),
            )

        results = await _all_at_once(run)
    assert all(r["messages"][-1].text == "Noted." for r in results)
    assert model.counts["max_in_flight"] >= 30, model.counts


@pytest.mark.slow
async def test_server_runs_call_the_model_concurrently(tmp_path: Path) -> None:
    # The model answers after 3 s: long enough for every run to reach it while the first
    # are still waiting, whatever the queue's polling and the guardrails cost on the way.
    with ScriptedOpenAIServer([Reply(content="Noted.")] * RUNS, delay_s=3.0) as model_server:
        env = {
            "BULWARK_MODEL": "openai:gpt-test",
            "BULWARK_OPENAI_BASE_URL": model_server.base_url,
            "BULWARK_OPENAI_API_KEY": "sk-test",
        }
        with running("bulwark serve", tmp_path, **env) as server:
            client = get_client(url=server.url)

            async def run(i: int) -> Any:
                thread = await client.threads.create()
                return await client.runs.wait(thread["thread_id"], "agent", input=_ask(f"hello {i}"))

            results = await _all_at_once(run)
    assert [r["messages"][-1]["content"] for r in results] == ["Noted."] * RUNS
    assert len(model_server.requests) == RUNS
    assert model_server.max_in_flight >= 24, f"at most {model_server.max_in_flight} model calls at once"


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.slow)])  # redis: starts a server
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> EffectJournal:
    if request.param == "sqlite":
        return EffectJournal.for_checkpointer("sqlite:///x.db", data_dir=tmp_path)
    return EffectJournal.for_checkpointer(request.getfixturevalue("redis_url"), data_dir=tmp_path)


async def test_concurrent_async_claims_let_one_call_run(journal: EffectJournal) -> None:
    claims = await _all_at_once(lambda i: journal.aclaim("t:c1"))
    assert sum(claim.fresh for claim in claims) == 1
    await journal.afinish("t:c1", "success", "email sent")
    replay = await journal.aclaim("t:c1")
    assert not replay.fresh and replay.outcome == ("success", "email sent")
    assert journal.claim("t:c1").outcome == ("success", "email sent"), "the sync path reads the same"

