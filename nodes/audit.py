"""Audit: appends one hash-chained record per run, with fingerprints, never raw text; as the
last node of every answered or refused run, it also sends the run's webhook, if it asked for
one, and tells an ``ended`` callback that the run is over (the server passes
:meth:`bulwark.server.limits.RateLimits.ended`, which gives back the run's concurrent-run
lease), even when the append fails. Runs that stop for approval, fail or crash never get
here: their lease ends by itself.

The record's key (:func:`run_key`) is the server's run id, ``configurable["run_id"]``, on
both engines: the server assigns it (a client cannot reuse one to hide a run, as it could
its own ``context.request_id``), and a run retried after a crash or taken over by another
replica keeps it, unlike ``config["run_id"]``, which langgraph-api renews on every attempt.
In-process runs (CLI, Python API) have no server run id, and the CLI gives a resumed run a
new ``request_id``, so there the key is the thread and the id of the turn's request message,
which the turn's checkpoints keep. The log keeps the first record of a key, so a resume that
runs this node again writes nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.config import get_config
from langgraph.runtime import get_runtime

from bulwark.graphs.state import AgentState, RunContext
from bulwark.nodes._text import latest_answer, latest_request
from bulwark.nodes.agent import run_blocking
from bulwark.persistence.audit import AuditChain, sha256

if TYPE_CHECKING:
    from bulwark.server.webhooks import WebhookSender

Ended = Callable[[str, Mapping[str, Any]], Coroutine[Any, Any, None]]
"""``ended(tenant_id, configurable)``: the run is over."""
logger = logging.getLogger(__name__)


class Audit:
    """Records who asked, what was decided, which tools ran, and what it cost."""

    def __init__(self, *, log: AuditChain, webhooks: WebhookSender | None = None, ended: Ended | None = None) -> None:
        self.log = log
        self.webhooks = webhooks
        self.ended = ended

    def __call__(self, state: AgentState) -> dict:
        event, key = _event(state)
        try:
            self.log.append(event, run_id=key)
        finally:
            if self.ended is not None:
                run_blocking(self._end())
        return {}

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__` (the file log appends on a worker thread, Redis with
        ``redis.asyncio``)."""
        event, key = _event(state)
        try:
            await self.log.aappend(event, run_id=key)
        finally:
            if self.ended is not None:
                await self._end()
        if self.webhooks is not None:  # only served runs (async) carry a webhook
            context = get_runtime(RunContext).context or RunContext()
            self.webhooks.notify(get_config().get("configurable", {}), request_id=context.request_id, status="success")
        return {}

    def _end(self) -> Coroutine[Any, Any, None]:
        assert self.ended is not None
        context = get_runtime(RunContext).context or RunContext()
        return self.ended(context.tenant_id, get_config().get("configurable") or {})


def run_key(configurable: Mapping[str, Any], request: HumanMessage | None, context: RunContext) -> str:
    """The audit record's key (see the module docstring): the server's run id, else
    ``<thread>:<request message id>``, else the request id (no checkpointer: nothing resumes)."""
    if run_id := configurable.get("run_id"):
        return str(run_id)
    if (thread := configurable.get("thread_id")) and request is not None and request.id:
        return f"{thread}:{request.id}"
    return context.request_id or str(uuid.uuid4())


def _event(state: AgentState) -> tuple[dict[str, Any], str]:
    """The run's audit event and key, from the state and the run's context and config."""
    messages = state["messages"]
    request, answer = latest_request(messages), latest_answer(messages)
    turn = messages[messages.index(request) :] if request else []
    context = get_runtime(RunContext).context or RunContext()
    configurable = get_config().get("configurable", {})
    # A refused turn skips route, recall and remember: what the state holds of them is older.
    refused = (state.get("input_verdict") or {}).get("action") == "block"
    replies = [m for m in turn if isinstance(m, AIMessage) and m.usage_metadata]
    calls = [m.usage_metadata for m in replies]
    event = {
        "event": "turn",
        "thread_id": configurable.get("thread_id"),
        "tenant_id": context.tenant_id,
        "user_sha256": sha256(context.user_id),
        "request_id": context.request_id,
        "input_sha256": sha256(request.text) if request else None,
        "output_sha256": sha256(answer.text) if answer else None,
        "input_verdict": state.get("input_verdict"),
        "output_verdict": state.get("output_verdict"),
        "route": None if refused else state.get("route"),
        "recall": None if refused else state.get("recalled"),
        "remember": None if refused else state.get("remembered"),
        "cache": None if refused else state.get("cache"),
        "tool_calls": [
            {"name": m.name, "status": m.status, "verdict": m.response_metadata.get("guardrails")}
            for m in turn
            if isinstance(m, ToolMessage)
        ],
        "model_calls": len(calls),
        "tokens": {
            "input": sum(usage["input_tokens"] for usage in calls),
            "output": sum(usage["output_tokens"] for usage in calls),
        },
        "usage": state.get("usage"),
        "cost_usd": sum(m.response_metadata.get("cost_usd", 0.0) for m in replies),
    }
    logger.info("turn_ended", extra={
        "input_action": (event["input_verdict"] or {}).get("action"),
        "output_action": (event["output_verdict"] or {}).get("action"),
        "tool_calls": len(event["tool_calls"]), "model_calls": len(calls),
        "input_tokens": event["tokens"]["input"], "output_tokens": event["tokens"]["output"],
    })
    return event, run_key(configurable, request, context)
