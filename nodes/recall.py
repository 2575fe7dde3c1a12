"""Recall: fetches the user's long-term memories relevant to the request from the store.

Memories live in the LangGraph store under ``("memories", tenant, user)``, so the graph,
the LangGraph server's ``/store`` API and Studio see the same ones. Ranking here is word
overlap; semantic search and rank fusion arrive with the Qdrant store. Recalled text
passes the context rail (instructions neutralised, PII redacted) before the model sees it.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from bulwark.graphs.state import AgentState, RunContext
from bulwark.guardrails.rails import Guardrails
from bulwark.nodes._text import latest_request, words


def memory_namespace(context: RunContext) -> tuple[str, str, str]:
    """The store namespace that holds one user's memories."""
    return ("memories", context.tenant_id, context.user_id)


class Recall:
    """Puts up to ``limit`` memories, most relevant first, into ``state["memories"]``."""

    def __init__(self, *, rails: Guardrails, limit: int = 5, scan: int = 200) -> None:
        self.rails = rails
        self.limit = limit
        self.scan = scan

    def __call__(self, state: AgentState, runtime: Runtime[RunContext]) -> dict:
        request = latest_request(state["messages"])
        if runtime.store is None or request is None:
            return {"memories": []}
        context = runtime.context or RunContext()
        items = runtime.store.search(memory_namespace(context), limit=self.scan)
        query = words(request.text)
        scored = sorted(
            items,
            key=lambda item: (len(query & words(item.value["text"])), item.updated_at),
            reverse=True,
        )
        return {
            "memories": [self.rails.check_context(item.value["text"]).text for item in scored[: self.limit]]
        }
