"""The tool registry: registration, validation, breaker, timeouts, retries, concurrency,
stats, and the BFCL schema dialect. Backoff and breaker time are faked; only the timeout
tests wait (50 ms)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool, ToolException, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.types import Command

from bulwark.settings import load_settings
from bulwark.tools import registry as registry_module
from bulwark.tools.idempotency import CONFIG_KEY, idempotency_key
from bulwark.tools.policy import ToolPolicy, TransientToolError
from bulwark.tools.registry import ToolRegistry
from bulwark.tools.schema import normalize_schema, tool_from_schema

BFCL = Path(__file__).parents[1] / "evals" / "datasets" / "bfcl_simple_python.jsonl"


class FakeTime:
    """Clock, sleep and async sleep that move fake time instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class TopOfRange(random.Random):
    """Jitter at its maximum, so a backoff equals its exponential delay."""

    def random(self) -> float:
        return 1.0


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def registry(fake: FakeTime) -> ToolRegistry:
    return ToolRegistry(
        clock=fake.clock, sleep=fake.sleep, async_sleep=fake.async_sleep, rng=TopOfRange()
    )


Runner = Callable[..., Awaitable[ToolMessage]]


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, registry: ToolRegistry) -> Runner:
    """Runs a tool call through ``registry.run`` or ``registry.arun`` (both must agree)."""

    async def runner(name: str, args: Any = None, *, id: str = "call-1", **kw: Any) -> ToolMessage:
        tool_call = {"name": name, "args": {} if args is None else args, "id": id}
        if request.param == "sync":
            return await asyncio.to_thread(registry.run, tool_call, **kw)
        return await registry.arun(tool_call, **kw)

    return runner


def triangle_area(base: int, height: int, unit: str = "units") -> str:
    """Area of a triangle.

    Args:
        base: the base of the triangle.
        height: the height of the triangle.
        unit: unit of length.
    """
    return f"{base * height / 2} {unit}^2"


def both(name: str, sync: Callable[..., Any], coro: Callable[..., Any]) -> StructuredTool:
    """A tool with a sync and an async implementation, for tests run in both modes."""
    return StructuredTool.from_function(func=sync, coroutine=coro, name=name)


# -- registration --------------------------------------------------------------------------


async def test_plain_function_registers_with_its_docstring(
    registry: ToolRegistry, call: Runner
) -> None:
    registered = registry.register(triangle_area)
    assert registry.tools == [registered] and registry.get("triangle_area") is registered
    assert registered.args["base"]["description"] == "the base of the triangle."
    reply = await call("triangle_area", {"base": 10, "height": 5})
    assert (reply.status, reply.content, reply.name, reply.tool_call_id) == (
        "success", "25.0 units^2", "triangle_area", "call-1"
    )
    assert reply.artifact == {"duration_ms": 0.0, "attempts": 1, "breaker": "closed"}


async def test_async_function_registers(registry: ToolRegistry) -> None:
    async def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    registry.register(shout)
    reply = await registry.arun({"name": "shout", "args": {"text": "hi"}, "id": "1"})
    assert reply.content == "HI"


async def test_langchain_tool_registers_as_is(registry: ToolRegistry, call: Runner) -> None:
    @tool
    def echo(text: str) -> str:
        """Echo a text."""
        return text

    assert registry.register(echo) is echo
    assert (await call("echo", {"text": "x"})).content == "x"


async def test_json_schema_spec_registers_with_a_handler(
    registry: ToolRegistry, call: Runner
) -> None:
    spec = {
        "name": "math.factorial",
        "description": "Factorial of a number.",
        "parameters": {
            "type": "dict",
            "properties": {"number": {"type": "integer"}},
            "required": ["number"],
        },
    }

    def factorial(number: int) -> str:
        result = 1
        for n in range(2, number + 1):
            result *= n
        return str(result)

    registered = registry.register(spec, handler=factorial)
    assert registered.name == "math_factorial"
    assert registered.metadata == {"original_name": "math.factorial"}
    assert (await call("math_factorial", {"number": 5})).content == "120"
    openai = convert_to_openai_tool(registered)["function"]
    assert openai["name"] == "math_factorial"
    assert openai["parameters"]["type"] == "object"


