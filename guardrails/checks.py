"""The checks behind every rail: detectors combined into one verdict and a safe text.

``check_input`` screens a user request, ``check_output`` an answer, ``check_context`` a
tool result or a retrieved document (indirect injection). Each returns a
:class:`RailResult`: the verdict (block, sanitize, flag or allow, with a severity and
reasons) and the text to use in place of the original. HIGH findings block; PII and
secrets are redacted; injected instructions in context are neutralised.

These functions are what the NeMo actions in ``guardrails/config/actions.py`` call, and
what the streaming rail calls chunk by chunk.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bulwark.graphs.state import Severity, Verdict
from bulwark.guardrails.detectors import Finding
from bulwark.guardrails.detectors.injection import (
    detect_indirect_injection,
    detect_injection,
    neutralize,
)
from bulwark.guardrails.detectors.pii import ENTITIES, find_pii
from bulwark.guardrails.detectors import grounding
from bulwark.guardrails.detectors.harmful import detect_harmful
from bulwark.guardrails.detectors.toxicity import detect_toxicity

_RANK: dict[Severity, int] = {"none": 0, "low": 1, "medium": 2, "high": 3}
_SECRETS = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|xox[bp]-[A-Za-z0-9-]{10,}"
    r"|bwk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43,}"  # Bulwark's own API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"  # JWTs
    r"(?![A-Za-z0-9_-])"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
)
_PROMPT_WINDOW = 8  # words of the system prompt that, quoted in a row, count as a leak
BLOCKED_ANSWER = "Sorry, I can't share that."


@dataclass(frozen=True, kw_only=True)
class RailPolicy:
    """What the rails enforce. Build it once; it is shared by every check."""

    max_input_chars: int = 8000
    """Longer requests are refused."""
    system_prompt: str = ""
    """Quoting :data:`_PROMPT_WINDOW` words of it in a row is a leak."""
    pii_entities: Collection[str] = ENTITIES
    """Entities redacted from requests, context and answers."""
    denied_topics: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Topic name -> phrases; a request or answer that mentions one is refused."""

    _prompt_windows: frozenset[str] = field(init=False, repr=False, compare=False)
    _topics: dict[str, re.Pattern[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        topics = {
            topic: re.compile(
                r"\b(" + "|".join(re.escape(p.strip()) for p in phrases if p.strip()) + r")\b",
                re.IGNORECASE,
            )
            for topic, phrases in self.denied_topics.items()
        }
        object.__setattr__(self, "_prompt_windows", frozenset(_windows(self.system_prompt)))
        object.__setattr__(self, "_topics", topics)

    def topic_findings(self, text: str) -> list[Finding]:
        """A HIGH finding per denied topic the text mentions."""
        return [
            Finding(f"denied_topic:{topic}", "high", m.start(), m.end())
            for topic, pattern in self._topics.items()
            if (m := pattern.search(text))
        ]

    def leaks_prompt(self, text: str) -> bool:
        """Whether the text quotes the system prompt."""
        return bool(self._prompt_windows) and not self._prompt_windows.isdisjoint(_windows(text))


def _windows(text: str) -> Iterator[str]:
    """Every run of :data:`_PROMPT_WINDOW` words of the text, lower-cased."""
    tokens = text.lower().split()
    return (" ".join(tokens[i : i + _PROMPT_WINDOW]) for i in range(len(tokens) - _PROMPT_WINDOW + 1))


@dataclass(frozen=True)
class RailResult:
    """A rail's verdict and the text to use instead of the one checked."""

    verdict: Verdict
    text: str

    @property
    def blocked(self) -> bool:
        """Whether the text must not be used."""
        return self.verdict["action"] == "block"

    def as_dict(self) -> dict:
        """JSON-friendly form (what the NeMo actions return)."""
        return {"verdict": dict(self.verdict), "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping) -> RailResult:
        """Inverse of :meth:`as_dict`."""
        return cls(verdict=data["verdict"], text=data["text"])


def verdict_of(findings: Iterable[Finding], *, changed: bool) -> Verdict:
    """Fold findings into one verdict: HIGH blocks, a rewrite sanitizes, others flag."""
    findings = list(findings)
    if not findings:
        return {"action": "allow", "severity": "none", "reasons": []}
    severity = max((f.severity for f in findings), key=_RANK.__getitem__)
    action = "block" if severity == "high" else "sanitize" if changed else "flag"
    reasons = sorted({f.reason for f in findings})
    return {"action": action, "severity": severity, "reasons": reasons}


_ACTION_RANK = {"allow": 0, "flag": 1, "sanitize": 2, "block": 3}


def merge_verdicts(verdicts: Iterable[Verdict]) -> Verdict:
    """Fold several verdicts into one: the strictest action and severity, every reason."""
    merged: Verdict = {"action": "allow", "severity": "none", "reasons": []}
    for v in verdicts:
        merged = {
            "action": max(merged["action"], v["action"], key=_ACTION_RANK.__getitem__),
            "severity": max(merged["severity"], v["severity"], key=_RANK.__getitem__),
            "reasons": sorted({*merged["reasons"], *v["reasons"]}),
        }
    return merged


def error_result(
    text: str, error: BaseException | str, *, fail_closed: bool, blocked_text: str | None = None
) -> RailResult:
    """The result of a rail that failed: a block (closed) or a flagged pass (open).

    The reason ``rail_error:<Type>`` tells it apart from a detector's block;
    ``blocked_text`` replaces the text when failing closed (default: unchanged).
    """
    kind = error if isinstance(error, str) else type(error).__name__
    reasons = [f"rail_error:{kind}"]
    if fail_closed:
        verdict: Verdict = {"action": "block", "severity": "high", "reasons": reasons}
        return RailResult(verdict, text if blocked_text is None else blocked_text)
    return RailResult({"action": "flag", "severity": "low", "reasons": reasons}, text)


def check_input(text: str, policy: RailPolicy) -> RailResult:
    """Screen a user request: size, injection, toxicity, harmful requests, denied topics, then secrets and PII."""
    if not text.strip():
        return RailResult({"action": "block", "severity": "low", "reasons": ["empty_request"]}, text)
    if len(text) > policy.max_input_chars:
        verdict: Verdict = {"action": "block", "severity": "medium", "reasons": ["request_too_long"]}
        return RailResult(verdict, text)
    findings = detect_injection(text) + detect_toxicity(text) + detect_harmful(text) + policy.topic_findings(text)
    spans = redactions(text, policy)
    redacted = redact(text, spans)
    return RailResult(verdict_of(findings + spans, changed=redacted != text), redacted)


def check_window(text: str) -> RailResult:
    """Screen recent user turns read together, each already screened on its own: only what
    splitting a text can hide from the input rail, prompt injection and jailbreaks."""
    return RailResult(verdict_of(detect_injection(text), changed=False), text)


def blocking_findings(text: str, policy: RailPolicy) -> list[Finding]:
    """Findings that stop an answer: a system-prompt leak, toxicity, harmful content, denied topics."""
    findings = [Finding("system_prompt_leak", "high")] if policy.leaks_prompt(text) else []
    return findings + detect_toxicity(text) + detect_harmful(text) + policy.topic_findings(text)


def redactions(text: str, policy: RailPolicy) -> list[Finding]:
    """Secrets and PII in the text, as findings with spans, sorted and non-overlapping."""
    found = [Finding("secret_leak", "medium", m.start(), m.end()) for m in _SECRETS.finditer(text)]
    if policy.pii_entities:
        found += [
            Finding(f"pii:{s.entity}", "medium", s.start, s.end)
            for s in find_pii(text, entities=policy.pii_entities)
        ]
    kept: list[Finding] = []
    for finding in sorted(found, key=lambda f: (f.start, -(f.end or 0))):
        if not kept or finding.start >= kept[-1].end:  # type: ignore[operator]
            kept.append(finding)
    return kept


def redaction_label(finding: Finding) -> str:
    """The entity a redaction span stands for: ``EMAIL``, ``PERSON``…, ``SECRET``."""
    return finding.reason.split(":", 1)[1] if finding.reason.startswith("pii:") else "SECRET"


def redact(text: str, spans: Sequence[Finding], *, placeholders: Sequence[str] | None = None) -> str:
    """Replace each span with its placeholder: ``<EMAIL>``, ``<SECRET>``..., or with
    ``placeholders[i]`` for the i-th span (the PII vault's numbered ``<EMAIL_1>``)."""
    out, at = [], 0
    for i, f in enumerate(spans):
        out += [text[at : f.start], placeholders[i] if placeholders is not None else f"<{redaction_label(f)}>"]
        at = f.end  # type: ignore[assignment]
    return "".join(out) + text[at:]


def check_output(text: str, policy: RailPolicy, *, sources: Sequence[str] = ()) -> RailResult:
    """Screen an answer: prompt leak, toxicity, denied topics, secrets, PII, sources.

    ``sources`` names the tools and knowledge used for the answer; when the answer
    names none of them, a ``Sources:`` line is appended.
    """
    findings = blocking_findings(text, policy)
    if any(f.severity == "high" for f in findings):
        return RailResult(verdict_of(findings, changed=True), BLOCKED_ANSWER)
    spans = redactions(text, policy)
    safe = redact(text, spans)
    findings += spans
    named = dict.fromkeys(sources)
    if named and not any(s.lower() in safe.lower() for s in named):
        safe = f"{safe.rstrip()}\n\nSources: {', '.join(named)}"
        findings.append(Finding("sources_added", "low"))
    return RailResult(verdict_of(findings, changed=safe != text), safe)


def check_context(text: str, policy: RailPolicy) -> RailResult:
    """Screen a tool result or retrieved document before the model reads it.

    Injected instructions are neutralised in place and flagged (never a block: the
    model still gets the rest of the content); secrets and PII are redacted as in requests.
    """
    findings = detect_indirect_injection(text)
    neutral = neutralize(text, findings) if findings else text
    spans = redactions(neutral, policy)
    safe = redact(neutral, spans)
    verdict = verdict_of(findings + spans, changed=safe != text)
    if verdict["action"] == "block":  # neutralised content is safe to pass on
        verdict = {**verdict, "action": "sanitize"}
    return RailResult(verdict, safe)


UNGROUNDED_NOTE = "\n\nNote: parts of this answer ({claims}) could not be verified against the sources used."
_NOTE_START = UNGROUNDED_NOTE.split("{", 1)[0]


def check_grounding(text: str, evidence: Sequence[str], *, max_listed: int = 5) -> RailResult:
    """Check an answer against the evidence it rests on (tool results, knowledge passages,
    the user's messages): numbers, dates, names and quotes the evidence does not support
    get :data:`UNGROUNDED_NOTE` appended, naming up to ``max_listed`` of them, and a
    ``flag`` verdict with reasons ``ungrounded`` and ``ungrounded:<kind>`` (the kinds,
    never the claims). Never a block. A note from an earlier check (an answer from the
    cache) is replaced, not repeated.
    """
    answer = text[: at] if (at := text.find(_NOTE_START)) >= 0 else text
    found = grounding.check_grounding(answer, evidence)
    if found.grounded:
        verdict: Verdict = {"action": "allow", "severity": "none", "reasons": []}
        return RailResult(verdict, answer)
    listed = list(dict.fromkeys(c.text for c in found.unsupported))
    claims = ", ".join(f"\u201c{c}\u201d" for c in listed[:max_listed]) + (", \u2026" if len(listed) > max_listed else "")
    reasons = sorted({"ungrounded", *(f"ungrounded:{c.kind}" for c in found.unsupported)})
    return RailResult({"action": "flag", "severity": "low", "reasons": reasons}, answer.rstrip() + UNGROUNDED_NOTE.format(claims=claims))
