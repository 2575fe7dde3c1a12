"""Intake: what a client sends is validated, screened and redacted before anything stores it.

The LangGraph server writes a run's input to its run queue, then to the thread's first
checkpoint (step -1 and the ``__start__`` writes), before any node runs. So the input
rail cannot wait for the ``guard_input`` node: the server's auth handler
(:mod:`bulwark.server.auth`) and the CLI pass every input through :func:`prepare_input`
first, and only its result is stored.

:func:`prepare_input`:

1. validates the shape: an object with only ``messages``, a list of at most
   ``max_messages`` messages whose content is text (a string or text blocks), whose roles
   are known, and whose texts add up to at most ``max_chars`` (:class:`InputError`, with
   the HTTP status to answer: 413 for size, 422 for the rest);
2. refuses client-sent ``system``, ``assistant`` and ``tool`` messages, or, with
   ``client_roles="screen"``, passes ``system`` and ``assistant`` ones through the
   context rail (instructions neutralised, PII redacted);
3. screens every user message with the input rail, not just the last: PII and secrets
   are redacted, and a blocked message is replaced by a placeholder, so its raw text is
   never stored and the model never reads it on a later turn; with a PII vault
   (:mod:`bulwark.guardrails.vault`) and a thread, PII first becomes the thread's numbered
   placeholders (``<EMAIL_1>``), its values kept in the vault (:func:`screen_text`);
4. marks each message as screened (:func:`mark`), with its verdict and the id of the
   input it came in, so ``guard_input`` folds the verdicts instead of screening again.

Messages are rebuilt from their role and text alone, with fresh ids: a client cannot
forge a screening mark, replace an earlier message by reusing its id, or smuggle fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from bulwark.graphs.state import Verdict
from bulwark.guardrails.checks import RailResult, merge_verdicts
from bulwark.guardrails.vault import screened

if TYPE_CHECKING:
    from bulwark.guardrails.rails import Guardrails
    from bulwark.guardrails.vault import PiiVault, VaultScope
    from bulwark.settings import Settings

MARK = "bulwark"
"""Key of the screening mark in a message's ``additional_kwargs``."""

_ROLES = {"user": "human", "human": "human", "system": "system", "assistant": "ai", "ai": "ai", "tool": "tool"}
_TYPES = {"human": HumanMessage, "system": SystemMessage, "ai": AIMessage}


