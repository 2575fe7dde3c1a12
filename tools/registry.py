"""The tool registry: every tool call goes through here.

:class:`ToolRegistry` holds the agent's tools, each with a :class:`~bulwark.tools.policy.
ToolPolicy`, and runs a model's tool call as: look the tool up → validate the arguments
against the tool's JSON schema → ask the tool's circuit breaker → wait for a concurrency
slot → run with a timeout → retry transient failures with backoff. Every outcome comes
back as a ``ToolMessage`` (``status="success"`` or ``"error"``) whose ``artifact`` holds
``duration_ms``, ``attempts`` and the breaker's state; nothing but cancellation raises, so
the model always gets a result it can react to. Approval is *not* done here: it needs
LangGraph's ``interrupt``, so the graph's tool node asks for it when
``registry.policy(name).requires_approval`` and then calls :meth:`ToolRegistry.arun`.

What comes from the ecosystem and what does not:

* tools are LangChain ``BaseTool`` s (plain functions go through
  ``StructuredTool.from_function``, JSON-schema specs through
  :func:`~bulwark.tools.schema.tool_from_schema`), so ``registry.tools`` binds to any chat
  model and the tools get the caller's callbacks and config;
* arguments are checked with ``jsonschema`` against the schema the model was shown
  (``tool_call_schema``), before anything runs: pydantic would coerce ``"10"`` into ``10``
  and its messages name pydantic internals, while a jsonschema error names the argument
  path and the broken rule, which is what a model needs to correct its call, and the same
  check serves tools whose schema is a plain dict (LangChain does not validate those);
* retries use ``tenacity`` (``Retrying``/``AsyncRetrying`` with injected sleep functions
  and a wait function using the injected random generator, since tenacity's jittered
  waits use the global ``random``);
* the circuit breaker is our own, see :mod:`bulwark.tools.policy` for why;
* the sync timeout runs the tool in a daemon thread and stops waiting for it: Python
  cannot kill a thread, and a ``ThreadPoolExecutor`` worker stuck in a hung tool would
  block interpreter exit. The thread holds its concurrency slot until the tool really
  returns, so ``max_concurrency`` bounds the tool's actual executions. The timeout of an
  attempt covers waiting for a slot too, in both modes.
* ``max_concurrency`` is counted separately for sync calls (a ``threading.BoundedSemaphore``)
  and for async calls in each event loop (an ``asyncio.Semaphore`` belongs to one loop).
  An async call of a sync-only tool runs in LangChain's executor thread, which a timeout
  abandons rather than stops.

Time is injected (``clock`` for durations and the breaker, ``sleep``/``async_sleep`` for
backoff, ``rng`` for jitter) so tests need no real sleeping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import math
import random
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from inspect import iscoroutinefunction
from typing import Any, TypedDict

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from bulwark.observability.langsmith import traced_tool_call
from bulwark.settings import Settings
from bulwark.tools.idempotency import CONFIG_KEY, make_key
from bulwark.tools.policy import BreakerState, CircuitBreaker, ToolPolicy, is_transient
from bulwark.tools.schema import tool_from_schema

log = logging.getLogger(__name__)
Clock = Callable[[], float]
Sleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]

#: Latencies kept per tool for the percentiles in :meth:`ToolRegistry.stats`.
LATENCY_WINDOW = 1024
_PROVIDER_SAFE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolTimeoutError(TimeoutError):
    """An attempt ran past its policy's ``timeout_s`` (transient, so it is retried)."""


class ToolStats(TypedDict):
    """One tool's figures since the registry was built (see :meth:`ToolRegistry.stats`)."""

    calls: int
    errors: int
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    breaker: str


@dataclass
class _Entry:
    """A registered tool with everything needed to run it."""

    tool: BaseTool
    policy: ToolPolicy
    validator: Validator
    breaker: CircuitBreaker
    sync_slots: threading.BoundedSemaphore
    async_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
        field(default_factory=weakref.WeakKeyDictionary)
    )
    calls: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def loop_slots(self) -> asyncio.Semaphore:
        """This event loop's semaphore (an ``asyncio.Semaphore`` belongs to one loop)."""
        loop = asyncio.get_running_loop()
        slots = self.async_slots.get(loop)
        if slots is None:
            slots = self.async_slots[loop] = asyncio.Semaphore(self.policy.max_concurrency)
        return slots


@dataclass(frozen=True)
class _Run:
    """A call that passed the checks and will execute."""

    entry: _Entry
    call: ToolCall
    config: RunnableConfig
    started: float


