"""Output guardrail: stops the answer from leaking the system prompt or credentials.

A leak of the system prompt replaces the answer; secrets that look like API keys or
private keys are redacted in place. The verdict is kept in the state and the audit.
"""

from __future__ import annotations

import re

from langchain_core.messages import AIMessage

from bulwark.graphs.state import AgentState, Verdict
from bulwark.nodes._text import latest_answer

_SECRETS = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|xox[bp]-[A-Za-z0-9-]{10,})\b"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_WINDOW = 8  # words of the system prompt that, quoted in a row, count as a leak


class GuardOutput:
    """Checks the final answer against the system prompt and secret patterns."""

    def __init__(self, *, system_prompt: str) -> None:
        tokens = system_prompt.lower().split()
        self._prompt_windows = {
            " ".join(tokens[i : i + _WINDOW]) for i in range(max(len(tokens) - _WINDOW + 1, 0))
        }

    def check(self, text: str) -> tuple[Verdict, str]:
        """Return the verdict and the text to deliver."""
        tokens = text.lower().split()
        if any(" ".join(tokens[i : i + _WINDOW]) in self._prompt_windows for i in range(len(tokens))):
            return (
                {"action": "block", "severity": "high", "reasons": ["system_prompt_leak"]},
                "Sorry, I can't share that.",
            )
        redacted, count = _SECRETS.subn("<SECRET>", text)
        if count:
            return {"action": "sanitize", "severity": "high", "reasons": ["secret_leak"]}, redacted
        return {"action": "allow", "severity": "none", "reasons": []}, text

    def __call__(self, state: AgentState) -> dict:
        answer = latest_answer(state["messages"])
        if answer is None:
            return {"output_verdict": {"action": "allow", "severity": "none", "reasons": []}}
        verdict, text = self.check(answer.text)
        update: dict = {"output_verdict": verdict}
        if text != answer.text:
            # Same id: add_messages replaces the answer instead of appending.
            update["messages"] = [AIMessage(content=text, id=answer.id, name=answer.name)]
        return update
