"""The ``openai:<model>`` path of ``make_chat_model``, end to end over HTTP.

Every test drives the real ``ChatOpenAI``/``openai`` client against
:class:`ScriptedOpenAIServer`, a local server speaking the OpenAI Chat Completions wire
protocol, and asserts both what the model returned and what went over the wire.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
import pytest
from bulwark.graphs.agent import build_agent
from bulwark.models.factory import make_chat_model
from bulwark.tools import builtin
from bulwark.settings import load_settings
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from openai_server import Reply, ScriptedOpenAIServer, ToolCall


calculator = tool(builtin.calculator, parse_docstring=True)


def openai_model(server: ScriptedOpenAIServer, tmp_path: Path, **overrides: object):
    """``make_chat_model("openai:gpt-test")`` pointed at ``server``."""
    settings = load_settings(
        model="openai:gpt-test",
        openai_base_url=server.base_url,
        openai_api_key="sk-test",
        data_dir=tmp_path,
        **overrides,
    )
    return make_chat_model(settings.model, settings=settings)


def concat(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


QUESTION = "What is 2 + 2?"
CALL = ToolCall("calculator", {"expression": "2 + 2"}, id="call_calc_1")


def test_tool_call_is_returned_and_request_carries_model_and_tool_schema(tmp_path: Path) -> None:
    with ScriptedOpenAIServer([Reply(tool_calls=[CALL])]) as server:
        model = openai_model(server, tmp_path).bind_tools([calculator])
        result = model.invoke([HumanMessage(QUESTION)])

    assert isinstance(result, AIMessage)
    assert result.tool_calls == [
        {
            "name": "calculator",
            "args": {"expression": "2 + 2"},
            "id": "call_calc_1",
            "type": "tool_call",
        }
    ]
    assert result.response_metadata["finish_reason"] == "tool_calls"
    assert result.usage_metadata is not None
    assert result.usage_metadata["input_tokens"] == 11
    assert result.usage_metadata["output_tokens"] == 7

    (sent,) = server.requests
    assert sent["model"] == "gpt-test"
    assert not sent.get("stream")
    assert sent["messages"] == [{"role": "user", "content": QUESTION}]
    (schema,) = sent["tools"]
    assert schema["type"] == "function"
    assert schema["function"]["name"] == "calculator"
    assert "arithmetic" in schema["function"]["description"]
    params = schema["function"]["parameters"]
    assert params["properties"]["expression"]["type"] == "string"
    assert params["required"] == ["expression"]
    assert server.request_headers[0]["authorization"] == "Bearer sk-test"


def test_tool_result_goes_over_the_wire_and_final_answer_comes_back(tmp_path: Path) -> None:
    with ScriptedOpenAIServer([Reply(tool_calls=[CALL]), Reply(content="2 + 2 is 4.")]) as server:
        model = openai_model(server, tmp_path).bind_tools([calculator])
        conversation = [HumanMessage(QUESTION)]
        ai = model.invoke(conversation)
        (call,) = ai.tool_calls
        conversation += [ai, ToolMessage(calculator.invoke(call["args"]), tool_call_id=call["id"])]
        final = model.invoke(conversation)

    assert final.content == "2 + 2 is 4."
    assert final.tool_calls == []
    assert final.response_metadata["finish_reason"] == "stop"

    assert len(server.requests) == 2
    user, assistant, tool_result = server.requests[1]["messages"]
    assert user == {"role": "user", "content": QUESTION}
    assert assistant["role"] == "assistant"
    (sent_call,) = assistant["tool_calls"]
    assert sent_call["id"] == "call_calc_1"
    assert sent_call["function"]["name"] == "calculator"
    assert json.loads(sent_call["function"]["arguments"]) == {"expression": "2 + 2"}
    assert tool_result == {"role": "tool", "tool_call_id": "call_calc_1", "content": "4"}


def test_stream_yields_several_chunks_with_usage(tmp_path: Path) -> None:
    text = "Two plus two is four, as the calculator confirms."
    with ScriptedOpenAIServer(
        [Reply(content=text, prompt_tokens=20, completion_tokens=10)]
    ) as server:
        chunks = list(openai_model(server, tmp_path).stream([HumanMessage(QUESTION)]))

    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len([c for c in chunks if c.content]) >= 3
    total = concat(chunks)
    assert total.content == text
    assert total.usage_metadata is not None
    assert total.usage_metadata["input_tokens"] == 20
    assert total.usage_metadata["output_tokens"] == 10
    assert total.usage_metadata["total_tokens"] == 30

    (sent,) = server.requests
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_deltas_assemble_into_one_call(tmp_path: Path) -> None:
    with ScriptedOpenAIServer([Reply(tool_calls=[CALL])]) as server:
        model = openai_model(server, tmp_path).bind_tools([calculator])
        chunks = list(model.stream([HumanMessage(QUESTION)]))

    assert len([c for c in chunks if c.tool_call_chunks]) >= 2  # arguments arrive in pieces
    total = concat(chunks)
    assert total.tool_calls == [
        {
            "name": "calculator",
            "args": {"expression": "2 + 2"},
            "id": "call_calc_1",
            "type": "tool_call",
        }
    ]


async def test_ainvoke_and_astream(tmp_path: Path) -> None:
    text = "Async answers work over the same protocol."
    with ScriptedOpenAIServer([Reply(tool_calls=[CALL]), Reply(content=text)]) as server:
        model = openai_model(server, tmp_path)
        ai = await model.bind_tools([calculator]).ainvoke([HumanMessage(QUESTION)])
        chunks = [c async for c in model.astream([HumanMessage("Say something.")])]

    assert ai.tool_calls[0]["name"] == "calculator"
    assert ai.tool_calls[0]["args"] == {"expression": "2 + 2"}
    assert len([c for c in chunks if c.content]) >= 3
    total = concat(chunks)
    assert total.content == text
    assert total.usage_metadata is not None and total.usage_metadata["total_tokens"] == 18
    assert [r.get("stream", False) for r in server.requests] == [False, True]
    assert server.requests[1]["messages"] == [{"role": "user", "content": "Say something."}]


def test_server_error_is_retried_then_succeeds(tmp_path: Path) -> None:
    with ScriptedOpenAIServer(
        [Reply(status=500, error_message="upstream hiccup"), Reply(content="Recovered.")]
    ) as server:
        result = openai_model(server, tmp_path).invoke([HumanMessage("hello")])

    assert result.content == "Recovered."
    assert len(server.requests) == 2
    assert server.requests[0] == server.requests[1]  # the same request, retried
    assert server.remaining == 0


def test_persistent_rate_limit_raises_rate_limit_error(tmp_path: Path) -> None:
    # retry-after-ms keeps the client's back-off short; max_retries=2 means 3 attempts.
    limited = Reply(
        status=429, error_message="Rate limit reached for gpt-test", retry_after_s=0.01
    )
    with ScriptedOpenAIServer([limited] * 4) as server:
        model = openai_model(server, tmp_path)
        with pytest.raises(openai.RateLimitError) as caught:
            model.invoke([HumanMessage("hello")])

    assert caught.value.status_code == 429
    assert "Rate limit reached" in str(caught.value)
    assert len(server.requests) == 3
    assert server.remaining == 1


def test_reply_slower_than_timeout_raises_timeout_error(tmp_path: Path) -> None:
    slow = Reply(content="too late", delay_s=3.0)
    with ScriptedOpenAIServer([slow] * 4) as server:
        model = openai_model(server, tmp_path, model_timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            model.invoke([HumanMessage("hello")])
        elapsed = time.monotonic() - started

    assert len(server.requests) == 3  # the first attempt plus max_retries=2
    assert elapsed < 5.0


async def test_agent_graph_runs_on_the_openai_path(tmp_path: Path) -> None:
    """The whole agent on ``openai:``: tool call, tool run, streamed final answer."""
    # Longer than the output rail's hold-back, so it streams in several pieces.
    answer = "The calculator tool says 17 times 23 is 391: check it as 17 times 20 plus 17 times 3, that is 340 + 51."
    with ScriptedOpenAIServer(
        [Reply(tool_calls=[ToolCall("calculator", {"expression": "17*23"}, id="call_1")]), Reply(content=answer)]
    ) as server:
        settings = load_settings(
            model="openai:gpt-test", openai_base_url=server.base_url, data_dir=tmp_path
        )
        graph = build_agent(settings)
        tokens = [
            chunk.text
            async for chunk, meta in graph.astream(
                {"messages": [{"role": "user", "content": "what is 17*23"}]}, stream_mode="messages"
            )
            if meta["langgraph_node"] == "agent" and chunk.text
        ]
    assert "".join(tokens) == answer and len(tokens) > 1
    second = server.requests[1]
    assert second["model"] == "gpt-test"
    tool_result = next(m for m in second["messages"] if m["role"] == "tool")
    assert (tool_result["tool_call_id"], tool_result["content"]) == ("call_1", "391")
    assert second["messages"][0]["role"] == "system"
