"""Recall: the user's memories relevant to the request, from several routes fused into one.

Routes, each a ranking of memory texts:

- ``semantic``: vector search of the user's memories for the request;
- ``recent``: what the user told us most recently (newest memories first);
- ``important``: the facts scored most important (explicit "remember ...", preferences);
- ``working``: the notes of the task at hand in ``state["working"]``, by word overlap.

They are fused with reciprocal rank fusion, deduplicated and cut to the memory token budget
(:mod:`bulwark.memory.fusion`). Recalled text passes the context rail (instructions
neutralised, PII redacted) before the model sees it. Memory is an enrichment: if the store
fails (a Qdrant server down, say) the agent answers without it and the log says why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langgraph.runtime import get_runtime
from langgraph.store.base import BaseStore, SearchItem

from bulwark.graphs.state import AgentState, RunContext
from bulwark.guardrails.rails import Guardrails
from bulwark.memory.fusion import fit_budget, fuse
from bulwark.memory.longterm import IMPORTANCE, memory_namespace
from bulwark.nodes._text import latest_request, words
from bulwark.observability.metrics import MEMORY_RECALL_DURATION, timed
from bulwark.observability.telemetry import span
from bulwark.observability.langsmith import traced_recall

log = logging.getLogger(__name__)


class Recall:
    """Puts the fused memories, best first, into ``state["memories"]``.

    Args:
        rails: screens every recalled text.
        max_tokens: budget for all recalled memories together.
        per_route: how many memories each route contributes at most.
        important: the importance a fact needs for the ``important`` route.
    """

    def __init__(
        self,
        *,
        rails: Guardrails,
        max_tokens: int,
        per_route: int = 8,
        important: float = IMPORTANCE["preference"],
    ) -> None:
        self.rails = rails
        self.max_tokens = max_tokens
        self.per_route = per_route
        self.important = important

    def __call__(self, state: AgentState) -> dict:
        query, rankings, store, context = self._begin(state)
        failed = False
        if store is not None:
            try:
                rankings |= self.from_store(store, memory_namespace(context), query)
            except Exception as exc:  # noqa: BLE001 - memory must never take the answer down
                _store_failed(context, exc)
                failed = True
        return self._update(rankings, failed=failed)

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`: the store's routes are searched concurrently."""
        query, rankings, store, context = self._begin(state)
        failed = False
        if store is not None:
            try:
                rankings |= await self.afrom_store(store, memory_namespace(context), query)
            except Exception as exc:  # noqa: BLE001 - memory must never take the answer down
                _store_failed(context, exc)
                failed = True
        return self._update(rankings, failed=failed)

    @staticmethod
    def _begin(state: AgentState) -> tuple[str, dict[str, list[str]], BaseStore | None, RunContext]:
        """The request's text, the ``working`` route, and the store to search (``None``:
        no store, or no request to recall for) with the run's context."""
        runtime = get_runtime(RunContext)
        context = runtime.context or RunContext()
        request = latest_request(state["messages"])
        if request is None:
            return "", {}, None, context
        query = words(request.text)
        notes = [n for n in state.get("working") or [] if query & words(n)]
        working = sorted(notes, key=lambda n: len(query & words(n)), reverse=True)
        return request.text, {"working": working}, runtime.store, context

    def _update(self, rankings: dict[str, list[str]], *, failed: bool) -> dict:
        fused = fit_budget(fuse(rankings), max_tokens=self.max_tokens)
        memories = [self.rails.check_context(memory.text).text for memory in fused]
        return {"memories": memories, "recalled": {"count": len(memories), "failed": failed}}

    def _searches(self, query: str) -> dict[str, dict[str, Any]]:
        """Each store route's search arguments besides the namespace."""
        return {
            "semantic": {"query": query, "limit": self.per_route},
            "recent": {"limit": self.per_route},
            "important": {"filter": {"importance": {"$gte": self.important}}, "limit": self.per_route},
        }

    @traced_recall
    def from_store(self, store: BaseStore, namespace: tuple[str, ...], query: str) -> dict[str, list[str]]:
        """The store's routes for ``query`` in ``namespace``."""
        with span("memory.recall"):
            return {route: _texts(_search(store, namespace, route, search)) for route, search in self._searches(query).items()}

    @traced_recall
    async def afrom_store(self, store: BaseStore, namespace: tuple[str, ...], query: str) -> dict[str, list[str]]:
        """Async :meth:`from_store`, the routes searched concurrently."""
        searches = self._searches(query)
        with span("memory.recall"):
            found = await asyncio.gather(*(_asearch(store, namespace, route, search) for route, search in searches.items()))
        return {route: _texts(items) for route, items in zip(searches, found, strict=True)}


def _search(store: BaseStore, namespace: tuple[str, ...], route: str, search: dict[str, Any]) -> list[SearchItem]:
    with timed(MEMORY_RECALL_DURATION, route):
        return store.search(namespace, **search)


async def _asearch(store: BaseStore, namespace: tuple[str, ...], route: str, search: dict[str, Any]) -> list[SearchItem]:
    with timed(MEMORY_RECALL_DURATION, route):
        return await store.asearch(namespace, **search)


def _texts(items: list[SearchItem]) -> list[str]:
    return [item.value["text"] for item in items]


def _store_failed(context: RunContext, exc: Exception) -> None:
    log.warning(
        "recall failed, answering without long-term memory (tenant=%s user=%s): %s",
        context.tenant_id, context.user_id, exc,
    )
