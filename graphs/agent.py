"""The Bulwark agent graph.

::

    START → guard_input ─blocked→ refuse ───────────────────→ audit → END
                │
          recall ∥ route → agent ⇄ tools (one task per call; approval by interrupt)
                             │
                   guard_output ∥ remember → audit → END

Nodes joined by ∥ run in the same superstep: they read the same state and write different
keys, so a turn without tools takes five supersteps (six checkpoints, counting the input's).

:func:`build_agent` wires the nodes from a :class:`~bulwark.settings.Settings`; pass a
checkpointer to make runs resumable and a store for long-term memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph._internal._runnable import RunnableCallable  # noqa: PLC2701 - see _node
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Send, StateSnapshot

from bulwark.graphs.state import AgentInput, AgentState, RunContext
from bulwark.guardrails.rails import Guardrails
from bulwark.guardrails.vault import PiiVault, vault_for
from bulwark.models.cache import AnswerCache
from bulwark.models.factory import make_chat_model
from bulwark.models.fallback import model_breakers
from bulwark.nodes.agent import SYSTEM_PROMPT, Agent, wants_tools
from bulwark.nodes.audit import Audit
from bulwark.nodes.guard_input import GuardInput
from bulwark.nodes.guard_output import GuardOutput
from bulwark.nodes.recall import Recall
from bulwark.nodes.refuse import arefuse, refuse
from bulwark.nodes.remember import Remember
from bulwark.nodes.route import RouteModel
from bulwark.nodes.tools import RunTool
from bulwark.observability.telemetry import decided, traced_node, with_turn_spans
from bulwark.memory.store import MemoryStoreError, QdrantStore, open_memory_store
from bulwark.persistence.audit import audit_log_for
from bulwark.persistence.checkpoints import open_checkpointer_for
from bulwark.persistence.usage import usage_ledger_for
from bulwark.server.webhooks import WebhookSender
from bulwark.settings import Settings
from bulwark.persistence.effects import EffectJournal
from bulwark.tools.builtin import builtin_registry
from bulwark.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from bulwark.server.limits import RateLimits

log = logging.getLogger(__name__)


def cut_short(snapshot: StateSnapshot) -> bool:
    """Whether the thread's last run stopped before the end without waiting for approval.

    ``snapshot.next`` is not enough: it leaves out tasks that finished before a crash
    but whose step was never checkpointed; ``snapshot.tasks`` still lists them.
    """
    return bool(snapshot.tasks) and not snapshot.interrupts


def _after_input(state: AgentState) -> str | list[str]:
    if (state.get("input_verdict") or {}).get("action") == "block":
        decided("refusal")
        return "refuse"
    return ["recall", "route"]


def _after_agent(state: AgentState) -> list[Send] | list[str]:
    if wants_tools(state):
        decided("tool_call")
        return [Send("tools", {"call": call}) for call in state["messages"][-1].tool_calls]
    decided("answer")
    return ["guard_output", "remember"]


def _node(name: str, node: Any, afunc: Any = None) -> RunnableCallable:
    """``node`` as a graph node: ``node(...)`` under invoke/stream, ``node.acall(...)`` (or
    ``afunc``) under ainvoke/astream, each in a span of its own when tracing is on.

    LangGraph's own ``RunnableCallable`` with ``trace=False``, the one it builds for a plain
    function: the node's run is the graph's node run, where a ``RunnableLambda`` would add a
    second run under it, doubling what LangSmith tracing serializes for every node (measured:
    bench/observability.py)."""
    return RunnableCallable(traced_node(name, node), traced_node(name, afunc or node.acall), name=name, trace=False)


def answer_cache_for(settings: Settings) -> AnswerCache | None:
    """The answer cache ``settings.cache`` asks for: its Redis level on the checkpointer's
    Redis, if that is where checkpoints are; ``None`` when it is off."""
    if settings.cache == "off":
        return None
    url = settings.resolved_checkpointer_url
    return AnswerCache(
        mode=settings.cache, ttl_s=settings.cache_ttl_s, l1_size=settings.cache_l1_size,
        similarity=settings.cache_similarity, redis_url=url if url.startswith(("redis://", "rediss://")) else None,
    )


def build_agent_graph(
    settings: Settings,
    *,
    models: Mapping[str, BaseChatModel] | None = None,
    tools: Sequence[BaseTool] | ToolRegistry | None = None,
    rails: Guardrails | None = None,
    limits: RateLimits | None = None,
    vault: PiiVault | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> StateGraph:
    """Return the uncompiled agent graph (for the LangGraph server or further wiring).

    Args:
        settings: the deployment's configuration.
        models: chat models by catalogue name (``settings.catalogue``), replacing the ones
            it would build (tests pass scripted models this way).
        tools: a registry, or tools to register with policies from settings; the
            built-in registry if omitted.
        rails: the guardrails; built from settings if omitted (share one per process:
            building NeMo rails takes a few hundred milliseconds).
        limits: the server's rate limits: the agent node debits each model call's tokens
            and the audit node gives back the run's concurrent-run lease; none if omitted.
        vault: the PII vault; :func:`~bulwark.guardrails.vault.vault_for` the settings if
            omitted (none when ``settings.vault`` is off).
        clock: monotonic seconds for the models' circuit breakers.
    """
    data_dir = settings.ensure_data_dir()
    catalogue = settings.catalogue
    models = {**{entry.name: make_chat_model(entry, settings=settings) for entry in catalogue.models
                 if entry.name not in (models or {})}, **(models or {})}
    if isinstance(tools, ToolRegistry):
        registry = tools
    elif tools is None:
        registry = builtin_registry(settings)
    else:
        registry = ToolRegistry(settings=settings)
        for tool in tools:
            registry.register(tool)
    rails = rails or Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
    journal = EffectJournal.for_checkpointer(settings.resolved_checkpointer_url, data_dir=data_dir)
    vault = vault or vault_for(settings)

    graph = StateGraph(AgentState, input_schema=AgentInput, context_schema=RunContext)
    # Each node has a coroutine that ainvoke/astream (the LangGraph server) await, so
    # concurrent runs share the event loop instead of queueing for worker threads; its
    # sync call serves invoke/stream. Nodes read the runtime with get_runtime().
    guard_input = GuardInput(rails=rails, window_turns=settings.screen_window_turns, vault=vault)
    graph.add_node("guard_input", _node("guard_input", guard_input))
    graph.add_node("refuse", _node("refuse", refuse, arefuse))
    graph.add_node("recall", _node("recall", Recall(rails=rails, max_tokens=settings.memory_tokens)))
    ledger = usage_ledger_for(settings)
    budgets = {"ledger": ledger, "budgets": settings.budgets}
    route = RouteModel(catalogue=catalogue, history_tokens=settings.history_tokens,
                       exhausted=settings.budget_exhausted, **budgets)
    graph.add_node("route", _node("route", route))
    breakers = model_breakers(catalogue, failures=settings.model_breaker_failures,
                              recovery_s=settings.model_breaker_recovery_s, clock=clock)
    cache = answer_cache_for(settings)
    agent = Agent(catalogue=catalogue, models=models, tools=registry.tools, history_tokens=settings.history_tokens,
                  policy=rails.policy, breakers=breakers, spent=limits.spent if limits else None, cache=cache, **budgets)
    graph.add_node("agent", _node("agent", agent))
    graph.add_node("tools", _node("tools", RunTool(registry=registry, journal=journal, rails=rails, vault=vault)))
    def cacheable(tool: str) -> bool:
        try:
            policy = registry.policy(tool)
        except KeyError:  # a call of a tool that is not registered
            return False
        return policy.cacheable and policy.idempotent

    graph.add_node("guard_output", _node("guard_output", GuardOutput(rails=rails, cache=cache, cacheable=cacheable)))
    graph.add_node("remember", _node("remember", Remember(threshold=settings.memory_importance)))
    webhooks = WebhookSender.from_settings(settings)
    ended = limits.ended if limits else None
    graph.add_node("audit", _node("audit", Audit(log=audit_log_for(settings), webhooks=webhooks, ended=ended)))

    graph.add_edge(START, "guard_input")
    graph.add_conditional_edges("guard_input", _after_input, ["refuse", "recall", "route"])
    graph.add_edge("refuse", "audit")
    graph.add_edge(["recall", "route"], "agent")
    graph.add_conditional_edges("agent", _after_agent, ["tools", "guard_output", "remember"])
    graph.add_edge("tools", "agent")
    graph.add_edge(["guard_output", "remember"], "audit")
    graph.add_edge("audit", END)
    return graph


def build_agent(
    settings: Settings,
    *,
    checkpointer: BaseCheckpointSaver | None = None,
    store: BaseStore | None = None,
    models: Mapping[str, BaseChatModel] | None = None,
    tools: Sequence[BaseTool] | ToolRegistry | None = None,
    rails: Guardrails | None = None,
    vault: PiiVault | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CompiledStateGraph:
    """Return the compiled agent graph.

    Args:
        settings: the deployment's configuration.
        checkpointer: makes threads persistent and runs resumable (see
            :func:`bulwark.persistence.checkpoints.open_checkpointer`).
        store: long-term memory; without one the agent runs without memory.
        models: chat models by spec, overriding the ones named in settings.
        tools: a registry, or tools to register with policies from settings; the
            built-in registry if omitted.
        rails: the guardrails; built from settings if omitted.
        vault: the PII vault; from settings if omitted.
        clock: monotonic seconds for the models' circuit breakers.
    """
    graph = build_agent_graph(settings, models=models, tools=tools, rails=rails, vault=vault, clock=clock)
    return with_turn_spans(graph.compile(checkpointer=checkpointer, store=store, name="bulwark-agent"))


@asynccontextmanager
async def open_agent(settings: Settings, **kwargs: object) -> AsyncIterator[CompiledStateGraph]:
    """Yield the agent with the checkpointer and memory store that ``settings`` name.

    If the memory store cannot be opened (a Qdrant server down, an embedded store held by
    another process) the agent runs without long-term memory and a warning says why.
    Extra keyword arguments go to :func:`build_agent`. Example::

        async with open_agent(load_settings()) as agent:
            await agent.ainvoke({"messages": [("user", "what is 17*23")]},
                                {"configurable": {"thread_id": "t1"}})
    """
    settings.ensure_data_dir()
    try:
        store: QdrantStore | None = await asyncio.to_thread(open_memory_store, settings)
    except MemoryStoreError as exc:
        log.warning("running without long-term memory: %s", exc)
        store = None
    try:
        async with open_checkpointer_for(settings) as checkpointer:
            yield build_agent(settings, checkpointer=checkpointer, store=store, **kwargs)  # type: ignore[arg-type]
    finally:
        if store is not None:
            store.close()
