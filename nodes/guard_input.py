"""Input guardrail: refuses empty, oversized and obviously adversarial requests.

This is the first line of rules; NeMo Guardrails rails with fuller detectors (PII,
toxicity, obfuscated injection) plug in here later without changing the graph.
"""

from __future__ import annotations

import re

from bulwark.graphs.state import AgentState, Verdict
from bulwark.nodes._text import latest_request

_INJECTION = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(ignore|disregard|forget)\b.{0,40}\b(previous|prior|above|all|your)\b.{0,20}"
        r"\b(instructions?|rules|prompts?|guidelines)\b",
        r"\b(reveal|print|show|repeat|output)\b.{0,30}\b(system|hidden|initial)\s+"
        r"(prompt|instructions?|message)\b",
        r"\byou are (now )?(dan|in developer mode|jailbroken)\b",
        r"</?\s*(system|im_start|im_end)\s*>|\[/?(system|inst)\]",
    )
]

ALLOW: Verdict = {"action": "allow", "severity": "none", "reasons": []}


class GuardInput:
    """Checks the latest request and records a verdict; ``block`` sends it to refusal."""

    def __init__(self, *, max_chars: int) -> None:
        self.max_chars = max_chars

    def check(self, text: str) -> Verdict:
        """Return the verdict for one request text."""
        if not text.strip():
            return {"action": "block", "severity": "low", "reasons": ["empty_request"]}
        if len(text) > self.max_chars:
            return {"action": "block", "severity": "medium", "reasons": ["request_too_long"]}
        if any(p.search(text) for p in _INJECTION):
            return {"action": "block", "severity": "high", "reasons": ["prompt_injection"]}
        return ALLOW

    def __call__(self, state: AgentState) -> dict:
        request = latest_request(state["messages"])
        verdict = self.check(request.text if request else "")
        return {"input_verdict": verdict, "output_verdict": None, "route": None, "memories": []}
