"""Input guardrail: screens the latest request before anything else reads it.

The check runs as the NeMo input rail (see :mod:`bulwark.guardrails.rails`): size,
prompt injection and jailbreaks (also encoded or obfuscated), toxicity and harmful
requests, denied topics, then PII. A block sends the turn to the polite refusal; PII is
redacted in the stored request, so the model, the memories and the audit never see it.
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from bulwark.graphs.state import AgentState
from bulwark.guardrails.checks import RailResult
from bulwark.guardrails.rails import Guardrails
from bulwark.nodes._text import latest_request


class GuardInput:
    """Records the input verdict and replaces the request with its sanitized text."""

    def __init__(self, *, rails: Guardrails) -> None:
        self.rails = rails

    @staticmethod
    def _update(request: HumanMessage | None, result: RailResult) -> dict:
        # Per-turn fields are reset here, at the start of every turn.
        update: dict = {
            "input_verdict": result.verdict,
            "output_verdict": None,
            "route": None,
            "memories": [],
        }
        if request is not None and result.text != request.text:
            # Same id: add_messages replaces the request instead of appending.
            update["messages"] = [HumanMessage(content=result.text, id=request.id, name=request.name)]
        return update

    def __call__(self, state: AgentState) -> dict:
        request = latest_request(state["messages"])
        return self._update(request, self.rails.check_input(request.text if request else ""))

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`."""
        request = latest_request(state["messages"])
        return self._update(request, await self.rails.acheck_input(request.text if request else ""))
