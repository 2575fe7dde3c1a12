"""Small helpers shared by nodes for reading the conversation."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage


def latest_request(messages: Sequence[AnyMessage]) -> HumanMessage | None:
    """The most recent user message, if any."""
    return next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def latest_answer(messages: Sequence[AnyMessage]) -> AIMessage | None:
    """The most recent model message, if any."""
    return next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)


def words(text: str) -> set[str]:
    """Lower-cased alphanumeric words of ``text``, for cheap overlap scoring."""
    cleaned = "".join(c.lower() if c.isalnum() else " " for c in text)
    return {w for w in cleaned.split() if len(w) > 2}
