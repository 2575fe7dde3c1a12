"""Redis goes away mid-run: the run fails clearly, nothing acknowledged is lost, and the
thread resumes once Redis is back."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from redis_servers import RedisServer
from scripted_model import RuleModel

from bulwark.graphs.agent import build_agent, cut_short
from bulwark.persistence.checkpoints import PersistenceError, open_checkpointer
from bulwark.settings import Settings


async def test_outage_mid_run_then_resume(redis_server: RedisServer, settings: Settings) -> None:
    outages = []

    @tool
    def take_redis_down() -> str:
        """Stops the Redis server the first time it runs (the outage)."""
        if not outages:
            outages.append(True)
            redis_server.stop()
        return "maintenance done"

    def reply(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage("second answer (take_redis_down)")
        if messages[-1].text == "second question":
            return AIMessage("", tool_calls=[{"name": "take_redis_down", "args": {}, "id": "down-1"}])
        return AIMessage("first answer")

    config = {"configurable": {"thread_id": "outage"}}
    ask = lambda text: {"messages": [{"role": "user", "content": text}]}  # noqa: E731

    async with open_checkpointer(redis_server.url) as saver:
        graph = build_agent(
            settings, checkpointer=saver, models={"offline": RuleModel(reply=reply)},
            tools=[take_redis_down],
        )
        await graph.ainvoke(ask("first question"), config)  # acknowledged
        with pytest.raises(PersistenceError, match=f"127.0.0.1:{redis_server.port}"):
            await graph.ainvoke(ask("second question"), config)

        redis_server.start()
        state = await graph.aget_state(config)
        texts = [m.text for m in state.values["messages"]]
        assert texts[:3] == ["first question", "first answer", "second question"], "nothing acknowledged is lost"
        assert cut_short(state)

        result = await graph.ainvoke(None, config)
    tool_results = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tool_results] == ["down-1"]
    assert result["messages"][-1].text == "second answer (take_redis_down)"
