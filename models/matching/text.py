"""Words of a text: tokens, a crude stemmer, and the concepts a word stands for.

The stemmer is our own suffix stripper rather than a library's (NLTK's Porter, Snowball):
the rules only need ``calculator`` and ``calculate`` to meet, and a fixed, tiny set of
rules keeps the offline model's choices reproducible with no extra dependency.
"""

from __future__ import annotations

import re

from bulwark.models.matching.tables import (
    CONCEPT_WORDS,
    IRREGULAR,
    STOPWORDS,
    SUFFIXES,
    WEAK_SYNONYM_WORDS,
)

WORD = re.compile(r"[A-Za-z0-9]+")


def stem(word: str) -> str:
    """Crude suffix-stripping stemmer: ``calculator``/``calculate`` -> ``calcul``."""
    w = word.lower()
    w = IRREGULAR.get(w, w)
    if not w.isalpha():
        return w
    for _ in range(3):
        for suf in SUFFIXES:
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                w = w[: -len(suf)] + ("y" if suf in ("ies", "ied") else "")
                break
        else:
            break
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-case words of ``text``; snake_case and camelCase identifiers are split."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
    return [w.lower() for w in WORD.findall(text)]


def content_stems(text: str) -> list[str]:
    """Stems of the words of ``text`` that are neither stopwords nor numbers."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and not w.isdigit()]


def words_between(text: str, start: int, end: int) -> list[str]:
    """Lower-case words, numbers and ``=``/``$``/``%`` signs of ``text[start:end]``."""
    return [
        w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'’]*|\d+(?:\.\d+)?|[=$%]", text[start:end])
    ]


# ------------------------------------------------------------------------- concepts

WEAK_SYNONYMS: frozenset[str] = frozenset(stem(w) for w in WEAK_SYNONYM_WORDS)
"""Synonyms too common to pick a tool alone: they count as a weak concept hint only."""

CONCEPTS: dict[str, frozenset[str]] = {
    name: frozenset(stem(w) for w in ws) for name, ws in CONCEPT_WORDS.items()
}
"""Concept name -> stems of its synonyms."""


def concepts_of(stemmed: str) -> list[str]:
    """Concepts whose synonym list contains the stem."""
    return [name for name, stems in CONCEPTS.items() if stemmed in stems]
