"""Output guardrail: screens the final answer before it is delivered or remembered.

The check runs as the NeMo output rail (see :mod:`bulwark.guardrails.rails`): system
prompt leaks, toxicity and denied topics block the answer; secrets and PII are redacted;
when tools were used and the answer names none of them, their names are appended as
sources. With streaming on, the same checks already ran on the stream
(:mod:`bulwark.guardrails.streaming`); this pass settles the stored answer and verdict.
"""

from __future__ import annotations

import logging

from langchain_core.messages import AIMessage, ToolMessage

from bulwark.graphs.state import AgentState
from bulwark.guardrails.checks import RailResult
from bulwark.guardrails.rails import Guardrails
from bulwark.nodes._text import latest_answer, latest_request

_ALLOW = {"action": "allow", "severity": "none", "reasons": []}
log = logging.getLogger(__name__)


def turn_sources(state: AgentState) -> list[str]:
    """Names of the tools that answered successfully since the latest request."""
    messages = state["messages"]
    request = latest_request(messages)
    turn = messages[messages.index(request) :] if request else messages
    return list(
        dict.fromkeys(m.name for m in turn if isinstance(m, ToolMessage) and m.status == "success" and m.name)
    )


class GuardOutput:
    """Records the output verdict and replaces the answer with the text to deliver."""

    def __init__(self, *, rails: Guardrails) -> None:
        self.rails = rails

    @staticmethod
    def _update(answer: AIMessage, result: RailResult) -> dict:
        update: dict = {"output_verdict": result.verdict}
        if result.verdict["action"] != "allow":  # categories only, never the text
            log.log(logging.WARNING if result.blocked else logging.INFO, "rail_verdict",
                    extra={"rail": "output", "action": result.verdict["action"], "reasons": result.verdict["reasons"]})
        if result.text != answer.text:
            # Same id: the messages channel replaces the answer instead of appending.
            update["messages"] = [AIMessage(content=result.text, id=answer.id, name=answer.name)]
        return update

    def __call__(self, state: AgentState) -> dict:
        answer = latest_answer(state["messages"])
        if answer is None:
            return {"output_verdict": _ALLOW}
        return self._update(answer, self.rails.check_output(answer.text, sources=turn_sources(state)))

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`."""
        answer = latest_answer(state["messages"])
        if answer is None:
            return {"output_verdict": _ALLOW}
        result = await self.rails.acheck_output(answer.text, sources=turn_sources(state))
        return self._update(answer, result)
