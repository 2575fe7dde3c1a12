"""Tests for the deterministic offline stand-in chat model."""

from __future__ import annotations

import ast
import operator
from typing import Any, Literal

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from bulwark.models import matching as _matching
from bulwark.models.offline import OfflineChatModel

# ----------------------------------------------------------------------- tools

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ValueError("unsupported expression")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 2*(3+4)."""
    value = _eval(ast.parse(expression, mode="eval").body)
    return str(int(value) if float(value).is_integer() else value)


@tool
def current_time(timezone: str = "UTC") -> str:
    """Return the current date and time in an IANA timezone."""
    return f"2030-01-01T12:00:00 {timezone}"


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email message to a recipient."""
    return f"sent to {to}"


@tool
def convert_units(
    value: float, conversion: Literal["km_to_miles", "miles_to_km", "kg_to_lb", "lb_to_kg"]
) -> str:
    """Convert a value between units of length or weight."""
    return "converted"


WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

TOOLS: list[Any] = [calculator, current_time, send_email, convert_units, WEATHER]
TOOL_NAMES = ["calculator", "current_time", "send_email", "convert_units", "get_weather"]


def _model(**bind: Any) -> Any:
    return OfflineChatModel().bind_tools(TOOLS, **bind)


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


# ------------------------------------------------------------------ basics


def test_identity_and_docstring() -> None:
    model = OfflineChatModel()
    assert model._llm_type == "bulwark-offline"
    assert "stand-in" in (OfflineChatModel.__doc__ or "")
    assert model.min_tool_score > 0


def test_bind_tools_accepts_tools_functions_models_and_dicts() -> None:
    from pydantic import BaseModel

    class Lookup(BaseModel):
        """Look up a word in the dictionary."""

        word: str

    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()

    bound = OfflineChatModel().bind_tools([calculator, WEATHER, Lookup, shout], tool_choice="auto")
    names = [t["function"]["name"] for t in bound.kwargs["tools"]]
    assert names == ["calculator", "get_weather", "Lookup", "shout"]
    assert bound.kwargs["tool_choice"] == "auto"


# ------------------------------------------------------------ tool choice


@pytest.mark.parametrize(
    ("request_text", "name", "args"),
    [
        ("what is 17*23", "calculator", {"expression": "17*23"}),
        ("compute (2+3)/4", "calculator", {"expression": "(2+3)/4"}),
        ("what is 3 x 4 plus 2", "calculator", {"expression": "3*4 + 2"}),
        ("what is the sum of 4 and 5", "calculator", {"expression": "4 + 5"}),
        ("what time is it in Europe/Paris", "current_time", {"timezone": "Europe/Paris"}),
        ("what time is it?", "current_time", {}),
        ("what's the time in UTC", "current_time", {"timezone": "UTC"}),
        (
            "send an email to ada@example.com with subject 'Lunch' saying see you at noon",
            "send_email",
            {"to": "ada@example.com", "subject": "Lunch", "body": "see you at noon"},
        ),
        ("convert 5 km to miles", "convert_units", {"value": 5, "conversion": "km_to_miles"}),
        ("convert 2.5 lb to kg", "convert_units", {"value": 2.5, "conversion": "lb_to_kg"}),
        (
            "what's the weather in London in fahrenheit",
            "get_weather",
            {"city": "London", "unit": "fahrenheit"},
        ),
    ],
)
def test_tool_choice_and_arguments(request_text: str, name: str, args: dict[str, Any]) -> None:
    message = _model().invoke(request_text)
    assert message.content == ""
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [(name, args)]
    assert message.tool_calls[0]["id"].startswith("call_")


def test_email_without_quotes_fills_required_fields() -> None:
    message = _model().invoke("email bob@example.com about the quarterly report")
    (call,) = message.tool_calls
    assert call["name"] == "send_email"
    assert call["args"]["to"] == "bob@example.com"
    assert "quarterly report" in call["args"]["body"]
    assert call["args"]["subject"]


def test_numbers_used_by_an_expression_are_not_reused() -> None:
    scale = {
        "name": "scale_result",
        "description": "Evaluate a math expression and multiply the result by a factor.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}, "factor": {"type": "number"}},
            "required": ["expression", "factor"],
        },
    }
    message = OfflineChatModel().bind_tools([scale]).invoke("evaluate 2*3 and scale by 10")
    assert message.tool_calls[0]["args"] == {"expression": "2*3", "factor": 10}


