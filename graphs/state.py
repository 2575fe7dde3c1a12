"""The agent's state (checkpointed) and its per-run context (not checkpointed).

State fields are plain TypedDicts so checkpoints stay JSON-friendly for the LangGraph
server, Studio and any checkpointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, TypedDict

from langchain_core.messages import AnyMessage, ToolCall
from langgraph.channels import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer

Action = Literal["allow", "flag", "sanitize", "block"]
Severity = Literal["none", "low", "medium", "high"]


class Verdict(TypedDict):
    """A guardrail's decision on one piece of text."""

    action: Action
    """What happens to the text: allowed, flagged, rewritten, or refused."""
    severity: Severity
    """How serious the worst finding is."""
    reasons: list[str]
    """Short machine-readable reasons, e.g. ``prompt_injection``."""


class Route(TypedDict, total=False):
    """The router's choice of model for this turn (:mod:`bulwark.models.router`)."""

    model: str | None
    """The catalogue name of the model the agent node calls first (``None``: refused)."""
    complexity: float
    """Estimated complexity of the request, 0 (trivial) to 1 (hard)."""
    reason: str
    """Why this model was picked."""
    outcome: str
    """``routed``, ``downgraded`` (the budget pays for no model good enough),
    ``budget_downgrade`` (the budget is spent: cheapest model) or ``budget_refused``."""
    min_quality: float
    """The quality the request's complexity asks for."""
    estimated_tokens: int
    """Prompt and expected answer, estimated."""
    estimated_cost_usd: float
    """Of one call of the picked model at the catalogue's prices."""
    budget_left_usd: float | None
    """What the tenant could still spend when the turn started (``None``: no budget)."""
    answered_by: str | None
    """The model that answered last (after fallbacks), ``None`` when none could."""
    attempts: list[dict[str, str]]
    """Each model tried by the latest model call and what happened: ``ok``, ``failed (HTTP
    500)``, ``timed out``, ``circuit open``, ``over budget``…"""


class Usage(TypedDict):
    """Token counts accumulated over the thread."""

    input_tokens: int
    output_tokens: int
    model_calls: int
    cost_usd: float
    """At the catalogue's prices (``BULWARK_MODELS``); 0 for unpriced models."""
    estimated_calls: int
    """Calls whose provider reported no usage: their tokens are estimated."""


def add_usage(left: Usage | None, right: Usage | None) -> Usage:
    """Reducer: sum token counts."""
    left = left or {"input_tokens": 0, "output_tokens": 0, "model_calls": 0, "cost_usd": 0.0, "estimated_calls": 0}
    if not right:
        return left
    return {key: left.get(key, 0) + right.get(key, 0) for key in Usage.__annotations__}  # type: ignore[return-value]


class CacheOutcome(TypedDict, total=False):
    """What the answer cache did in the latest turn (:mod:`bulwark.models.cache`)."""

    model: str
    """The model the turn was routed to: part of the key."""
    context: str
    """Digest of the prompt without the request: part of the key."""
    hit: str | None
    """The level that answered (``l1``, ``l2``, ``semantic``), ``None``: a miss."""
    outcomes: dict[str, str]
    """Each level consulted and its outcome: ``hit``, ``miss`` or ``error``."""
    similarity: float | None
    """A semantic hit's similarity to the stored request."""
    stored: dict[str, str]
    """Where the turn's answer was kept, by level (``stored`` or ``error``)."""


class MemoryOutcome(TypedDict):
    """What recall or remember did with the long-term store in the latest turn (for the audit)."""

    count: int
    """Memories recalled into the prompt, or facts stored."""
    failed: bool
    """The store failed, and the turn went on without it."""


MAX_NOTES = 20


def update_notes(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Reducer for working memory: append new notes (the last ``MAX_NOTES``); ``None`` clears."""
    if right is None:
        return []
    return list(dict.fromkeys([*(left or []), *right]))[-MAX_NOTES:]


Messages = Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]
"""The conversation channel: messages merged by id (a message with a known id replaces it,
``RemoveMessage`` deletes it, ``Overwrite`` resets the list), stored as deltas. A
checkpoint holds only the messages written in its step, and a full copy every
``snapshot_frequency`` (100) updates, so a thread grows linearly with its length instead of
storing the whole conversation at every step. LangGraph gives every message an id before it
is stored. (``_messages_delta_reducer`` is LangGraph's own batch reducer for this channel;
the underscore marks it experimental, like ``DeltaChannel``.)"""


class AgentState(TypedDict, total=False):
    """Checkpointed state of one conversation thread."""

    messages: Messages
    """The conversation, with tool calls and results."""
    input_verdict: Verdict | None
    """Input guardrail verdict for the latest request."""
    output_verdict: Verdict | None
    """Output guardrail verdict for the latest answer (None when refused)."""
    route: Route | None
    """Model routing decision for the latest request."""
    memories: list[str]
    """Long-term memories recalled for the latest request."""
    working: Annotated[list[str], update_notes]
    """Working memory: notes on the task at hand (tool outcomes), cleared when it ends."""
    usage: Annotated[Usage, add_usage]
    """Tokens spent on this thread so far."""
    recalled: MemoryOutcome | None
    """What recall did for the latest request."""
    remembered: MemoryOutcome | None
    """What remember did with the latest request."""
    cache: CacheOutcome | None
    """What the answer cache did for the latest request (``None``: the cache is off)."""


class AgentInput(TypedDict):
    """What a caller may pass in: the new messages. Everything else is the graph's own."""

    messages: Messages
    """New messages, appended to the thread (screened by ``guard_input`` first)."""


class ToolTask(TypedDict):
    """Input of one ``tools`` task: a single tool call, sent with ``Send``."""

    call: ToolCall


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Per-run facts that are not state: who is asking and for which tenant."""

    user_id: str = "anonymous"
    """The end user; memories are namespaced by it."""
    tenant_id: str = "default"
    """The tenant; memories and audit records are namespaced by it."""
    request_id: str | None = None
    """Correlation id carried into logs and the audit record."""
