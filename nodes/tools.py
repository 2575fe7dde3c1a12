"""Tools: runs one tool call (each call is its own task, sent with ``Send``).

Calls to tools that need approval pause on ``interrupt`` first. Because every call is a
separate task, several approvals in one turn all surface at once and each resumes on its
own (by interrupt id). The call then goes through the :class:`~bulwark.tools.registry.
ToolRegistry` (validation, breaker, timeout, retries, idempotency key), so every outcome,
including a rejection, is a ``ToolMessage`` and the thread never holds a tool call without
a result. Side-effecting tools also go through the effect journal: a call that already
ran (or was cut short while running) is not run again, across crashes and resumes. Each
outcome also leaves a short note in the task's working memory (``state["working"]``).

With a PII vault (:mod:`bulwark.guardrails.vault`), the arguments a tool's policy lists in
``pii_args`` get the real values of their placeholders (``send_email.to``) in a copy of the
call made just before the registry runs it: the state, the checkpoints and the approval
request keep the placeholders. The result is pseudonymised as soon as the tool returns,
before the effect journal records it and the context rail reads it, so a value the user gave
comes back as the same placeholder.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphInterrupt
from langgraph.runtime import get_runtime
from langgraph.types import interrupt

from bulwark.graphs.state import RunContext, ToolTask
from bulwark.guardrails.detectors import Finding
from bulwark.guardrails.rails import Guardrails
from bulwark.guardrails.vault import PiiVault, VaultScope, screened
from bulwark.observability.telemetry import decided, span, tool_called
from bulwark.persistence.effects import Claim, EffectJournal
from bulwark.tools.idempotency import make_key
from bulwark.tools.registry import ToolRegistry

NOTE_CHARS = 200
CUT_SHORT = (
    "this call was interrupted while it ran and may already have taken effect; "
    "it was not run again (side effects run at most once). Check before asking again."
)


def is_approved(decision: Any) -> tuple[bool, str]:
    """Read a reviewer's resume value: ``True``/``"approve"`` or ``{"approved": bool,
    "reason": str}``; anything else counts as a rejection."""
    if isinstance(decision, dict):
        return bool(decision.get("approved")), str(decision.get("reason") or "")
    if isinstance(decision, str):
        return decision.strip().lower() in {"approve", "approved", "yes", "y"}, ""
    return decision is True, ""


def task_note(message: ToolMessage) -> str:
    """The working-memory note a tool outcome leaves: tool, status, start of the result."""
    text = " ".join(message.text.split())
    if len(text) > NOTE_CHARS:
        text = text[: NOTE_CHARS - 1] + "…"
    return f"{message.name} ({message.status}): {text}"


class RunTool:
    """Executes a single tool call after any approval it needs.

    Args:
        registry: runs the calls.
        journal: the effect journal of side-effecting calls.
        rails: the context rail every result passes.
        vault: restores the ``pii_args`` of a call and pseudonymises its result (none:
            placeholders stay as they are, results are redacted one way).
    """

    def __init__(
        self, *, registry: ToolRegistry, journal: EffectJournal, rails: Guardrails, vault: PiiVault | None = None
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.rails = rails
        self.vault = vault
        self._names = frozenset(tool.name for tool in registry.tools)

    def __call__(self, task: ToolTask, config: RunnableConfig) -> dict:
        scope = self._scope(config)
        with span("tool.call", **{"tool.name": task["call"]["name"]}) as opened:
            message, found = self._run(task["call"], config, scope)
            return self._update(self._observed(message, opened), found)

    async def acall(self, task: ToolTask, config: RunnableConfig) -> dict:
        """Async twin of :meth:`__call__`: the tool runs through ``registry.arun`` and the
        journal through its async methods."""
        scope = self._scope(config)
        with span("tool.call", **{"tool.name": task["call"]["name"]}) as opened:
            message, found = await self._arun(task["call"], config, scope)
            return self._update(self._observed(message, opened), found)

    def _scope(self, config: RunnableConfig) -> VaultScope | None:
        return VaultScope.of(config, get_runtime(RunContext).context) if self.vault is not None else None

    def _pii_args(self, call: ToolCall, scope: VaultScope | None) -> tuple[str, ...]:
        if self.vault is None or scope is None:
            return ()
        try:
            return self.registry.policy(call["name"]).pii_args
        except KeyError:  # unknown tool: it never runs
            return ()

    def _real(self, call: ToolCall, scope: VaultScope | None) -> ToolCall:
        """The call to run: its ``pii_args`` with their real values (a copy, never stored)."""
        if not (names := self._pii_args(call, scope)):
            return call
        return {**call, "args": self.vault.restore_args(call["args"], names, scope=scope)}  # type: ignore[union-attr,arg-type]

    async def _areal(self, call: ToolCall, scope: VaultScope | None) -> ToolCall:
        if not (names := self._pii_args(call, scope)):
            return call
        return {**call, "args": await self.vault.arestore_args(call["args"], names, scope=scope)}  # type: ignore[union-attr,arg-type]

    def _hidden(self, message: ToolMessage, scope: VaultScope | None) -> tuple[ToolMessage, list[Finding]]:
        """The tool's reply with its PII pseudonymised, and the PII found."""
        if self.vault is None or scope is None:
            return message, []
        text, found = self.vault.pseudonymize(message.text, policy=self.rails.policy, scope=scope)
        return (message.model_copy(update={"content": text}) if found else message), found

    async def _ahidden(self, message: ToolMessage, scope: VaultScope | None) -> tuple[ToolMessage, list[Finding]]:
        if self.vault is None or scope is None:
            return message, []
        text, found = await self.vault.apseudonymize(message.text, policy=self.rails.policy, scope=scope)
        return (message.model_copy(update={"content": text}) if found else message), found

    def _observed(self, message: ToolMessage, opened: Any) -> ToolMessage:
        """``message``, its outcome counted (and set on the ``tool.call`` span): ``success``,
        ``error``, ``blocked`` (never ran: invalid arguments, an open breaker, an unknown
        tool), ``rejected`` (by the reviewer) or ``replayed`` (from the effect journal)."""
        artifact = message.artifact if isinstance(message.artifact, dict) else {}
        if artifact.get("replayed"):
            outcome = "replayed"
        elif "attempts" not in artifact:
            outcome = "rejected"
        elif artifact["attempts"] == 0:
            outcome = "blocked"
        else:
            outcome = message.status
        name = message.name if message.name in self._names else "unknown"  # model-invented names stay out of labels
        tool_called(name, outcome, artifact.get("breaker") if name != "unknown" else None)
        if opened is not None:
            opened.set_attributes({"tool.status": outcome, "tool.attempts": artifact.get("attempts", 0)})
        return message

    def _update(self, message: ToolMessage, found: list[Finding]) -> dict:
        """The state update: the result through the context rail, and its note."""
        result = screened(self.rails.check_context(message.text), found)
        checked = message.model_copy(
            update={
                "content": result.text,
                "response_metadata": {**message.response_metadata, "guardrails": result.verdict},
            }
        )
        return {"messages": [checked], "working": [task_note(checked)]}

    def _run(self, call: ToolCall, config: RunnableConfig, scope: VaultScope | None) -> tuple[ToolMessage, list[Finding]]:
        key = self._gate(call, config)
        if isinstance(key, ToolMessage):
            return key, []
        if key is not None and (replay := _replayed(call, self.journal.claim(key))) is not None:
            return replay, []  # recorded already pseudonymised
        message, found = self._hidden(self.registry.run(self._real(call, scope), config=config), scope)
        if key is not None:
            self.journal.finish(key, message.status, message.text)
        return message, found

    async def _arun(
        self, call: ToolCall, config: RunnableConfig, scope: VaultScope | None
    ) -> tuple[ToolMessage, list[Finding]]:
        key = self._gate(call, config)
        if isinstance(key, ToolMessage):
            return key, []
        if key is not None and (replay := _replayed(call, await self.journal.aclaim(key))) is not None:
            return replay, []
        message, found = await self._ahidden(await self.registry.arun(await self._areal(call, scope), config=config), scope)
        if key is not None:
            await self.journal.afinish(key, message.status, message.text)
        return message, found

    def _gate(self, call: ToolCall, config: RunnableConfig) -> ToolMessage | str | None:
        """Before ``call`` runs: its answer if it must not run (a reviewer rejected it), the
        effect-journal key it runs under (side effects), or ``None`` (run it as it is)."""
        try:
            policy = self.registry.policy(call["name"])
        except KeyError:  # unknown tool: the registry answers with the list of tools
            return None
        if policy.requires_approval:
            try:
                decision = interrupt({"type": "approval", "tool": call["name"], "args": call["args"], "tool_call_id": call["id"]})
            except GraphInterrupt:  # raised until a reviewer answers; the resumed run returns the answer
                decided("approval_request")
                raise
            approved, reason = is_approved(decision)
            decided("approval_granted" if approved else "approval_rejected")
            if not approved:
                return _reply(call, f"rejected by reviewer{': ' + reason if reason else ''}", "error")
        if policy.idempotent:
            return None
        return make_key((config.get("configurable") or {}).get("thread_id"), call["id"])


def _reply(call: ToolCall, text: str, status: str, **artifact: Any) -> ToolMessage:
    return ToolMessage(text, tool_call_id=call["id"], name=call["name"], status=status, artifact=artifact)


def _replayed(call: ToolCall, claim: Claim) -> ToolMessage | None:
    """The answer for a call the journal has seen before; ``None`` if the claim is fresh."""
    if claim.outcome is not None:
        status, content = claim.outcome
        return _reply(call, content, status, replayed=True)
    if not claim.fresh:
        return _reply(call, CUT_SHORT, "error", replayed=True)
    return None