async def test_schema_only_tool_says_it_has_no_implementation(
    registry: ToolRegistry, call: Runner
) -> None:
    registry.register({"type": "function", "function": {"name": "lookup", "parameters": {}}})
    reply = await call("lookup")
    assert reply.status == "error"
    assert reply.content == "tool 'lookup' has no implementation here (schema-only tool)"


def test_async_handler_makes_an_async_tool(registry: ToolRegistry) -> None:
    async def handler(**kwargs: Any) -> str:
        return "ok"

    registered = registry.register({"name": "remote", "parameters": {}}, handler=handler)
    assert registered.coroutine is handler and registered.func is None


def test_registration_errors(registry: ToolRegistry) -> None:
    registry.register(triangle_area)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(triangle_area)
    registry.register({"name": "a.b", "parameters": {}})
    with pytest.raises(ValueError, match="'a_b' is already registered"):
        registry.register({"name": "a_b", "parameters": {}})
    with pytest.raises(ValueError, match="not accepted by model providers"):
        registry.register(triangle_area, name="triangle area")
    with pytest.raises(ValueError, match="invalid argument schema"):
        registry.register({"name": "bad", "parameters": {"properties": {"x": {"type": "strng"}}}})
    with pytest.raises(ValueError, match="non-empty name"):
        registry.register({"parameters": {}})
    with pytest.raises(TypeError, match="only for JSON-schema specs"):
        registry.register(triangle_area, name="other", handler=print)
    with pytest.raises(TypeError, match="cannot register int"):
        registry.register(42)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown tool 'nope'; available: a_b, triangle_area"):
        registry.policy("nope")


async def test_register_under_another_name(registry: ToolRegistry, call: Runner) -> None:
    @tool
    def echo(text: str) -> str:
        """Echo a text."""
        return text

    registry.register(echo, name="repeat")
    registry.register(triangle_area, name="area")
    assert [t.name for t in registry.tools] == ["repeat", "area"]
    assert echo.name == "echo"  # the original tool is untouched
    assert (await call("repeat", {"text": "x"})).content == "x"


def test_policies_come_from_settings(fake: FakeTime) -> None:
    settings = load_settings(
        tool_timeout_s=9,
        approval_tools=("triangle_area",),
        tool_policies={"triangle_area": {"retries": 0}, "echo": {"max_concurrency": 1}},
    )
    registry = ToolRegistry(settings=settings, clock=fake.clock)
    def echo(text: str) -> str:
        """Echo a text."""
        return text

    registry.register(triangle_area)
    registry.register(echo, policy=ToolPolicy(timeout_s=2))
    area = registry.policy("triangle_area")
    assert (area.timeout_s, area.retries, area.requires_approval) == (9, 0, True)
    echo = registry.policy("echo")
    assert (echo.timeout_s, echo.max_concurrency, echo.requires_approval) == (2, 1, False)


def test_explicit_policy_without_settings(registry: ToolRegistry) -> None:
    registry.register(triangle_area, policy=ToolPolicy(retries=0))
    assert registry.policy("triangle_area").retries == 0


# -- the BFCL dialect ----------------------------------------------------------------------


def test_normalize_schema_rewrites_the_bfcl_dialect_recursively() -> None:
    params = {
        "type": "dict",
        "properties": {
            "ratio": {"type": "float"},
            "point": {"type": "tuple", "items": {"type": "float"}},
            "pair": {"type": "array", "items": [{"type": "float"}, {"type": "dict"}]},
            "data": {"type": "any"},
            "maybe": {"type": ["float", "null"]},
            "loose": {"type": ["any", "string"]},
            "table": {"type": "dict", "additionalProperties": {"type": "float"}},
            "either": {"anyOf": [{"type": "float"}, {"type": "string"}]},
            "name": {"type": "string", "enum": ["a", "b"]},
        },
        "required": ["ratio"],
    }
    original = json.loads(json.dumps(params))
    normalized = normalize_schema(params)
    assert params == original  # not modified in place
    props = normalized["properties"]
    assert normalized["type"] == "object" and normalized["required"] == ["ratio"]
    assert props["ratio"] == {"type": "number"}
    assert props["point"] == {"type": "array", "items": {"type": "number"}}
    assert props["pair"]["items"] == [{"type": "number"}, {"type": "object"}]
    assert props["data"] == {}
    assert props["maybe"] == {"type": ["number", "null"]}
    assert props["loose"] == {}
    assert props["table"]["additionalProperties"] == {"type": "number"}
    assert props["either"]["anyOf"] == [{"type": "number"}, {"type": "string"}]
    assert props["name"] == {"type": "string", "enum": ["a", "b"]}


