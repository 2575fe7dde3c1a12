"""Audit: appends one hash-chained record per turn, with fingerprints, never raw text; as the
last node of every answered or refused run, it also sends the run's webhook, if it asked for
one, and tells an ``ended`` callback that the run is over (the server passes
:meth:`bulwark.server.limits.RateLimits.ended`, which gives back the run's concurrent-run
lease), even when the append fails. Runs that stop for approval, fail or crash never get
here: their lease ends by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.config import get_config
from langgraph.runtime import get_runtime

from bulwark.graphs.state import AgentState, RunContext
from bulwark.nodes._text import latest_answer, latest_request
from bulwark.nodes.agent import run_blocking
from bulwark.persistence.audit import AuditLog, sha256

if TYPE_CHECKING:
    from bulwark.server.webhooks import WebhookSender

Ended = Callable[[str, Mapping[str, Any]], Coroutine[Any, Any, None]]
"""``ended(tenant_id, configurable)``: the run is over."""


class Audit:
    """Records who asked, what was decided, which tools ran, and what it cost."""

    def __init__(self, *, log: AuditLog, webhooks: WebhookSender | None = None, ended: Ended | None = None) -> None:
        self.log = log
        self.webhooks = webhooks
        self.ended = ended

    def __call__(self, state: AgentState) -> dict:
        try:
            self.log.append(_event(state))
        finally:
            if self.ended is not None:
                run_blocking(self._end())
        return {}

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`: the append (a file lock, a write and a flush)
        runs on a worker thread, so a busy log never stalls the event loop."""
        try:
            await asyncio.to_thread(self.log.append, _event(state))
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


def _event(state: AgentState) -> dict[str, Any]:
    """The turn's audit event, from the state and the run's context and config."""
    messages = state["messages"]
    request, answer = latest_request(messages), latest_answer(messages)
    turn = messages[messages.index(request) :] if request else []
    context = get_runtime(RunContext).context or RunContext()
    configurable = get_config().get("configurable", {})
    return {
        "event": "turn",
        "thread_id": configurable.get("thread_id"),
        "tenant_id": context.tenant_id,
        "user_sha256": sha256(context.user_id),
        "request_id": context.request_id,
        "input_sha256": sha256(request.text) if request else None,
        "output_sha256": sha256(answer.text) if answer else None,
        "input_verdict": state.get("input_verdict"),
        "output_verdict": state.get("output_verdict"),
        "route": state.get("route"),
        "tool_calls": [
            {"name": m.name, "status": m.status, "verdict": m.response_metadata.get("guardrails")}
            for m in turn
            if isinstance(m, ToolMessage)
        ],
        "model_calls": sum(1 for m in turn if isinstance(m, AIMessage) and m.usage_metadata),
        "usage": state.get("usage"),
    }
