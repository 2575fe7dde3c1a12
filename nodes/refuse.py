"""Refusal: answers a blocked request politely, without calling any model.

A request blocked as self-harm (``harmful:self_harm``) gets :data:`SELF_HARM_ANSWER`
instead: care and where to find help, never a bare refusal.
"""

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
    "harmful": "it asks for help with something that could cause serious harm.",
    "denied_topic": "that topic is outside what this assistant covers.",
    "rail_error": "a safety check could not run. Please try again shortly.",
}
SELF_HARM_ANSWER = (
    "If you're thinking about harming yourself, you don't have to face it alone, and I'm really sorry "
    "you're going through this. I can't help with ways to hurt yourself, but people can help right now: "
    "if you are in immediate danger, please contact local emergency services. You can also reach a crisis "
    "line at any hour - 988 in the US (call or text), 116 123 (Samaritans) in the UK and Ireland - or find "
    "one in your country at findahelpline.com. If you'd like to talk about what's going on, I'm here to listen."
)
"""The answer to a request blocked as self-harm."""


def refuse(state: AgentState) -> dict:
    """Append a refusal that names the reason the input guardrail gave (for self-harm, the
    caring answer with where to find help)."""
    reasons = (state.get("input_verdict") or {}).get("reasons") or []
    if "harmful:self_harm" in reasons:
        return {"messages": [AIMessage(content=SELF_HARM_ANSWER, name="guardrails")]}
    known = [_WHY[r.split(":")[0]] for r in reasons if r.split(":")[0] in _WHY]
    why = known[0] if known else "it was flagged by a safety check."
    return {"messages": [AIMessage(content=f"Sorry, I can't help with that: {why}", name="guardrails")]}


async def arefuse(state: AgentState) -> dict:
    """Async twin of :func:`refuse` (no I/O: it answers without leaving the event loop)."""
    return refuse(state)
