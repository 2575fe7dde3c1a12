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

from langgraph.runtime import Runtime

from bulwark.graphs.state import AgentState, RunContext
from bulwark.memory.longterm import memorable_facts, memory_namespace, store_memory
from bulwark.nodes._text import latest_request

log = logging.getLogger(__name__)


class Remember:
    """Stores the latest request's facts whose importance reaches ``threshold``."""

    def __init__(self, *, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, state: AgentState, runtime: Runtime[RunContext]) -> dict:
        request = latest_request(state["messages"])
        if runtime.store is not None and request is not None:
            context = runtime.context or RunContext()
            namespace = memory_namespace(context)
            try:
                for fact in memorable_facts(request.text, threshold=self.threshold):
                    store_memory(runtime.store, namespace, fact, source="conversation")
            except Exception as exc:  # noqa: BLE001 - memory must never take the answer down
                log.warning(
                    "could not store memories (tenant=%s user=%s): %s",
                    context.tenant_id, context.user_id, exc,
                )
        return {"working": None}
