"""Output guardrail: screens the final answer before it is delivered or remembered.

The check runs as the NeMo output rail (see :mod:`bulwark.guardrails.rails`): system
prompt leaks, toxicity and denied topics block the answer; secrets and PII are redacted;
when tools were used and the answer names none of them, their names are appended as
sources. With streaming on, the same checks already ran on the stream
(:mod:`bulwark.guardrails.streaming`); this pass settles the stored answer and verdict. An
answer from the answer cache is screened again like any other.

With the answer cache on, the screened answer of a turn is kept for the key the agent node
looked it up under (the state's ``cache``) when the answer is the routed model's own (not a
fallback's, an apology or a cached one), was not blocked or flagged ungrounded, and every
tool the turn called is ``cacheable`` by its policy (no side effects, no clock, no live data,
no user-owned data).

When the answer rests on evidence (the turn called tools, or memories were recalled for
it), the fact check (:func:`bulwark.guardrails.checks.check_grounding`) runs after the
output rail on the text it let through: numbers, dates, names and quotes that neither the
turn's tool results (as the context rail left them), the recalled memories, the user's
messages nor the system prompt support get a note appended and an ``ungrounded`` flag,
merged into the output verdict (never a block). With streaming on, the streamed tokens went
out without the note; the stored answer has it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.runtime import get_runtime

from bulwark.graphs.state import AgentState, RunContext
from bulwark.guardrails.checks import RailResult, check_grounding, merge_verdicts
from bulwark.guardrails.rails import Guardrails
from bulwark.models.cache import AnswerCache, CacheKey
from bulwark.nodes._text import latest_answer, latest_request
from bulwark.nodes.agent import UNANSWERED

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


def turn_evidence(state: AgentState, *, instructions: str = "") -> list[str]:
    """What the latest answer may rest on: the turn's tool results and the recalled
    memories, with the user's messages and ``instructions`` (the system prompt) besides;
    empty when the turn had neither tool results nor memories (nothing to check against)."""
    messages = state["messages"]
    request = latest_request(messages)
    turn = messages[messages.index(request) :] if request else messages
    sources = [m.text for m in turn if isinstance(m, ToolMessage)] + list(state.get("memories") or [])
    if not sources:
        return []
    return [*sources, *(m.text for m in messages if isinstance(m, HumanMessage)), instructions]


class GuardOutput:
    """Records the output verdict, replaces the answer with the text to deliver, and keeps
    it in the answer cache when the turn may be reused."""

    def __init__(
        self, *, rails: Guardrails, cache: AnswerCache | None = None, cacheable: Callable[[str], bool] | None = None
    ) -> None:
        self.rails = rails
        self.cache = cache
        self.cacheable = cacheable or (lambda name: False)

    def _cache_key(self, state: AgentState, answer: AIMessage, result: RailResult) -> CacheKey | None:
        """The key to keep the screened answer under, ``None`` when the turn is not reusable."""
        cache, request = state.get("cache"), latest_request(state["messages"])
        if self.cache is None or not cache or cache.get("hit") or result.blocked or request is None:
            return None
        if "ungrounded" in result.verdict["reasons"]:
            return None
        if (state.get("route") or {}).get("answered_by") != cache.get("model") or answer.response_metadata.get(UNANSWERED):
            return None
        turn = state["messages"][state["messages"].index(request):]
        if not all(self.cacheable(m.name or "") for m in turn if isinstance(m, ToolMessage)):
            return None
        tenant = (get_runtime(RunContext).context or RunContext()).tenant_id
        return CacheKey(tenant=tenant, model=cache["model"], context=cache["context"], request=request.text)

    def _grounded(self, state: AgentState, result: RailResult) -> RailResult:
        """The output rail's result with the fact check's note and verdict merged in."""
        evidence = turn_evidence(state, instructions=self.rails.policy.system_prompt)
        if result.blocked or not evidence:
            return result
        checked = check_grounding(result.text, evidence)
        return RailResult(merge_verdicts([result.verdict, checked.verdict]), checked.text)

    @staticmethod
    def _stored(state: AgentState, stored: Mapping[str, str]) -> dict:
        return {"cache": {**(state.get("cache") or {}), "stored": dict(stored)}}

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
        result = self._grounded(state, self.rails.check_output(answer.text, sources=turn_sources(state)))
        update = self._update(answer, result)
        if (key := self._cache_key(state, answer, result)) is not None:
            assert self.cache is not None
            update |= self._stored(state, self.cache.store(key, result.text, memory=get_runtime().store))
        return update

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`."""
        answer = latest_answer(state["messages"])
        if answer is None:
            return {"output_verdict": _ALLOW}
        result = self._grounded(state, await self.rails.acheck_output(answer.text, sources=turn_sources(state)))
        update = self._update(answer, result)
        if (key := self._cache_key(state, answer, result)) is not None:
            assert self.cache is not None
            update |= self._stored(state, await self.cache.astore(key, result.text, memory=get_runtime().store))
        return update
