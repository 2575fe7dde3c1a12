"""Toxicity and harmful-request detection: compact word lists and request patterns.

Why word lists and not a classifier: Detoxify and the HuggingFace toxicity models need
torch plus weights downloaded from the model hub, which this deployment cannot reach,
and NeMo's moderation rails call an LLM. A list is also predictable: it never flags a
word it does not contain, and every finding names the phrase behind it. The cost is
recall on paraphrase, so the lists aim at what must never pass (slurs, threats,
requests for serious harm) rather than at rudeness in general.

Two reasons:

* ``toxicity``: slurs, threats, telling someone to kill themselves and calls for
  violence against a group are HIGH; profanity and insults aimed at someone are MEDIUM.
* ``harmful_request``: asking *how to do* serious harm (make weapons, explosives or
  hard drugs, write malware, break into someone's account, self-harm methods) is HIGH,
  MEDIUM when the same text is framed defensively ("protect", "detect", "prevent").
  Sexual content involving minors is HIGH in every framing, fiction included.

Patterns need a request or an intent, not a topic: "how does ransomware work", "the
history of the atomic bomb", "kill -9", "kill the process", "shoot a photo",
"attack surface" and games do not match. Every view from :func:`normalize.views` is
checked, so "b1tch", "f u c k" and look-alike letters are caught too.

The word lists and rules are data: ``data/toxicity_rules.json`` (terms, rules, context
patterns) and the rot13-encoded slur lists ``data/toxicity_slurs*.txt``; their format is
in ``data/README.md``. They are read and compiled on first use, so importing the module
costs almost nothing. This module holds the logic: gates, windows, framing, severity.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bulwark.guardrails.detectors import Finding
from bulwark.guardrails.detectors.normalize import views

if TYPE_CHECKING:  # graphs.state imports LangGraph (seconds); Severity is only an annotation here
    from bulwark.graphs.state import Severity

_DATA = Path(__file__).with_name("data")
_TOKEN = re.compile(r"[a-z0-9]+")
# "{name}" in a pattern of the table is a term or fragment ("{0,3}", a repetition, is not).
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    reason: str
    severity: Severity
    pattern: re.Pattern[str]
    """Starts with a literal alternation (fast to scan for) that must start a word."""
    before: re.Pattern[str] | None
    """When set, must match (anchored with ``$``) the text just before the match."""
    near: re.Pattern[str] | None
    """When set, must match as a word in the same sentence, at most :data:`_NEAR` characters away."""
    gates: tuple[str, ...]
    """The rule only runs on a view with a word that starts with one of these (single
    words) or that contains one of them (phrases)."""


class _Context(NamedTuple):
    """Patterns of the text around a finding that change its severity."""

    defensive: re.Pattern[str]
    child_safety: re.Pattern[str]
    explicit: re.Pattern[str]
    not_weapon: re.Pattern[str]
    game: re.Pattern[str]


class _Tables(NamedTuple):
    rules: tuple[_Rule, ...]
    context: _Context


def _lines(file: str) -> list[str]:
    return [line for line in (_DATA / file).read_text(encoding="utf-8").split("\n") if line]


@cache
def _tables() -> _Tables:
    """The rules and context patterns of ``data/toxicity_rules.json``, compiled on first use
    (compiling them at import cost every process that imports the rails ~70 ms)."""
    table = json.loads((_DATA / "toxicity_rules.json").read_text(encoding="utf-8"))
    # Slurs are stored rot13-encoded so the files do not spell them out; the ambiguous ones
    # are regexes that exclude their innocent uses. Longest first: one slur may start another.
    slurs = [codecs.decode(w, "rot13") for w in _lines("toxicity_slurs.txt")]
    ambiguous = [codecs.decode(w, "rot13") for w in _lines("toxicity_slurs_ambiguous.txt")]
    parts = {name: "(?:" + "|".join(alternatives) + ")" for name, alternatives in table["terms"].items()}
    parts["slurs"] = "(?:" + "|".join([*map(re.escape, sorted(slurs, key=len, reverse=True)), *ambiguous]) + ")"

    def expand(pattern: str) -> str:
        return _PLACEHOLDER.sub(lambda m: parts[m[1]], pattern)

    for name, fragment in table["fragments"].items():
        parts[name] = expand(fragment)

    def rule(entry: dict[str, Any]) -> _Rule:
        # A single-word gate is looked for as " word" in the view's space-joined words.
        gates = tuple(f" {g}" if _TOKEN.fullmatch(g) else g for g in entry["gates"])
        before, near = entry.get("before"), entry.get("near")
        return _Rule(
            entry["name"], entry["reason"], entry["severity"], re.compile(expand(entry["pattern"])),
            re.compile(expand(before) + "$") if before else None,
            re.compile(rf"\b{expand(near)}\b") if near else None, gates,
        )

    context = _Context(**{name: re.compile(expand(p)) for name, p in table["context"].items()})
    return _Tables(tuple(rule(entry) for entry in table["rules"]), context)


_BEFORE_WINDOW = 80


def _matches(view: str) -> list[tuple[_Rule, re.Match[str]]]:
    words = " " + " ".join(set(_TOKEN.findall(view)))
    found = []
    for rule in _tables().rules:
        if not any(g in (words if g[0] == " " else view) for g in rule.gates):
            continue
        for match in rule.pattern.finditer(view):
            at = match.start()
            if at and view[at - 1].isalnum() and view[at].isalnum():
                continue  # starts inside a word
            if rule.before and not rule.before.search(view, max(at - _BEFORE_WINDOW, 0), at):
                continue
            if rule.near and not _is_near(rule.near, view, match):
                continue
            found.append((rule, match))
    return found


_NEAR = 60
_SENTENCE_END = re.compile(r"[.!?\n]")


def _is_near(pattern: re.Pattern[str], view: str, match: re.Match[str]) -> bool:
    """Whether the pattern occurs in the match's sentence, close to it."""
    left = max(match.start() - _NEAR, 0)
    ends = [m.end() for m in _SENTENCE_END.finditer(view, left, match.start())]
    stop = _SENTENCE_END.search(view, match.end(), match.end() + _NEAR)
    return pattern.search(view, ends[-1] if ends else left, stop.start() if stop else match.end() + _NEAR) is not None


