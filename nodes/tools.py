"""Tools: runs one tool call (each call is its own task, sent with ``Send``).

Calls to tools that need approval pause on ``interrupt`` first. Because every call is a
separate task, several approvals in one turn all surface at once and each resumes on its
own (by interrupt id). Each execution carries an idempotency key (thread and tool call
id, see :mod:`bulwark.tools.idempotency`) so side effects survive a crash-resume once.
Every outcome, including a rejection, an unknown tool or an
exception, becomes a ``ToolMessage`` so the model can react and the thread never holds a
tool call without a result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool, ToolException
from pydantic import ValidationError
from langgraph.types import interrupt

from bulwark.graphs.state import ToolTask
from bulwark.tools.idempotency import CONFIG_KEY, make_key


def is_approved(decision: Any) -> tuple[bool, str]:
    """Read a reviewer's resume value: ``True``/``"approve"`` or ``{"approved": bool,
    "reason": str}``; anything else counts as a rejection."""
    if isinstance(decision, dict):
        return bool(decision.get("approved")), str(decision.get("reason") or "")
    if isinstance(decision, str):
        return decision.strip().lower() in {"approve", "approved", "yes", "y"}, ""
    return decision is True, ""


class RunTool:
    """Executes a single tool call after any approval it needs."""

    def __init__(self, *, tools: Sequence[BaseTool], approval: Collection[str]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.approval = frozenset(approval)

    def __call__(self, task: ToolTask, config: RunnableConfig) -> dict:
        call = task["call"]
        name, call_id = call["name"], call["id"]

        def error(text: str) -> dict:
            return {"messages": [ToolMessage(text, tool_call_id=call_id, name=name, status="error")]}

        tool = self.tools.get(name)
        if tool is None:
            return error(f"unknown tool {name!r}; available: {', '.join(sorted(self.tools))}")
        if name in self.approval:
            approved, reason = is_approved(
                interrupt({"type": "approval", "tool": name, "args": call["args"], "tool_call_id": call_id})
            )
            if not approved:
                return error(f"rejected by reviewer{': ' + reason if reason else ''}")
        thread_id = (config.get("configurable") or {}).get("thread_id")
        key = {"configurable": {CONFIG_KEY: make_key(thread_id, call_id)}}
        try:
            result = tool.invoke(call, config=merge_configs(config, key))
        except ToolException as exc:
            return error(str(exc))
        except ValidationError as exc:
            return error(f"invalid arguments for {name}: {exc.errors(include_url=False)}")
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the model
            return error(f"{type(exc).__name__}: {exc}")
        return {"messages": [result]}
