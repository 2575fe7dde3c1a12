"""Refusal: answers a blocked request politely, without calling any model."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from bulwark.graphs.state import AgentState

_WHY = {
    "empty_request": "the request was empty. Please ask a question.",
    "request_too_long": "the request is longer than this deployment accepts. "
    "Please shorten it.",
    "prompt_injection": "it looks like an attempt to override my instructions.",
}


def refuse(state: AgentState) -> dict:
    """Append a refusal that names the reason the input guardrail gave."""
    reasons = (state.get("input_verdict") or {}).get("reasons") or []
    why = _WHY.get(reasons[0], "it was flagged by a safety check.") if reasons else ""
    text = f"Sorry, I can't help with that: {why}".strip()
    return {"messages": [AIMessage(content=text, name="guardrails")]}
