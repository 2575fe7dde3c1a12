"""Reciprocal rank fusion: several rankings of memories merged into one.

Each recall route (recent, working, semantic, important) ranks memories its own way and on
its own scale (cosine similarity, recency, importance), so the scores cannot be compared.
RRF (Cormack et al., 2009) uses ranks only: a memory scores ``sum(1 / (k + rank))`` over the
routes that found it, so what several routes agree on rises. Memories that differ only in
case or spacing are one memory. The fused list is then cut to a token budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from langchain_core.messages.utils import count_tokens_approximately

RRF_K = 60
"""The usual constant: damps the weight of top ranks so one route cannot dominate."""


@dataclass
class Fused:
    """One memory after fusion: its text, its RRF score and the routes that found it."""

    text: str
    score: float = 0.0
    routes: list[str] = field(default_factory=list)


def fuse(rankings: Mapping[str, Sequence[str]], *, k: int = RRF_K) -> list[Fused]:
    """Merge ``{route: texts best first}`` into one list, best first, without duplicates."""
    fused: dict[str, Fused] = {}
    for route, texts in rankings.items():
        for rank, text in enumerate(dict.fromkeys(texts), start=1):
            entry = fused.setdefault(" ".join(text.lower().split()), Fused(text=text))
            entry.score += 1 / (k + rank)
            entry.routes.append(route)
    return sorted(fused.values(), key=lambda entry: entry.score, reverse=True)


def fit_budget(memories: Sequence[Fused], *, max_tokens: int) -> list[Fused]:
    """The best memories whose texts fit in ``max_tokens`` together (skipping any too long)."""
    kept, used = [], 0
    for memory in memories:
        cost = count_tokens_approximately([memory.text], extra_tokens_per_message=0)
        if used + cost <= max_tokens:
            kept.append(memory)
            used += cost
    return kept
