"""Remember: stores facts the user states about themselves as long-term memories.

A sentence is kept when it is an explicit "remember ..." or a first-person fact or
preference ("my name is ...", "I prefer ..."). The key is derived from the text, so
repeating a fact does not duplicate it.
"""

from __future__ import annotations

import re
import uuid

from langgraph.runtime import Runtime

from bulwark.graphs.state import AgentState, RunContext
from bulwark.nodes._text import latest_request
from bulwark.nodes.recall import memory_namespace

_EXPLICIT = re.compile(r"^\s*(please\s+)?remember\s+(that\s+)?(?P<fact>.+)$", re.IGNORECASE)
_PERSONAL = re.compile(
    r"\b(my\s+[\w ]{1,30}?\s+(is|are|was)\s+\S"
    r"|i\s+(am|'m|like|love|prefer|hate|dislike|live|work|use|speak)\b"
    r"|call\s+me\b)",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def memorable_facts(text: str) -> list[str]:
    """The sentences of ``text`` worth remembering, with "remember that" stripped."""
    facts = []
    for sentence in _SENTENCE.split(text.strip()):
        sentence = sentence.strip().rstrip(".!")
        if match := _EXPLICIT.match(sentence):
            facts.append(match["fact"].strip())
        elif _PERSONAL.search(sentence) and not sentence.endswith("?"):
            facts.append(sentence)
    return facts


def remember(state: AgentState, runtime: Runtime[RunContext]) -> dict:
    """Store the latest request's memorable facts in the user's namespace."""
    request = latest_request(state["messages"])
    if runtime.store is None or request is None:
        return {}
    namespace = memory_namespace(runtime.context or RunContext())
    for fact in memorable_facts(request.text):
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, fact.lower()))
        runtime.store.put(namespace, key, {"text": fact})
    return {}