@pytest.mark.parametrize("text", ["hello", "Hi there!", "good morning"])
def test_greeting_calls_no_tool(text: str) -> None:
    message = _model().invoke(text)
    assert message.tool_calls == []
    assert "offline stand-in" in message.text
    for name in TOOL_NAMES:
        assert name in message.text


@pytest.mark.parametrize(
    "text",
    ["tell me a joke about penguins", "how are you today?", "what's the current price of gold"],
)
def test_chit_chat_calls_no_tool(text: str) -> None:
    message = _model().invoke(text)
    assert message.tool_calls == []
    assert "stand-in" in message.text
    assert "couldn't match" in message.text
    assert "calculator" in message.text


def test_min_tool_score_is_configurable() -> None:
    strict = OfflineChatModel(min_tool_score=100).bind_tools(TOOLS)
    assert strict.invoke("what time is it").tool_calls == []
    assert _model().invoke("what time is it").tool_calls


def test_two_clauses_give_parallel_calls_with_distinct_ids() -> None:
    message = _model().invoke("what is 2+2 and what time is it in Asia/Tokyo")
    calls = [(c["name"], c["args"]) for c in message.tool_calls]
    assert calls == [
        ("calculator", {"expression": "2+2"}),
        ("current_time", {"timezone": "Asia/Tokyo"}),
    ]
    ids = [c["id"] for c in message.tool_calls]
    assert len(set(ids)) == 2


def test_parallel_calls_can_be_disabled() -> None:
    message = _model(parallel_tool_calls=False).invoke("what is 2+2 and what time is it")
    assert len(message.tool_calls) == 1


def test_tool_choice_none_and_forced() -> None:
    assert _model(tool_choice="none").invoke("what is 2+2").tool_calls == []
    forced = _model(tool_choice="current_time").invoke("hello")
    assert [c["name"] for c in forced.tool_calls] == ["current_time"]
    anything = _model(tool_choice="any").invoke("what is 6*7")
    assert [c["name"] for c in anything.tool_calls] == ["calculator"]


def test_call_ids_are_deterministic_per_conversation() -> None:
    first = _model().invoke("what is 17*23").tool_calls[0]["id"]
    again = OfflineChatModel().bind_tools(TOOLS).invoke("what is 17*23").tool_calls[0]["id"]
    other = _model().invoke("what is 17*24").tool_calls[0]["id"]
    assert first == again
    assert first != other


# ------------------------------------------------------------ tool results


def _call_and_run(text: str) -> list[BaseMessage]:
    human = HumanMessage(text)
    ai = _model().invoke([human])
    tools = {"calculator": calculator, "current_time": current_time}
    results = [tools[c["name"]].invoke(c) for c in ai.tool_calls]
    return [human, ai, *results]


def test_final_answer_from_tool_result() -> None:
    conversation = _call_and_run("what is 17*23")
    assert conversation[-1].content == "391"
    answer = _model().invoke(conversation)
    assert answer.tool_calls == []
    assert "391" in answer.text
    assert "calculator" in answer.text
    assert "17*23" in answer.text


def test_final_answer_names_every_tool() -> None:
    conversation = _call_and_run("what is 2+2 and what time is it in Asia/Tokyo")
    answer = _model().invoke(conversation)
    assert answer.tool_calls == []
    assert "calculator" in answer.text and "4" in answer.text
    assert "current_time" in answer.text and "2030-01-01T12:00:00 Asia/Tokyo" in answer.text


def test_error_tool_message_is_reported() -> None:
    human = HumanMessage("what is 1/0")
    ai = _model().invoke([human])
    error = ToolMessage(
        "ZeroDivisionError: division by zero",
        tool_call_id=ai.tool_calls[0]["id"],
        name="calculator",
        status="error",
    )
    answer = _model().invoke([human, ai, error])
    assert answer.tool_calls == []
    assert "calculator" in answer.text
    assert "failed" in answer.text
    assert "division by zero" in answer.text


def test_old_tool_results_do_not_block_a_new_request() -> None:
    conversation = [*_call_and_run("what is 17*23"), AIMessage("391")]
    message = _model().invoke([*conversation, HumanMessage("what time is it in Asia/Tokyo")])
    assert [c["args"] for c in message.tool_calls] == [{"timezone": "Asia/Tokyo"}]