def _severity(rule: _Rule, match: re.Match[str], view: str) -> Severity | None:
    """The finding's severity in context, or None when the context clears it."""
    context = _tables().context
    if rule.name.startswith("child_"):
        # HIGH in every framing (fiction, hypothetical, "for research"); only text about
        # keeping children safe from such content is not a request for it.
        return None if context.child_safety.search(view) and not context.explicit.search(match[0]) else "high"
    if rule.name.startswith("weapons") and (context.not_weapon.search(view[max(match.start() - 8, 0) : match.end()]) or context.game.search(view)):
        return None
    if rule.name == "violence_request" and context.game.search(view):
        return None
    if rule.reason == "harmful_request" and not rule.name.startswith(("self_harm", "child_")) and context.defensive.search(view):
        return "medium"
    return rule.severity


def detect_toxicity(text: str) -> list[Finding]:
    """Toxicity and harmful-request findings in a text; empty when clean.

    ``toxicity`` is HIGH for slurs, threats, incitement to self-harm and calls for
    violence against a group, MEDIUM for profanity and insults; ``harmful_request`` is
    HIGH for requests for instructions to cause serious harm (MEDIUM when framed
    defensively), and always HIGH for sexual content involving minors. Findings in the
    text itself have spans; those only visible in a de-obfuscated view do not.
    """
    findings: list[Finding] = []
    seen: set[str] = set()
    for index, view in enumerate(views(text)):
        lowered = view.lower()
        original = index == 0 and len(lowered) == len(text)
        for rule, match in _matches(lowered):
            severity = _severity(rule, match, lowered)
            if severity is None or (not original and rule.name in seen):
                continue
            seen.add(rule.name)
            span = match.span() if original else (None, None)
            findings.append(Finding(rule.reason, severity, *span))
    return findings
