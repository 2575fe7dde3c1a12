"""Short-term memory: the conversation fitted to a token budget, older turns summarised.

The newest whole turns that fit ``max_tokens`` are sent as they are (LangChain's
``trim_messages``: starting on a user message, so a tool call is never cut from its result).
The turns that do not fit are not dropped: they become one summary line per message, the
newest kept first when even the summary must be cut. The summary is extractive (the first
sentence of each message) rather than written by a model: it costs no model call, is the
same on every run, and cannot put words in the user's mouth.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, trim_messages
from langchain_core.messages.utils import count_tokens_approximately

SUMMARY_LINE_CHARS = 160
_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)", re.DOTALL)


def fit_history(messages: Sequence[AnyMessage], *, max_tokens: int) -> tuple[str, list[AnyMessage]]:
    """Split the conversation into a summary of older turns and the recent turns to send.

    The summary takes at most a quarter of ``max_tokens``; it is empty when everything fits.
    """
    recent = trim_messages(
        messages,
        max_tokens=max_tokens,
        token_counter=count_tokens_approximately,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    older = messages[: len(messages) - len(recent)]
    return summarize(older, max_tokens=max_tokens // 4), recent


def summarize(messages: Sequence[AnyMessage], *, max_tokens: int) -> str:
    """One line per user or assistant message (its first sentence), newest kept if too long."""
    lines: list[str] = []
    used = 0
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            who = "User"
        elif isinstance(message, AIMessage) and message.text.strip():
            who = "Assistant"
        else:
            continue  # tool calls and results: their outcome is in the answer that followed
        line = f"{who}: {_first_sentence(message.text)}"
        cost = count_tokens_approximately([line], extra_tokens_per_message=0)
        if used + cost > max_tokens:
            break
        lines.append(line)
        used += cost
    return "\n".join(reversed(lines))


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = _FIRST_SENTENCE.match(text)
    sentence = match.group(1) if match else text
    if len(sentence) > SUMMARY_LINE_CHARS:
        sentence = sentence[: SUMMARY_LINE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return sentence
