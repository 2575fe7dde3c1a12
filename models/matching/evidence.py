"""How strongly the words around a candidate announce a slot.

Every scorer returns a :class:`Fit`: ``score`` ranks candidates for a slot; ``evidence``
is the part of it that says the request *mentions* this argument (its name next to the
value, a preposition of its role, a matching unit or option). Optional arguments need
:data:`EVIDENCE`; required ones take the best candidate there is.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.slots import Slot
from bulwark.models.matching.tables import ROLES, STOPWORDS
from bulwark.models.matching.text import stem


@dataclass(frozen=True)
class Fit:
    """How well a candidate fits a slot."""

    score: float
    evidence: float


EVIDENCE = 1.5
"""Score an optional argument's value needs: the request must *mention* the argument."""
_DISTANCE_WEIGHTS = (1.0, 0.85, 0.7, 0.55, 0.45, 0.35)
_PHRASE_DISTANCE_WEIGHTS = (1.0, 0.85, 0.4, 0.25, 0.15, 0.1)
"""A plain phrase is announced by the words right before it ("medium to oil"); further
back they usually describe another phrase."""
ROLE_WEIGHT = 2.5
"""A preposition of the slot's role right before the value ("from Paris" -> origin)."""


def cue_match(slot: Slot, word: str, before: str | None) -> float:
    """Weight of ``word`` as a cue for ``slot``; one-letter names ("a", "x") need ``=``."""
    s = stem(word)
    weight = slot.cues.get(s, 0.0)
    if not weight and len(s) >= 5:
        weight = max(
            (
                w * 0.6
                for c, w in slot.cues.items()
                if len(c) >= 5 and c.startswith(s[:5]) and s.startswith(c[:5])
            ),
            default=0.0,
        )
    if not weight and len(s) >= 4:
        # "user" announces "username"
        weight = max(
            (
                0.8 * slot.cues[c]
                for c in slot.name_stems
                if c.startswith(s) and len(c) - len(s) >= 3
            ),
            default=0.0,
        )
    if weight and len(word) == 1 and before not in ("=", ":", "is", "equals", "as", "of"):
        return 0.0
    if weight and word in STOPWORDS and len(word) > 1 and s not in slot.name_stems:
        return 0.0
    return weight


def context_score(slot: Slot, cand: Candidate) -> Fit:
    """How strongly the words around ``cand`` announce ``slot``.

    Words before the value count more the nearer they are; the first words after it
    count too ("3 bedrooms"), except for numbered slots (``num1``), where they name what
    is counted ("two numbers") rather than the value.
    """
    score = evidence = 0.0
    seen: set[str] = set()
    left = list(cand.left)
    decay = _PHRASE_DISTANCE_WEIGHTS if cand.kind == "phrase" else _DISTANCE_WEIGHTS
    for distance, word in enumerate(reversed(left[-len(decay) :])):
        nearer = left[len(left) - distance] if distance else None
        weight = cue_match(slot, word, nearer)
        if weight and stem(word) not in seen:
            seen.add(stem(word))
            score += weight * decay[distance]
            if weight >= 2.0:
                evidence += weight * decay[distance]
    if slot.ordinal and slot.ordinal in cand.roles:
        score, evidence = score + 1.5, evidence + 1.5
    preps = set(left[-2:]) | cand.roles
    for role in slot.roles:
        if preps & ROLES[role][1] or role in cand.roles:
            weak = preps & ROLES[role][1] <= {"at", "within", "on"} and role not in cand.roles
            weight = ROLE_WEIGHT * (0.7 if weak else 1.0)
            score += weight
            evidence += weight
            break
    if not slot.indexed:
        for distance, word in enumerate(cand.right[:2]):
            weight = cue_match(slot, word, None)
            if weight and stem(word) not in seen and word not in STOPWORDS:
                seen.add(stem(word))
                score += weight * (0.6, 0.3)[distance]
                if weight >= 2.0:
                    evidence += weight * (0.6, 0.3)[distance]
    return Fit(score, evidence)
