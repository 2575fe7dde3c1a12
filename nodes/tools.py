"""Tools: runs one tool call (each call is its own task, sent with ``Send``).

Calls to tools that need approval pause on ``interrupt`` first. Because every call is a
separate task, several approvals in one turn all surface at once and each resumes on its
own (by interrupt id). The call then goes through the :class:`~bulwark.tools.registry.
ToolRegistry` (validation, breaker, timeout, retries, idempotency key), so every outcome,
including a rejection, is a ``ToolMessage`` and the thread never holds a tool call without
a result. Side-effecting tools also go through the effect journal: a call that already
ran (or was cut short while running) is not run again, across crashes and resumes. Each
outcome also leaves a short note in the task's working memory (``state["working"]``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from bulwark.graphs.state import ToolTask
from bulwark.guardrails.rails import Guardrails
from bulwark.persistence.effects import EffectJournal
from bulwark.tools.idempotency import make_key
from bulwark.tools.registry import ToolRegistry

NOTE_CHARS = 200
CUT_SHORT = (
    "this call was interrupted while it ran and may already have taken effect; "
    "it was not run again (side effects run at most once). Check before asking again."
)


def is_approved(decision: Any) -> tuple[bool, str]:
    """Read a reviewer's resume value: ``True``/``"approve"`` or ``{"approved": bool,
    "reason": str}``; anything else counts as a rejection."""
    if isinstance(decision, dict):
        return bool(decision.get("approved")), str(decision.get("reason") or "")
    if isinstance(decision, str):
        return decision.strip().lower() in {"approve", "approved", "yes", "y"}, ""
    return decision is True, ""


def task_note(message: ToolMessage) -> str:
    """The working-memory note a tool outcome leaves: tool, status, start of the result."""
    text = " ".join(message.text.split())
    if len(text) > NOTE_CHARS:
        text = text[: NOTE_CHARS - 1] + "…"
    return f"{message.name} ({message.status}): {text}"


class RunTool:
    """Executes a single tool call after any approval it needs."""

    def __init__(self, *, registry: ToolRegistry, journal: EffectJournal, rails: Guardrails) -> None:
        self.registry = registry
        self.journal = journal
        self.rails = rails

    def __call__(self, task: ToolTask, config: RunnableConfig) -> dict:
        message = self._run(task["call"], config)
        result = self.rails.check_context(message.text)
        screened = message.model_copy(
            update={
                "content": result.text,
                "response_metadata": {**message.response_metadata, "guardrails": result.verdict},
            }
        )
        return {"messages": [screened], "working": [task_note(screened)]}

    def _run(self, call: ToolCall, config: RunnableConfig) -> ToolMessage:
        name, call_id = call["name"], call["id"]
        try:
            policy = self.registry.policy(name)
        except KeyError:  # unknown tool: the registry answers with the list of tools
            return self.registry.run(call, config=config)

        def reply(text: str, status: str, **artifact: Any) -> ToolMessage:
            return ToolMessage(text, tool_call_id=call_id, name=name, status=status, artifact=artifact)

        if policy.requires_approval:
            approved, reason = is_approved(
                interrupt({"type": "approval", "tool": name, "args": call["args"], "tool_call_id": call_id})
            )
            if not approved:
                return reply(f"rejected by reviewer{': ' + reason if reason else ''}", "error")
        if policy.idempotent:
            return self.registry.run(call, config=config)

        key = make_key((config.get("configurable") or {}).get("thread_id"), call_id)
        claim = self.journal.claim(key)
        if claim.outcome is not None:
            status, content = claim.outcome
            return reply(content, status, replayed=True)
        if not claim.fresh:
            return reply(CUT_SHORT, "error", replayed=True)
        message = self.registry.run(call, config=config)
        self.journal.finish(key, message.status, message.text)
        return message
