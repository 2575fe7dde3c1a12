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

import logging

from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from bulwark.graphs.state import AgentState, RunContext
from bulwark.guardrails.rails import Guardrails
from bulwark.memory.fusion import fit_budget, fuse
from bulwark.memory.longterm import IMPORTANCE, memory_namespace
from bulwark.nodes._text import latest_request, words

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

    def __call__(self, state: AgentState, runtime: Runtime[RunContext]) -> dict:
        request = latest_request(state["messages"])
        if request is None:
            return {"memories": []}
        query = words(request.text)
        notes = [n for n in state.get("working") or [] if query & words(n)]
        rankings = {"working": sorted(notes, key=lambda n: len(query & words(n)), reverse=True)}
        if runtime.store is not None:
            context = runtime.context or RunContext()
            try:
                rankings |= self.from_store(runtime.store, memory_namespace(context), request.text)
            except Exception as exc:  # noqa: BLE001 - memory must never take the answer down
                log.warning(
                    "recall failed, answering without long-term memory (tenant=%s user=%s): %s",
                    context.tenant_id, context.user_id, exc,
                )
        fused = fit_budget(fuse(rankings), max_tokens=self.max_tokens)
        return {"memories": [self.rails.check_context(memory.text).text for memory in fused]}

    def from_store(self, store: BaseStore, namespace: tuple[str, ...], query: str) -> dict[str, list[str]]:
        """The store's routes for ``query`` in ``namespace``."""
        searches = {
            "semantic": store.search(namespace, query=query, limit=self.per_route),
            "recent": store.search(namespace, limit=self.per_route),
            "important": store.search(
                namespace, filter={"importance": {"$gte": self.important}}, limit=self.per_route
            ),
        }
        return {route: [item.value["text"] for item in items] for route, items in searches.items()}