class InputError(ValueError):
    """Input the agent will not take; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class IntakePolicy:
    """Limits and rules for what clients may send."""

    max_chars: int = 8000
    """Most characters of message text in one input."""
    max_messages: int = 32
    """Most messages in one input."""
    client_roles: Literal["refuse", "screen"] = "refuse"
    """What happens to client-sent ``system`` and ``assistant`` messages."""

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakePolicy:
        """The policy ``BULWARK_MAX_INPUT_CHARS``, ``…_MAX_INPUT_MESSAGES`` and ``…_CLIENT_ROLES`` set."""
        return cls(
            max_chars=settings.max_input_chars,
            max_messages=settings.max_input_messages,
            client_roles=settings.client_roles,
        )


def withheld(verdict: Verdict) -> str:
    """The placeholder that replaces a blocked message."""
    return f"[withheld by the input rail: {', '.join(verdict['reasons']) or 'blocked'}]"


def mark(message: BaseMessage, verdict: Verdict, *, batch: str) -> BaseMessage:
    """A copy of ``message`` carrying its screening verdict and input id."""
    extra = {**message.additional_kwargs, MARK: {"verdict": dict(verdict), "batch": batch}}
    return message.model_copy(update={"additional_kwargs": extra})


def screening(message: BaseMessage) -> Mapping[str, Any] | None:
    """The screening mark of ``message`` (``verdict`` and ``batch``), or ``None``."""
    found = message.additional_kwargs.get(MARK)
    return found if isinstance(found, Mapping) and "verdict" in found else None


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            else:
                raise InputError(f"{where}: only text content is accepted (a string or text blocks)")
        return "".join(parts)
    shown = "null" if content is None else type(content).__name__
    raise InputError(f"{where}: content must be a string or a list of text blocks, not {shown}")


def _role_and_text(raw: Any, where: str) -> tuple[str, str]:
    if isinstance(raw, BaseMessage):
        role, content = raw.type, raw.content
    elif isinstance(raw, Mapping):
        role, content = raw.get("role", raw.get("type")), raw.get("content")
        if "tool_calls" in raw and raw["tool_calls"]:
            raise InputError(f"{where}: tool calls come from the model, not from clients")
    elif isinstance(raw, (list, tuple)) and len(raw) == 2:
        role, content = raw
    else:
        raise InputError(f"{where}: expected an object with 'role' and 'content'")
    if not isinstance(role, str) or role not in _ROLES:
        raise InputError(f"{where}: unknown role {str(role)[:20]!r}: use 'user'")
    return _ROLES[role], _text(content, where)


def validate_input(value: Any, policy: IntakePolicy) -> list[tuple[str, str]]:
    """Check the shape of a graph input; return its messages as ``(type, text)`` pairs.

    Raises:
        InputError: naming what is wrong, with status 413 for size and 422 otherwise.
    """
    if not isinstance(value, Mapping):
        raise InputError("input must be an object like {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}")
    extra = sorted(str(k) for k in value if k != "messages")
    if extra:
        raise InputError(f"input accepts only 'messages', not {', '.join(extra)[:80]}")
    raw = value.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InputError("input.messages must be a non-empty list of messages")
    if len(raw) > policy.max_messages:
        raise InputError(f"input.messages has {len(raw)} messages; at most {policy.max_messages} are accepted")
    messages = [_role_and_text(m, f"input.messages[{i}]") for i, m in enumerate(raw)]
    size = sum(len(text) for _, text in messages)
    if size > policy.max_chars:
        raise InputError(
            f"input is {size} characters of text; at most {policy.max_chars} are accepted",
            status=413,
        )
    for i, (kind, _) in enumerate(messages):
        if kind == "tool" or (kind != "human" and policy.client_roles == "refuse"):
            raise InputError(
                f"input.messages[{i}]: clients may send only user messages"
                + ("" if kind == "tool" else " (BULWARK_CLIENT_ROLES=screen accepts system and assistant ones)")
            )
    if not any(kind == "human" for kind, _ in messages):
        raise InputError("input.messages holds no user message")
    return messages


def screen_text(
    text: str, *, rails: Guardrails, user: bool, vault: PiiVault | None = None, scope: VaultScope | None = None
) -> RailResult:
    """One message's text through its rail: the input rail for a user's, the context rail
    otherwise. With a vault and a scope, its PII becomes the thread's numbered placeholders
    first (so the rail, and whatever stores its result, never holds the values)."""
    found = []
    if vault is not None and scope is not None:
        text, found = vault.pseudonymize(text, policy=rails.policy, scope=scope)
    return screened(rails.check_input(text) if user else rails.check_context(text), found)


async def ascreen_text(
    text: str, *, rails: Guardrails, user: bool, vault: PiiVault | None = None, scope: VaultScope | None = None
) -> RailResult:
    """Async twin of :func:`screen_text`."""
    found = []
    if vault is not None and scope is not None:
        text, found = await vault.apseudonymize(text, policy=rails.policy, scope=scope)
    return screened(await rails.acheck_input(text) if user else rails.check_context(text), found)


async def screen_messages(
    messages: Sequence[BaseMessage], rails: Guardrails, *, batch: str,
    vault: PiiVault | None = None, scope: VaultScope | None = None,
) -> list[BaseMessage]:
    """Screen and mark messages, keeping their ids: user messages pass the input rail
    (redacted, or replaced by a placeholder when blocked), others the context rail; PII goes
    through ``vault`` in ``scope`` when both are given (:func:`screen_text`)."""
    out = []
    for message in messages:
        user = isinstance(message, HumanMessage)
        result = await ascreen_text(message.text, rails=rails, user=user, vault=vault, scope=scope)
        text = withheld(result.verdict) if user and result.blocked else result.text
        out.append(mark(message.model_copy(update={"content": text}), result.verdict, batch=batch))
    return out


async def prepare_input(
    value: Any, *, rails: Guardrails, policy: IntakePolicy, batch: str | None = None,
    vault: PiiVault | None = None, scope: VaultScope | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Validate, screen and redact a client's graph input; return the JSON input to store.

    With a ``vault`` and the run's ``scope`` (its tenant, thread and user), PII becomes the
    thread's numbered placeholders; without a scope (a run on no thread) it is redacted one way.

    Raises:
        InputError: the input is malformed or too large (nothing should be stored).
    """
    fresh = [_TYPES[kind](content=text, id=str(uuid.uuid4())) for kind, text in validate_input(value, policy)]
    done = await screen_messages(fresh, rails, batch=batch or str(uuid.uuid4()), vault=vault, scope=scope)
    return {"messages": [as_json(m) for m in done]}


def as_json(message: BaseMessage) -> dict[str, Any]:
    """A message as the JSON a graph input carries (LangChain's message dict form)."""
    return {
        "type": message.type,
        "content": message.content,
        "id": message.id,
        "additional_kwargs": message.additional_kwargs,
    }


def turn_verdict(messages: Iterable[BaseMessage], batch: str) -> Verdict:
    """The verdicts of every message of one input, folded into one."""
    return merge_verdicts(
        mark_["verdict"] for m in messages if (mark_ := screening(m)) and mark_["batch"] == batch
    )