class ToolRegistry:
    """The agent's tools and the policies they run under.

    Args:
        settings: where policies come from (``tool_*`` defaults, ``approval_tools``,
            ``tool_policies`` overrides); without it, tools use :class:`ToolPolicy`'s
            defaults unless registered with an explicit policy.
        clock: monotonic seconds, for durations and the circuit breakers.
        sleep: waits between retries in :meth:`run`.
        async_sleep: waits between retries in :meth:`arun`.
        rng: source of the retry jitter.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        async_sleep: AsyncSleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._rng = rng or random.Random()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    # -- registration --------------------------------------------------------------------

    def register(
        self,
        obj: BaseTool | Callable[..., Any] | Mapping[str, Any],
        *,
        policy: ToolPolicy | None = None,
        name: str | None = None,
        handler: Callable[..., Any] | None = None,
    ) -> BaseTool:
        """Add a tool and return it as a LangChain tool.

        Args:
            obj: a LangChain ``BaseTool``; a typed function, sync or async, whose
                docstring (Google-style ``Args:`` included) describes it; or a JSON-schema
                function spec (see :func:`~bulwark.tools.schema.tool_from_schema`).
            policy: the tool's own policy; settings' ``approval_tools`` and
                ``tool_policies`` still apply on top of it.
            name: register under this name instead of the tool's own.
            handler: only for a spec: the function that implements it.

        Raises:
            ValueError: the name is taken or not accepted by model providers
                (``^[a-zA-Z0-9_-]{1,64}$``), the tool's argument schema is not valid JSON
                Schema, or the settings' overrides for it are invalid.
            TypeError: ``obj`` is none of the accepted kinds, or ``handler`` is given
                with something other than a spec.
        """
        tool = _as_tool(obj, name=name, handler=handler)
        if not _PROVIDER_SAFE_NAME.match(tool.name):
            raise ValueError(
                f"tool name {tool.name!r} is not accepted by model providers: "
                "use 1-64 letters, digits, '_' or '-'"
            )
        if self._settings is not None:
            policy = ToolPolicy.from_settings(self._settings, tool.name, base=policy)
        policy = policy or ToolPolicy()
        schema = args_json_schema(tool)
        validator_cls = validator_for(schema, default=Draft202012Validator)
        try:
            validator_cls.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(
                f"tool {tool.name!r} has an invalid argument schema: {exc.message}"
            ) from None
        entry = _Entry(
            tool=tool,
            policy=policy,
            validator=validator_cls(schema),
            breaker=CircuitBreaker(
                failure_threshold=policy.failure_threshold,
                recovery_s=policy.recovery_s,
                clock=self._clock,
            ),
            sync_slots=threading.BoundedSemaphore(policy.max_concurrency),
        )
        with self._lock:
            if tool.name in self._entries:
                raise ValueError(f"a tool named {tool.name!r} is already registered")
            self._entries[tool.name] = entry
        return tool

    @property
    def tools(self) -> list[BaseTool]:
        """The registered tools, in registration order (for ``model.bind_tools``)."""
        return [entry.tool for entry in self._entries.values()]

    def get(self, name: str) -> BaseTool:
        """The tool registered as ``name``.

        Raises:
            KeyError: no such tool.
        """
        return self._entry(name).tool

    def policy(self, name: str) -> ToolPolicy:
        """The policy tool ``name`` runs under.

        Raises:
            KeyError: no such tool.
        """
        return self._entry(name).policy

    def validate(self, name: str, args: Any) -> list[str]:
        """Problems with calling tool ``name`` with ``args``; empty when they are valid.

        Each problem names the argument path and the rule, e.g. ``argument 'base': 'ten'
        is not of type 'integer'`` or ``missing required argument 'height'``.

        Raises:
            KeyError: no such tool.
        """
        return _problems(self._entry(name).validator.iter_errors(args))

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown tool {name!r}; available: {', '.join(sorted(self._entries))}"
            ) from None

    # -- running ---------------------------------------------------------------------------

    @traced_tool_call
    async def arun(self, call: ToolCall, *, config: RunnableConfig | None = None) -> ToolMessage:
        """Run one tool call from a model and return its result as a ``ToolMessage``.

        ``config`` (the caller's callbacks, tags, ``configurable``...) reaches the tool;
        when it carries no idempotency key, one is added from its ``thread_id`` and the
        call id (see :mod:`bulwark.tools.idempotency`), the same for every retry. Only
        cancellation raises.
        """
        run = self._begin(call, config)
        if isinstance(run, ToolMessage):
            return run
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                **self._retry_options(run.entry.policy), sleep=self._async_sleep
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    result = await self._attempt_async(run)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the model
            return self._finish(run, exc, attempts)
        return self._finish(run, result, attempts)

    @traced_tool_call
    def run(self, call: ToolCall, *, config: RunnableConfig | None = None) -> ToolMessage:
        """Like :meth:`arun`, blocking: each attempt runs in a worker thread so its timeout
        holds even when the tool hangs."""
        run = self._begin(call, config)
        if isinstance(run, ToolMessage):
            return run
        attempts = 0
        try:
            for attempt in Retrying(**self._retry_options(run.entry.policy), sleep=self._sleep):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    result = self._attempt_sync(run)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the model
            return self._finish(run, exc, attempts)
        return self._finish(run, result, attempts)

    def _retry_options(self, policy: ToolPolicy) -> dict[str, Any]:
        """tenacity options shared by :meth:`run` and :meth:`arun`."""

        def wait(state: RetryCallState) -> float:
            return policy.backoff(state.attempt_number, rng=self._rng)

        return {
            "stop": stop_after_attempt(policy.attempts),
            "wait": wait,
            "retry": retry_if_exception(is_transient),
            "reraise": True,
        }

    async def _attempt_async(self, run: _Run) -> Any:
        timeout_s = run.entry.policy.timeout_s
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                async with run.entry.loop_slots():
                    return await run.entry.tool.ainvoke(run.call, config=run.config)
        except TimeoutError:
            if deadline.expired():
                raise _timeout(run, timeout_s) from None
            raise  # the tool's own TimeoutError

    def _attempt_sync(self, run: _Run) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        context = contextvars.copy_context()  # LangChain keeps the run's config here

        def work() -> None:
            with run.entry.sync_slots:
                if not future.set_running_or_notify_cancel():
                    return  # the caller gave up while this waited for a slot
                try:
                    future.set_result(context.run(run.entry.tool.invoke, run.call, run.config))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    future.set_exception(exc)

        threading.Thread(target=work, name=f"tool-{run.call['name']}", daemon=True).start()
        timeout_s = run.entry.policy.timeout_s
        done, _ = concurrent.futures.wait([future], timeout=timeout_s)
        if not done:
            future.cancel()  # stops it if still waiting for a slot
            raise _timeout(run, timeout_s)
        return future.result()

    def _begin(self, call: ToolCall, config: RunnableConfig | None) -> _Run | ToolMessage:
        """Checks before running: known tool, valid arguments, breaker closed."""
        started = self._clock()
        name, call_id, args = call["name"], call.get("id") or "", call.get("args", {})
        entry = self._entries.get(name)
        if entry is None:
            available = ", ".join(sorted(self._entries)) or "none"
            return _message(
                f"unknown tool {name!r}; available: {available}",
                call_id, name, status="error", attempts=0, duration_ms=0.0, breaker=None,
            )
        problems = _problems(entry.validator.iter_errors(args))
        if problems:
            return self._refuse(entry, call_id, f"invalid arguments for {name}: "
                                + "; ".join(problems), started)
        if not entry.breaker.allow():
            wait_s = math.ceil(entry.breaker.retry_in())
            return self._refuse(entry, call_id, f"circuit open for {name}, retry in {wait_s} s",
                                started)
        tool_call = ToolCall(name=name, args=dict(args), id=call_id, type="tool_call")
        return _Run(entry, tool_call, _with_idempotency_key(config, call_id), started)

    def _refuse(self, entry: _Entry, call_id: str, text: str, started: float) -> ToolMessage:
        """An error reply for a call that never ran (not a tool failure: no breaker count)."""
        self._count(entry, error=True, latency_ms=None)
        return _message(
            text, call_id, entry.tool.name, status="error", attempts=0,
            duration_ms=_ms(self._clock() - started), breaker=entry.breaker.state,
        )

    def _finish(self, run: _Run, outcome: Any, attempts: int) -> ToolMessage:
        """Turn what the tool returned or raised into the reply, and account for it."""
        entry, name = run.entry, run.call["name"]
        tool_artifact = None
        if isinstance(outcome, BaseException):
            text, status = _describe(outcome), "error"
            if attempts > 1:
                text += f" (after {attempts} attempts)"
        elif isinstance(outcome, ToolMessage):  # a tool's handled error stays an error
            text, status, tool_artifact = outcome.content, outcome.status, outcome.artifact
        else:
            text = f"{name} returned a {type(outcome).__name__}, not a message"
            status = "error"
        # A ToolException that is not transient is the tool answering "bad request"
        # (division by zero, unknown timezone): the tool is healthy, the breaker stays shut.
        rejected = isinstance(outcome, ToolException) and not is_transient(outcome)
        if status == "error":  # the error's type, never its text (it may quote the arguments)
            error = type(outcome).__name__ if isinstance(outcome, BaseException) else None
            log.log(logging.INFO if rejected else logging.WARNING, "tool_failed",
                    extra={"tool": name, "error": error, "attempts": attempts})
        if status == "error" and not rejected:
            was_open = entry.breaker.state is BreakerState.OPEN
            entry.breaker.record_failure()
            if not was_open and entry.breaker.state is BreakerState.OPEN:
                log.warning("breaker_opened", extra={"tool": name, "recovery_s": entry.policy.recovery_s})
        else:
            entry.breaker.record_success()
        duration_ms = _ms(self._clock() - run.started)
        self._count(entry, error=status == "error", latency_ms=duration_ms)
        return _message(
            text, run.call["id"], name, status=status, attempts=attempts,
            duration_ms=duration_ms, breaker=entry.breaker.state, tool_artifact=tool_artifact,
        )

    # -- figures ---------------------------------------------------------------------------

    def _count(self, entry: _Entry, *, error: bool, latency_ms: float | None) -> None:
        with self._lock:
            entry.calls += 1
            entry.errors += error
            if latency_ms is not None:
                entry.latencies_ms.append(latency_ms)

    def stats(self) -> dict[str, ToolStats]:
        """Per-tool figures, kept in memory; the observability layer exports them.

        ``calls`` and ``errors`` count every call of a registered tool, including those
        refused for invalid arguments or an open breaker (calls to unknown tools are not
        counted: a model inventing names must not grow this table). The latency
        percentiles (nearest rank, in ms, ``None`` before any execution) cover the last
        :data:`LATENCY_WINDOW` calls that reached the tool, retries and backoff included.
        """
        with self._lock:
            snapshot = [
                (name, e.calls, e.errors, sorted(e.latencies_ms), e.breaker)
                for name, e in self._entries.items()
            ]
        return {
            name: ToolStats(
                calls=calls,
                errors=errors,
                latency_ms_p50=_percentile(latencies, 50),
                latency_ms_p99=_percentile(latencies, 99),
                breaker=str(breaker.state),
            )
            for name, calls, errors, latencies, breaker in snapshot
        }


# -- helpers -----------------------------------------------------------------------------


def args_json_schema(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of the arguments a model sends to ``tool`` (injected arguments
    such as ``config`` left out)."""
    schema = tool.tool_call_schema
    return schema if isinstance(schema, dict) else schema.model_json_schema()


def _as_tool(
    obj: BaseTool | Callable[..., Any] | Mapping[str, Any],
    *,
    name: str | None,
    handler: Callable[..., Any] | None,
) -> BaseTool:
    if isinstance(obj, Mapping):
        tool = tool_from_schema(dict(obj), handler)
    elif handler is not None:
        raise TypeError("handler= is only for JSON-schema specs")
    elif isinstance(obj, BaseTool):
        tool = obj
    elif callable(obj):
        is_async = iscoroutinefunction(obj)
        return StructuredTool.from_function(
            func=None if is_async else obj,
            coroutine=obj if is_async else None,
            name=name,
            parse_docstring=True,  # uses a Google-style Args: section when there is one
        )
    else:
        raise TypeError(
            f"cannot register {type(obj).__name__}: expected a BaseTool, a function or a "
            "JSON-schema function spec"
        )
    return tool if name in (None, tool.name) else tool.model_copy(update={"name": name})


def _problems(errors: Iterable[ValidationError]) -> list[str]:
    """One line per argument problem, naming the argument's path and the rule."""
    lines: dict[str, None] = {}  # ordered set: a "required" error repeats per property
    for err in errors:
        if err.validator == "required" and isinstance(err.instance, dict):
            for prop in err.validator_value:
                if prop not in err.instance:
                    lines[f"missing required argument {_path([*err.absolute_path, prop])!r}"] = None
        elif err.absolute_path:
            lines[f"argument {_path(err.absolute_path)!r}: {err.message}"] = None
        else:
            lines[f"arguments: {err.message}"] = None
    return list(lines)


def _path(parts: Iterable[str | int]) -> str:
    """``a.b[0].c`` from a jsonschema error path."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _with_idempotency_key(config: RunnableConfig | None, call_id: str) -> RunnableConfig:
    """The caller's config, plus an idempotency key unless it already has one."""
    config = config or {}
    configurable = config.get("configurable") or {}
    if CONFIG_KEY in configurable:
        return config
    key = make_key(configurable.get("thread_id"), call_id)
    return merge_configs(config, {"configurable": {CONFIG_KEY: key}})


def _timeout(run: _Run, timeout_s: float) -> ToolTimeoutError:
    return ToolTimeoutError(f"{run.call['name']} timed out after {timeout_s:g} s")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ToolException, ToolTimeoutError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _message(
    content: Any,
    call_id: str,
    name: str,
    *,
    status: str,
    attempts: int,
    duration_ms: float,
    breaker: BreakerState | None,
    tool_artifact: Any = None,
) -> ToolMessage:
    artifact: dict[str, Any] = {
        "duration_ms": duration_ms,
        "attempts": attempts,
        "breaker": None if breaker is None else str(breaker),
    }
    if tool_artifact is not None:
        artifact["tool_artifact"] = tool_artifact
    return ToolMessage(
        content, tool_call_id=call_id, name=name, status=status, artifact=artifact
    )
