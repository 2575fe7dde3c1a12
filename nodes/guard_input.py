"""Input guardrail: the turn's verdict, from every message of the input and recent turns.

Every user message is screened once by the input rail (see
:mod:`bulwark.guardrails.rails`): size, prompt injection and jailbreaks (also encoded or
obfuscated), toxicity and harmful requests, denied topics, then PII. Inputs from the
server and the CLI arrive already screened and marked by :mod:`bulwark.guardrails.intake`
(so the raw text was never stored); any message without a mark (a caller of the Python
API) is screened here, its PII through the PII vault when there is one and the run has a
thread (:func:`~bulwark.guardrails.intake.screen_text`). Nothing is screened twice.

The turn's verdict folds the verdicts of all the messages of its input, then the last
``window_turns`` user messages are read together for injections and jailbreaks
(:func:`~bulwark.guardrails.checks.check_window`, well under a millisecond), so one split
across turns is caught too. A blocked turn goes to the polite refusal, and its messages are
replaced by placeholders: the model never reads them, on this turn or a later one.
"""

from __future__ import annotations

import logging
import uuid

from langchain_core.messages import AnyMessage, HumanMessage

from bulwark.graphs.state import AgentState, Verdict
from bulwark.guardrails.checks import RailResult, check_window, merge_verdicts
from bulwark.guardrails.intake import ascreen_text, mark, screen_text, screening, turn_verdict, withheld
from bulwark.guardrails.rails import Guardrails
from bulwark.guardrails.vault import PiiVault, VaultScope
from bulwark.nodes._text import latest_request

log = logging.getLogger(__name__)


class GuardInput:
    """Records the turn's input verdict; stores the screened (redacted) messages.

    Args:
        rails: the input rail.
        window_turns: user messages read together to catch injections split across turns.
        vault: pseudonymises the PII of unmarked messages (none: one-way redaction).
    """

    def __init__(self, *, rails: Guardrails, window_turns: int = 4, vault: PiiVault | None = None) -> None:
        self.rails = rails
        self.window_turns = window_turns
        self.vault = vault

    def _screened(self, messages: list[AnyMessage], results: list[RailResult], batch: str) -> list[AnyMessage]:
        """``messages`` with each unmarked user message replaced by its screened copy."""
        fresh = iter(results)
        out: list[AnyMessage] = []
        for m in messages:
            if isinstance(m, HumanMessage) and screening(m) is None:
                result = next(fresh)
                text = withheld(result.verdict) if result.blocked else result.text
                m = mark(m.model_copy(update={"content": text}), result.verdict, batch=batch)  # type: ignore[assignment]
            out.append(m)
        return out

    def _window(self, messages: list[AnyMessage]) -> str | None:
        """The recent user messages joined, if there is more than one to read together."""
        texts = [
            m.text for m in messages
            if isinstance(m, HumanMessage) and (s := screening(m)) and s["verdict"]["action"] != "block"
        ][-self.window_turns :]
        # Joined by a space: a cue split across turns reads as one sentence.
        return " ".join(texts)[-self.rails.policy.max_input_chars :] if len(texts) > 1 else None

    def _update(self, before: list[AnyMessage], after: list[AnyMessage], window: RailResult | None) -> dict:
        request = latest_request(after)
        if request is None:
            verdict: Verdict = {"action": "block", "severity": "low", "reasons": ["empty_request"]}
        else:
            batch = screening(request)["batch"]  # type: ignore[index]
            verdict = turn_verdict(after, batch)
            if window is not None and window.blocked:
                verdict = merge_verdicts([verdict, window.verdict])
                after = [
                    mark(m.model_copy(update={"content": withheld(verdict)}), verdict, batch=batch)
                    if (s := screening(m)) and s["batch"] == batch and isinstance(m, HumanMessage) else m
                    for m in after
                ]
        log.info("turn_started", extra={"messages": len(after)})
        if verdict["action"] != "allow":  # categories only, never the text
            log.log(logging.WARNING if verdict["action"] == "block" else logging.INFO, "rail_verdict",
                    extra={"rail": "input", "action": verdict["action"], "reasons": verdict["reasons"]})
        # Per-turn fields are reset here, at the start of every turn.
        update: dict = {"input_verdict": verdict, "output_verdict": None, "route": None, "memories": []}
        # Same ids: the messages channel replaces the stored messages instead of appending.
        changed = [new for old, new in zip(before, after, strict=True) if new is not old]
        if changed:
            update["messages"] = changed
        return update

    @staticmethod
    def _unscreened(messages: list[AnyMessage]) -> list[str]:
        return [m.text for m in messages if isinstance(m, HumanMessage) and screening(m) is None]

    def _finish(self, before: list[AnyMessage], results: list[RailResult]) -> dict:
        after = self._screened(before, results, str(uuid.uuid4()))
        turn = screening(r) if (r := latest_request(after)) else None
        window = self._window(after) if turn and turn["verdict"]["action"] != "block" else None
        return self._update(before, after, check_window(window) if window else None)

    def _scope(self, texts: list[str]) -> VaultScope | None:
        return VaultScope.of_run() if self.vault is not None and texts else None

    def __call__(self, state: AgentState) -> dict:
        before = state["messages"]
        texts = self._unscreened(before)
        options = {"rails": self.rails, "user": True, "vault": self.vault, "scope": self._scope(texts)}
        return self._finish(before, [screen_text(text, **options) for text in texts])

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`."""
        before = state["messages"]
        texts = self._unscreened(before)
        options = {"rails": self.rails, "user": True, "vault": self.vault, "scope": self._scope(texts)}
        return self._finish(before, [await ascreen_text(text, **options) for text in texts])