def _ground_truth_args(answers: dict[str, list[Any]], schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments from a BFCL ground truth: each argument's first accepted value.

    The empty string in an accepted-values list is BFCL's "may be omitted" marker: an
    optional argument whose first accepted value is the marker is left out, and markers
    are otherwise skipped (simple_python_200 marks a *required* argument so). Nested
    objects hold accepted-values lists too and follow the same rule with their schema.
    Omitting rather than skipping to the next value matters in simple_python_307, whose
    optional string ``venue`` lists ``["", true]``.
    """
    required = set(schema.get("required", []))
    args = {}
    for key, accepted in answers.items():
        if accepted[0] == "" and key not in required:
            continue
        value = next(v for v in accepted if v != "")
        args[key] = _ground_truth_value(value, schema.get("properties", {}).get(key, {}))
    return args


def _ground_truth_value(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return _ground_truth_args(value, schema)
    if isinstance(value, list):
        return [_ground_truth_value(v, schema.get("items", {})) for v in value]
    return value


def test_every_bfcl_simple_python_function_registers_and_accepts_its_ground_truth() -> None:
    rows = [json.loads(line) for line in BFCL.read_text().splitlines() if line.strip()]
    assert len(rows) == 400
    checked = 0
    for row in rows:
        registry = ToolRegistry()
        specs = {spec["name"]: spec for spec in row["functions"]}
        for spec in specs.values():
            registered = registry.register(spec)
            assert registered.metadata["original_name"] == spec["name"]
        for original, answers in row["ground_truth"][0].items():
            (match,) = [t for t in registry.tools if t.metadata["original_name"] == original]
            args = _ground_truth_args(answers, normalize_schema(specs[original]["parameters"]))
            assert registry.validate(match.name, args) == [], (row["id"], args)
            checked += 1
    assert checked == 400


async def test_bfcl_call_passes_validation_then_reaches_the_missing_implementation() -> None:
    row = json.loads(BFCL.read_text().splitlines()[83])  # calculate_distance: tuples of floats
    registry = ToolRegistry()
    registry.register(row["functions"][0])
    good = _ground_truth_args(
        row["ground_truth"][0]["calculate_distance"],
        normalize_schema(row["functions"][0]["parameters"]),
    )
    reply = await registry.arun({"name": "calculate_distance", "args": good, "id": "c"})
    assert "has no implementation" in reply.content
    bad = {**good, "coord1": [33.4, "N"]}
    reply = await registry.arun({"name": "calculate_distance", "args": bad, "id": "c"})
    assert reply.content == (
        "invalid arguments for calculate_distance: "
        "argument 'coord1[1]': 'N' is not of type 'number'"
    )


# -- validation ----------------------------------------------------------------------------


@pytest.fixture
def measured(registry: ToolRegistry) -> list[dict[str, Any]]:
    """A JSON-schema tool with nested, enum and required arguments; records its calls."""
    calls: list[dict[str, Any]] = []

    def handler(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "ok"

    registry.register(
        {
            "name": "paint",
            "parameters": {
                "type": "dict",
                "properties": {
                    "area": {
                        "type": "dict",
                        "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
                        "required": ["width", "height"],
                    },
                    "coats": {"type": "integer"},
                    "finish": {"type": "string", "enum": ["matte", "gloss"]},
                    "points": {"type": "array", "items": {"type": "float"}},
                },
                "required": ["area", "coats"],
            },
        },
        handler=handler,
        policy=ToolPolicy(failure_threshold=1),
    )
    return calls


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"area": {"width": 2, "height": 3}, "coats": "two"},
         "argument 'coats': 'two' is not of type 'integer'"),
        ({"area": {"width": 2, "height": 3}},
         "missing required argument 'coats'"),
        ({"area": {"width": 2}, "coats": 1},
         "missing required argument 'area.height'"),
        ({"area": {"width": 2, "height": 3}, "coats": 1, "finish": "satin"},
         "argument 'finish': 'satin' is not one of ['matte', 'gloss']"),
        ({"area": {"width": 2, "height": 3}, "coats": 1, "points": [1.5, "x"]},
         "argument 'points[1]': 'x' is not of type 'number'"),
        ({}, "missing required argument 'area'; missing required argument 'coats'"),
    ],
)
async def test_invalid_arguments_are_refused_naming_argument_and_rule(
    registry: ToolRegistry, call: Runner, measured: list[dict[str, Any]],
    args: dict[str, Any], problem: str,
) -> None:
    reply = await call("paint", args)
    assert reply.status == "error"
    assert reply.content == f"invalid arguments for paint: {problem}"
    assert reply.artifact["attempts"] == 0
    assert measured == []  # the tool never ran
    assert registry.stats()["paint"]["breaker"] == "closed"  # threshold 1, not counted


async def test_arguments_that_are_not_an_object(registry: ToolRegistry, call: Runner) -> None:
    registry.register(triangle_area)
    reply = await call("triangle_area", ["10", "5"])
    assert reply.content == (
        "invalid arguments for triangle_area: arguments: ['10', '5'] is not of type 'object'"
    )


async def test_validation_is_strict_for_pydantic_tools_too(
    registry: ToolRegistry, call: Runner
) -> None:
    registry.register(triangle_area)
    reply = await call("triangle_area", {"base": "10", "height": 5})
    assert reply.content == (
        "invalid arguments for triangle_area: argument 'base': '10' is not of type 'integer'"
    )
    assert registry.validate("triangle_area", {"base": 10, "height": 5}) == []


async def test_valid_arguments_reach_the_tool(
    call: Runner, measured: list[dict[str, Any]]
) -> None:
    args = {"area": {"width": 2, "height": 3}, "coats": 2, "finish": "matte"}
    assert (await call("paint", args)).content == "ok"
    assert measured == [args]


# -- outcomes ------------------------------------------------------------------------------


async def test_unknown_tool(registry: ToolRegistry, call: Runner) -> None:
    registry.register(triangle_area)
    reply = await call("triangle_areas", {"base": 1})
    assert reply.status == "error"
    assert reply.content == "unknown tool 'triangle_areas'; available: triangle_area"
    assert reply.artifact == {"duration_ms": 0.0, "attempts": 0, "breaker": None}
    assert "triangle_areas" not in registry.stats()


async def test_exceptions_become_error_messages_without_retry(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    runs: list[str] = []

    def broken(kind: str) -> str:
        """Fail."""
        runs.append(kind)
        if kind == "tool":
            raise ToolException("no such city: Atlantis")
        raise ValueError("boom")

    registry.register(broken, policy=ToolPolicy(retries=3))
    reply = await call("broken", {"kind": "value"})
    assert (reply.status, reply.content) == ("error", "ValueError: boom")
    assert reply.artifact["attempts"] == 1
    reply = await call("broken", {"kind": "tool"})
    assert (reply.status, reply.content) == ("error", "no such city: Atlantis")
    assert runs == ["value", "tool"] and fake.sleeps == []


async def test_a_tools_handled_error_stays_an_error(registry: ToolRegistry, call: Runner) -> None:
    def picky(x: int) -> str:
        """Fail politely."""
        raise ToolException("x must be even")

    registry.register(
        StructuredTool.from_function(picky, handle_tool_error=True),
        policy=ToolPolicy(failure_threshold=1),
    )
    reply = await call("picky", {"x": 1})
    assert (reply.status, reply.content) == ("error", "x must be even")
    assert reply.artifact["breaker"] == "open"


async def test_a_tool_returning_a_command_is_an_error(registry: ToolRegistry, call: Runner) -> None:
    def jump() -> Command:
        """Jump elsewhere."""
        return Command(goto="elsewhere")

    registry.register(jump)
    reply = await call("jump")
    assert (reply.status, reply.content) == ("error", "jump returned a Command, not a message")


async def test_the_tools_own_artifact_is_kept(registry: ToolRegistry, call: Runner) -> None:
    def query() -> tuple[str, dict[str, int]]:
        """Run a query."""
        return "3 rows", {"rows": 3}

    registry.register(StructuredTool.from_function(query, response_format="content_and_artifact"))
    reply = await call("query")
    assert reply.content == "3 rows"
    assert reply.artifact == {
        "duration_ms": 0.0, "attempts": 1, "breaker": "closed", "tool_artifact": {"rows": 3}
    }


async def test_config_reaches_the_tool_with_an_idempotency_key(
    registry: ToolRegistry, call: Runner
) -> None:
    def whoami(config: RunnableConfig) -> str:
        """Report the run's key and user."""
        return f"{idempotency_key(config)}|{config['configurable']['user']}"

    class Seen(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tools: list[str] = []

        def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
            self.tools.append(serialized["name"])

    registry.register(whoami)
    seen = Seen()
    config: RunnableConfig = {
        "configurable": {"thread_id": "t1", "user": "ada"},
        "callbacks": [seen],
    }
    assert (await call("whoami", config=config)).content == "t1:call-1|ada"
    assert seen.tools == ["whoami"]
    keyed: RunnableConfig = {"configurable": {CONFIG_KEY: "given", "user": "bob"}}
    assert (await call("whoami", config=keyed)).content == "given|bob"


# -- retries -------------------------------------------------------------------------------


def flaky_tool(failures: list[BaseException], runs: list[int]) -> StructuredTool:
    """A tool that raises the queued exceptions, then succeeds."""

    def flaky() -> str:
        """Sometimes fail."""
        runs.append(1)
        if failures:
            raise failures.pop(0)
        return "done"

    async def aflaky() -> str:
        return flaky()

    return both("flaky", flaky, aflaky)


async def test_transient_error_is_retried_with_backoff(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    runs: list[int] = []
    registry.register(
        flaky_tool([ConnectionResetError("reset by peer")], runs),
        policy=ToolPolicy(retries=2, backoff_s=0.5),
    )
    reply = await call("flaky")
    assert (reply.status, reply.content) == ("success", "done")
    assert reply.artifact["attempts"] == 2
    assert len(runs) == 2 and fake.sleeps == [0.5]
    assert reply.artifact["duration_ms"] == 500.0  # the backoff, in fake time


async def test_retries_stop_after_the_policy_allows(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    runs: list[int] = []
    failures: list[BaseException] = [TransientToolError(f"busy {n}") for n in range(5)]
    registry.register(flaky_tool(failures, runs), policy=ToolPolicy(retries=2, backoff_s=0.5))
    reply = await call("flaky")
    assert (reply.status, reply.content) == ("error", "busy 2 (after 3 attempts)")
    assert reply.artifact["attempts"] == 3 and len(runs) == 3
    assert fake.sleeps == [0.5, 1.0]


async def test_side_effecting_tool_is_not_retried(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    runs: list[int] = []
    registry.register(
        flaky_tool([TimeoutError("upstream slow")], runs),
        policy=ToolPolicy(retries=3, idempotent=False),
    )
    reply = await call("flaky")
    assert (reply.content, reply.artifact["attempts"]) == ("TimeoutError: upstream slow", 1)
    assert len(runs) == 1 and fake.sleeps == []


# -- timeouts ------------------------------------------------------------------------------


def hanging_tool(release: threading.Event, started: list[int]) -> StructuredTool:
    """A tool that waits until ``release`` is set (the test sets it when done)."""

    def hang() -> str:
        """Wait for ever."""
        started.append(1)
        release.wait(5)
        return "released"

    async def ahang() -> str:
        started.append(1)
        await asyncio.Event().wait()  # never set
        return "unreachable"

    return both("hang", hang, ahang)


async def test_an_attempt_that_runs_too_long_times_out_and_is_retried(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    release, started = threading.Event(), []
    registry.register(
        hanging_tool(release, started), policy=ToolPolicy(timeout_s=0.05, retries=1, backoff_s=1)
    )
    try:
        reply = await call("hang")
    finally:
        release.set()
    assert reply.status == "error"
    assert reply.content == "hang timed out after 0.05 s (after 2 attempts)"
    assert reply.artifact["attempts"] == 2 and len(started) == 2
    assert fake.sleeps == [1.0]


async def test_sync_timeout_includes_waiting_for_a_slot(
    registry: ToolRegistry, fake: FakeTime
) -> None:
    release, started = threading.Event(), []
    registry.register(
        hanging_tool(release, started),
        policy=ToolPolicy(timeout_s=0.05, retries=0, max_concurrency=1),
    )
    try:
        first, second = await asyncio.gather(
            asyncio.to_thread(registry.run, {"name": "hang", "args": {}, "id": "1"}),
            asyncio.to_thread(registry.run, {"name": "hang", "args": {}, "id": "2"}),
        )
    finally:
        release.set()
    assert first.content == second.content == "hang timed out after 0.05 s"
    await asyncio.sleep(0.1)  # time for the slot to pass to the second call's thread
    assert len(started) == 1  # which sees its caller gave up, and does not run the tool


async def test_cancellation_propagates(registry: ToolRegistry) -> None:
    entered = asyncio.Event()

    async def wait() -> str:
        """Wait until cancelled."""
        entered.set()
        await asyncio.Event().wait()
        return "unreachable"

    registry.register(wait, policy=ToolPolicy(retries=3))
    task = asyncio.create_task(registry.arun({"name": "wait", "args": {}, "id": "1"}))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- circuit breaker -----------------------------------------------------------------------


def failing_tool(outcomes: list[str], runs: list[int]) -> StructuredTool:
    """Fails with ValueError while ``outcomes`` pops "fail", succeeds on anything else."""

    def service() -> str:
        """Call the service."""
        runs.append(1)
        if outcomes.pop(0) == "fail":
            raise ValueError("service down")
        return "up"

    async def aservice() -> str:
        return service()

    return both("service", service, aservice)


async def test_breaker_opens_refuses_then_trial_success_closes(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    runs: list[int] = []
    outcomes = ["fail", "fail", "ok", "ok"]
    registry.register(
        failing_tool(outcomes, runs), policy=ToolPolicy(failure_threshold=2, recovery_s=30)
    )
    assert (await call("service")).artifact["breaker"] == "closed"
    second = await call("service")
    assert second.artifact["breaker"] == "open"
    fake.advance(10)
    refused = await call("service")
    assert (refused.status, refused.content) == ("error", "circuit open for service, retry in 20 s")
    assert refused.artifact == {"duration_ms": 0.0, "attempts": 0, "breaker": "open"}
    assert len(runs) == 2  # refused without running
    fake.advance(20)
    assert registry.stats()["service"]["breaker"] == "half_open"
    trial = await call("service")
    assert (trial.status, trial.content, trial.artifact["breaker"]) == ("success", "up", "closed")
    assert (await call("service")).content == "up"


async def test_failed_trial_reopens_the_breaker(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    runs: list[int] = []
    registry.register(
        failing_tool(["fail", "fail"], runs), policy=ToolPolicy(failure_threshold=1, recovery_s=30)
    )
    await call("service")
    fake.advance(30)
    trial = await call("service")
    assert (trial.content, trial.artifact["breaker"]) == ("ValueError: service down", "open")
    assert (await call("service")).content == "circuit open for service, retry in 30 s"
    assert len(runs) == 2


async def test_half_open_breaker_lets_only_one_trial_through(
    registry: ToolRegistry, fake: FakeTime
) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    outcomes = ["fail"]

    async def trial() -> str:
        """A call that fails once, then blocks until the gate opens."""
        if outcomes:
            raise ValueError(outcomes.pop())
        entered.set()
        await gate.wait()
        return "up"

    registry.register(trial, policy=ToolPolicy(failure_threshold=1, recovery_s=30))
    await registry.arun({"name": "trial", "args": {}, "id": "0"})
    fake.advance(30)
    first = asyncio.create_task(registry.arun({"name": "trial", "args": {}, "id": "1"}))
    await entered.wait()
    second = await registry.arun({"name": "trial", "args": {}, "id": "2"})
    assert second.content == "circuit open for trial, retry in 30 s"
    gate.set()
    assert (await first).artifact["breaker"] == "closed"


# -- concurrency -----------------------------------------------------------------------------


async def test_async_concurrency_limit_is_honoured(registry: ToolRegistry) -> None:
    running, peak, release = 0, 0, asyncio.Event()
    two_running = asyncio.Event()

    async def busy() -> str:
        """Hold a slot until released."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            two_running.set()
        await release.wait()
        running -= 1
        return "ok"

    registry.register(busy, policy=ToolPolicy(max_concurrency=2))
    tasks = [
        asyncio.create_task(registry.arun({"name": "busy", "args": {}, "id": str(n)}))
        for n in range(5)
    ]
    await two_running.wait()
    for _ in range(20):  # let every waiting task try its luck
        await asyncio.sleep(0)
    assert running == 2
    release.set()
    replies = await asyncio.gather(*tasks)
    assert [r.content for r in replies] == ["ok"] * 5
    assert peak == 2


def test_sync_concurrency_limit_is_honoured(registry: ToolRegistry) -> None:
    lock, release = threading.Lock(), threading.Event()
    running, peak = 0, 0
    two_running = threading.Event()

    def busy() -> str:
        """Hold a slot until released."""
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 2:
                two_running.set()
        release.wait(5)
        with lock:
            running -= 1
        return "ok"

    registry.register(busy, policy=ToolPolicy(max_concurrency=2))
    replies: list[ToolMessage] = []
    def caller(n: int) -> None:
        replies.append(registry.run({"name": "busy", "args": {}, "id": str(n)}))

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for caller in callers:
        caller.start()
    assert two_running.wait(5)
    release.wait(0.05)  # give the other callers time to queue up (release is not set)
    with lock:
        assert running == 2
    release.set()
    for caller in callers:
        caller.join()
    assert [r.content for r in replies] == ["ok"] * 4
    assert peak == 2


# -- stats -----------------------------------------------------------------------------------


async def test_stats_count_calls_errors_and_latency(
    registry: ToolRegistry, call: Runner, fake: FakeTime
) -> None:
    def slow(ms: int) -> str:
        """Take ``ms`` milliseconds of fake time; fail on 0."""
        if ms == 0:
            raise ValueError("zero")
        fake.advance(ms / 1000)
        return "ok"

    registry.register(slow)
    assert registry.stats()["slow"] == {
        "calls": 0, "errors": 0, "latency_ms_p50": None, "latency_ms_p99": None,
        "breaker": "closed",
    }
    for ms in range(1, 101):
        await call("slow", {"ms": ms})
    await call("slow", {"ms": 0})
    await call("slow", {"ms": "fast"})  # refused: counted, but no latency
    stats = registry.stats()["slow"]
    assert (stats["calls"], stats["errors"]) == (102, 2)
    assert (stats["latency_ms_p50"], stats["latency_ms_p99"]) == (50.0, 99.0)
    assert stats["breaker"] == "closed"


async def test_latency_percentiles_cover_the_most_recent_calls(
    monkeypatch: pytest.MonkeyPatch, fake: FakeTime
) -> None:
    monkeypatch.setattr(registry_module, "LATENCY_WINDOW", 10)
    registry = ToolRegistry(clock=fake.clock)
    delay_s = 1.0

    async def tick() -> str:
        """Take ``delay_s`` of fake time."""
        fake.advance(delay_s)
        return "ok"

    registry.register(tick)
    for _ in range(10):
        await registry.arun({"name": "tick", "args": {}, "id": "x"})
    assert registry.stats()["tick"]["latency_ms_p50"] == 1000.0
    delay_s = 0.0
    for _ in range(10):
        await registry.arun({"name": "tick", "args": {}, "id": "x"})
    stats = registry.stats()["tick"]
    assert (stats["calls"], stats["latency_ms_p99"]) == (20, 0.0)


def test_tool_from_schema_without_registry() -> None:
    made = tool_from_schema({"name": "x" * 70 + ".y", "description": "d", "parameters": {}})
    assert made.name == "x" * 64 and made.description == "d"
    assert made.args == {}
