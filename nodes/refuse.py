"""Refusal: answers a blocked request politely, without calling any model."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from bulwark.graphs.state import AgentState

# Keyed by the reason's prefix (``denied_topic:politics`` -> ``denied_topic``).
_WHY = {
    "empty_request": "the request was empty. Please ask a question.",
    "request_too_long": "the request is longer than this deployment accepts. Please shorten it.",
    "prompt_injection": "it looks like an attempt to override my instructions.",
    "jailbreak": "it looks like an attempt to switch off my safety rules.",
    "fake_system_tag": "it imitates system or developer messages.",
    "prompt_extraction": "I don't share my instructions or configuration.",
    "encoded_injection": "it hides instructions in an encoded or disguised text.",
    "toxicity": "it contains abusive or threatening language.",
    "harmful_request": "it asks for help with something that could cause serious harm.",
    "denied_topic": "that topic is outside what this assistant covers.",
    "rail_error": "a safety check could not run. Please try again shortly.",
}


def refuse(state: AgentState) -> dict:
    """Append a refusal that names the reason the input guardrail gave."""
    reasons = (state.get("input_verdict") or {}).get("reasons") or []
    known = [_WHY[r.split(":")[0]] for r in reasons if r.split(":")[0] in _WHY]
    why = known[0] if known else "it was flagged by a safety check."
    return {"messages": [AIMessage(content=f"Sorry, I can't help with that: {why}", name="guardrails")]}


async def arefuse(state: AgentState) -> dict:
    """Async twin of :func:`refuse` (no I/O: it answers without leaving the event loop)."""
    return refuse(state)
