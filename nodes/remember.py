"""Remember: scores what the user said and keeps what matters as long-term memory.

Every sentence of the latest request is scored for importance
(:func:`bulwark.memory.longterm.score_sentence`); those at or above the threshold
(``BULWARK_MEMORY_IMPORTANCE``) are stored in the user's namespace, embedded for semantic
recall. The key comes from the text, so repeating a fact does not duplicate it. The task is
over once the answer is out, so its working memory is cleared here. A store failure is
logged and the answer still goes out.
"""

from __future__ import annotations

import logging

from langgraph.runtime import get_runtime
from langgraph.store.base import BaseStore

from bulwark.graphs.state import AgentState, RunContext
from bulwark.memory.longterm import (
    Fact,
    astore_memory,
    memorable_facts,
    memory_namespace,
    store_memory,
)
from bulwark.nodes._text import latest_request

log = logging.getLogger(__name__)


class Remember:
    """Stores the latest request's facts whose importance reaches ``threshold``."""

    def __init__(self, *, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, state: AgentState) -> dict:
        store, namespace, facts, context = self._target(state)
        stored, failed = 0, False
        try:
            for fact in facts:
                store_memory(store, namespace, fact, source="conversation")
                stored += 1
        except Exception as exc:  # noqa: BLE001 - memory must never take the answer down
            _store_failed(context, exc)
            failed = True
        return {"working": None, "remembered": {"count": stored, "failed": failed}}

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`: the facts are stored with ``store.aput``."""
        store, namespace, facts, context = self._target(state)
        stored, failed = 0, False
        try:
            for fact in facts:
                await astore_memory(store, namespace, fact, source="conversation")
                stored += 1
        except Exception as exc:  # noqa: BLE001 - memory must never take the answer down
            _store_failed(context, exc)
            failed = True
        return {"working": None, "remembered": {"count": stored, "failed": failed}}

    def _target(self, state: AgentState) -> tuple[BaseStore, tuple[str, str, str], list[Fact], RunContext]:
        """Where the facts go and which facts: none without a store or a request."""
        runtime = get_runtime(RunContext)
        context = runtime.context or RunContext()
        request = latest_request(state["messages"])
        facts = (
            memorable_facts(request.text, threshold=self.threshold)
            if runtime.store is not None and request is not None
            else []
        )
        # No facts without a store: the callers never touch a missing one.
        return runtime.store, memory_namespace(context), facts, context  # type: ignore[return-value]


def _store_failed(context: RunContext, exc: Exception) -> None:
    log.warning(
        "could not store memories (tenant=%s user=%s): %s",
        context.tenant_id, context.user_id, exc,
    )
