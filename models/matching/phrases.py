"""Plain noun phrases, the last resort of request analysis ("small green bird", "theory
of evolution"), and hyphenated modifiers ("gas-powered").
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from bulwark.models.matching.candidates import Candidate
from bulwark.models.matching.tables import (
    ALL_ROLE_PREPS,
    CONNECTORS,
    LEADING_VERBS,
    PREPOSITIONS,
    STOPWORDS,
)

if TYPE_CHECKING:
    from bulwark.models.matching.request import Request


def add_hyphen_modifiers(request: Request) -> None:
    """ "gas-powered": "gas", announced by the word after the hyphen."""
    for m in re.finditer(r"\b([A-Za-z]+)-([a-z]+)\b", request.masked):
        cand = Candidate(m.group(1), m.start(1), m.end(1), "phrase", sub=True)
        request.context(cand)
        if cand.right[:1] != (m.group(2).lower(),):
            cand.right = (m.group(2).lower(), *cand.right)
        request.candidates.append(cand)


def add_phrases(request: Request) -> None:
    """Plain noun phrases left over ("small green bird", "theft"), a last resort.

    Each run of content words is a candidate, and so is each part of it that ends
    before its last word ("small green", "green": announced by "bird"), and two runs
    joined by "of" ("theory of evolution"). Verbs in -ed at the edges of a run
    ("discovered radium") are left out. A phrase's left context stops at the previous
    phrase, whose words are its own.
    """
    runs = _phrase_runs(request)
    previous_end = 0
    for run in runs:
        start, end = run[0].start(), run[-1].end()
        cand = _phrase(request, start, end, previous_end)
        for first in range(max(0, len(run) - 4), len(run) - 1):
            # "human cell": "human" is announced by the word after it.
            modifier = _phrase(request, run[first].start(), run[-2].end(), previous_end)
            modifier.right = (run[-1].group().lower(), *cand.right)
            modifier.sub = True
        previous_end = end
    request.mark_pairs([c for c in request.of_kind("phrase") if not c.sub])
    for a, b in itertools.pairwise(runs):
        if re.fullmatch(r"\s+of\s+(?:the\s+)?", request.text[a[-1].end() : b[0].start()]):
            before = max((r[-1].end() for r in runs if r[-1].end() <= a[0].start()), default=0)
            _phrase(request, a[0].start(), b[-1].end(), before).sub = True


def _phrase_runs(request: Request) -> list[list[re.Match[str]]]:
    masked = request.masked
    skip = STOPWORDS | LEADING_VERBS | ALL_ROLE_PREPS | CONNECTORS | PREPOSITIONS
    runs: list[list[re.Match[str]]] = []
    run: list[re.Match[str]] = []
    for m in [*list(re.finditer(r"[A-Za-z][A-Za-z'-]*|[^\sA-Za-z]+", masked)), None]:  # type: ignore[list-item]
        ok = m is not None and m.group()[0].isalpha() and m.group().lower() not in skip
        if ok and run and request.text[run[-1].end() : m.start()].strip() == "":
            run.append(m)
            continue
        while len(run) > 1 and _is_verb_form(run[0].group()):
            run.pop(0)
        while len(run) > 1 and _is_verb_form(run[-1].group()):
            run.pop()
        if run and (len(run) > 1 or len(run[0].group()) > 1):
            runs.append(run)
        run = [m] if ok else []
    return runs


def _phrase(request: Request, start: int, end: int, previous_end: int) -> Candidate:
    cand = Candidate(request.masked[start:end], start, end, "phrase")
    request.context(cand)
    request.candidates.append(cand)
    return cand


def _is_verb_form(word: str) -> bool:
    """A past participle such as "discovered" or "published" (not "speed", "red")."""
    w = word.lower()
    return len(w) > 4 and w.endswith("ed") and w[-3] != "e"