def test_agent_loop_terminates_in_a_graph() -> None:
    model = _model()
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([calculator, current_time]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile()
    out = app.invoke(
        {"messages": [HumanMessage("what is 17*23 and what time is it?")]},
        {"recursion_limit": 10},
    )
    kinds = [m.type for m in out["messages"]]
    assert kinds == ["human", "ai", "tool", "tool", "ai"]
    assert "391" in out["messages"][-1].text


# ------------------------------------------------------------------- facts


def test_facts_from_history_are_acknowledged_and_recalled() -> None:
    model = _model()
    history: list[BaseMessage] = []
    for statement in [
        "Hi, my name is Ada and I like tea",
        "I am 30 years old",
        "remember that my dog is Rex",
    ]:
        history.append(HumanMessage(statement))
        reply = model.invoke(history)
        assert reply.tool_calls == []
        assert reply.text.startswith("Noted:")
        history.append(reply)
    assert "your name is Ada" in history[1].text

    def ask(question: str) -> str:
        return model.invoke([*history, HumanMessage(question)]).text

    assert ask("what is my name?") == "Your name is Ada."
    assert "Rex" in ask("what's my dog called")
    assert "tea" in ask("what do I like?")
    assert "30" in ask("how old am I?")
    assert "don't know" in ask("where do I live?")


def test_later_fact_replaces_earlier_one() -> None:
    history = [
        HumanMessage("my name is Ada"),
        AIMessage("Noted."),
        HumanMessage("actually, call me Grace"),
        AIMessage("Noted."),
        HumanMessage("what is my name?"),
    ]
    assert OfflineChatModel().invoke(history).text == "Your name is Grace."


def test_facts_from_system_memory_block() -> None:
    system = SystemMessage(
        "You are a helpful assistant.\n\n"
        "Known facts about the user:\n"
        "- The user's name is Grace\n"
        "- User likes jazz\n"
        "- Has a cat named Tom\n"
        "\nBe brief."
    )
    model = _model()
    assert model.invoke([system, HumanMessage("what is my name?")]).text == "Your name is Grace."
    assert "jazz" in model.invoke([system, HumanMessage("what do I like?")]).text
    assert "Tom" in model.invoke([system, HumanMessage("what's my cat called?")]).text


def test_fallback_mentions_a_related_fact() -> None:
    history = [HumanMessage("I like green tea"), AIMessage("Noted."), HumanMessage("tea ideas")]
    reply = _model().invoke(history)
    assert reply.tool_calls == []
    assert "you like green tea" in reply.text


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("text", ["hello", "what is my name?"])
def test_stream_text_matches_invoke(text: str) -> None:
    model = _model()
    invoked = model.invoke(text)
    chunks = list(model.stream(text))
    assert len(chunks) > 3
    merged = _merge(chunks)
    assert merged.content == invoked.content
    assert merged.tool_calls == []
    assert merged.usage_metadata == invoked.usage_metadata
    assert [c.usage_metadata is not None for c in chunks].count(True) == 1
    assert merged.response_metadata["model_name"] == "bulwark-offline"


def test_stream_tool_calls_match_invoke() -> None:
    model = _model()
    text = "what is 2+2 and what time is it in Asia/Tokyo"
    invoked = model.invoke(text)
    chunks = list(model.stream(text))
    assert any(c.tool_call_chunks for c in chunks)
    merged = _merge(chunks)
    assert merged.tool_calls == invoked.tool_calls
    assert merged.usage_metadata == invoked.usage_metadata


def test_stream_reports_tokens_to_callbacks() -> None:
    class Collect(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    handler = Collect()
    chunks = list(_model().stream("hello", config={"callbacks": [handler]}))
    assert "".join(handler.tokens) == _merge(chunks).content
    assert len(handler.tokens) > 3


def test_usage_metadata() -> None:
    messages = [SystemMessage("x"), HumanMessage("what is 17*23")]
    message = _model().invoke(messages)
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] >= len(messages)
    assert usage["output_tokens"] >= 1
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert message.response_metadata["model_name"] == "bulwark-offline"
    longer = _model().invoke([*messages, AIMessage("a" * 400), HumanMessage("hello")])
    assert longer.usage_metadata is not None
    assert longer.usage_metadata["input_tokens"] >= usage["input_tokens"] + 100


def test_stop_sequence_truncates_text() -> None:
    text = OfflineChatModel().invoke("hello", stop=["offline"]).text
    assert text and "offline" not in text


def test_deterministic() -> None:
    conversations: list[Any] = [
        "what is 17*23",
        "hello",
        "what is 2+2 and what time is it",
        "tell me a joke",
        [HumanMessage("my name is Ada"), AIMessage("Noted."), HumanMessage("what is my name")],
    ]
    for conversation in conversations:
        a = OfflineChatModel().bind_tools(TOOLS).invoke(conversation)
        b = OfflineChatModel().bind_tools(TOOLS).invoke(conversation)
        assert (a.content, a.tool_calls, a.usage_metadata) == (
            b.content,
            b.tool_calls,
            b.usage_metadata,
        )


async def test_ainvoke_and_astream() -> None:
    model = _model()
    message = await model.ainvoke("what time is it in Europe/Paris")
    assert [c["args"] for c in message.tool_calls] == [{"timezone": "Europe/Paris"}]
    chunks = [c async for c in model.astream("hello")]
    assert len(chunks) > 3
    assert _merge(chunks).content == (await model.ainvoke("hello")).content


# ------------------------------------------------------------------ helpers


def test_matching_helpers() -> None:
    assert _matching.stem("calculator") == _matching.stem("calculate")
    assert _matching.words("getCurrentTime snake_case") == [
        "get",
        "current",
        "time",
        "snake",
        "case",
    ]
    expr = _matching.find_expression(_matching.normalize_arithmetic("is 7 times 6 minus 2?"))
    assert expr is not None and expr.value == "7 * 6 - 2"
    assert _matching.find_expression("meet on 2024-01-05") is None
    zones = _matching.find_timezones("in america/new_york please")
    assert [z.value for z in zones] == ["America/New_York"]


# ------------------------------------------------------------ argument filling


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _args(tool: dict, text: str) -> dict[str, Any]:
    (call,) = OfflineChatModel().bind_tools([tool], tool_choice="any").invoke(text).tool_calls
    return call["args"]


RECTANGLE = _tool(
    "rectangle_area",
    "Area of a rectangle.",
    {
        "width": {"type": "number", "description": "Width in meters."},
        "length": {"type": "number", "description": "Length in meters."},
        "unit": {"type": "string", "description": "The unit of measure used."},
    },
    ["width", "length"],
)
SQUARE = _tool(
    "square_area",
    "Area of a square.",
    {"side": {"type": "number", "description": "Side in meters."}},
    ["side"],
)
TRIP = _tool(
    "plan_trip",
    "Plan a trip between two cities.",
    {
        "origin": {"type": "string", "description": "Starting city."},
        "destination": {"type": "string", "description": "End city."},
        "travelers": {"type": "integer", "description": "Number of travelers."},
        "budget": {"type": "integer", "description": "Budget in USD."},
        "date": {"type": "string", "description": "Departure date, YYYY-MM-DD."},
        "avoid_tolls": {"type": "boolean", "description": "Avoid toll roads."},
        "mode": {"type": "string", "enum": ["car", "train", "plane"]},
    },
    ["origin", "destination"],
)
STATS = _tool(
    "mean_and_rate",
    "Mean of samples and a growth rate.",
    {
        "samples": {"type": "array", "items": {"type": "number"}},
        "rate": {"type": "number", "description": "Growth rate as a decimal."},
        "years": {"type": "integer", "description": "Number of years."},
    },
    ["samples"],
)


@pytest.mark.parametrize(
    ("tool", "text", "expected"),
    [
        # the words near a number say which argument it is, whatever the order
        (
            RECTANGLE,
            "area of a rectangle with a length of 7 m and a width of 3 m",
            {"width": 3, "length": 7, "unit": "m"},
        ),
        # units are converted to the one the description names
        (SQUARE, "area of a square whose side is 250 cm", {"side": 2.5}),
        (
            TRIP,
            "plan a trip from Paris to Berlin for three travelers by train on March 3, 2025 "
            "with a budget of $1,200, avoiding tolls",
            {
                "origin": "Paris",
                "destination": "Berlin",
                "travelers": 3,
                "budget": 1200,
                "date": "2025-03-03",
                "avoid_tolls": True,
                "mode": "train",
            },
        ),
        # optional arguments the request does not mention stay out
        (TRIP, "plan a trip between Rome and Milan", {"origin": "Rome", "destination": "Milan"}),
        (
            STATS,
            "mean of 4, 8 and 15 with 5% growth over ten years",
            {"samples": [4.0, 8.0, 15.0], "rate": 0.05, "years": 10},
        ),
        (STATS, "average of [1.5, 2.5] please", {"samples": [1.5, 2.5]}),
    ],
)
def test_arguments_from_the_request(tool: dict, text: str, expected: dict[str, Any]) -> None:
    assert _args(tool, text) == expected
