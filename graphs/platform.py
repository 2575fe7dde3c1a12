"""The agent as the LangGraph server loads it (``langgraph.json``, ``bulwark serve``).

The graph is compiled without a checkpointer: the server attaches the one
:func:`checkpointer` opens, the same ``BULWARK_CHECKPOINTER_URL`` the CLI and the Python
API use, so a thread started through the server can be continued with ``bulwark ask``.
The memory store is the same Qdrant store too (:func:`store`, ``store.path``), so the
server's ``/store`` API and Studio show the memories the agent keeps. The rate limits are
the auth module's (the same limiter, :func:`bulwark.server.limits.limiter_for_settings`):
the graph debits the tenant's model tokens and gives back each run's concurrent-run lease.
Settings come from the environment and ``.env`` when the server imports this module.
"""

from contextlib import AbstractAsyncContextManager

from langgraph.checkpoint.base import BaseCheckpointSaver

from bulwark.graphs.agent import build_agent_graph
from bulwark.memory.store import QdrantStore, open_memory_store
from bulwark.observability.langsmith import install_tracing
from bulwark.observability.telemetry import with_turn_spans
from bulwark.persistence.checkpoints import open_checkpointer_for
from bulwark.server.limits import RateLimits
from bulwark.settings import load_settings

settings = load_settings()
install_tracing(settings)  # before the first run: LangSmith traces anonymized, sampled
graph = with_turn_spans(build_agent_graph(settings, limits=RateLimits.from_settings(settings)).compile(name="bulwark-agent"))


def checkpointer() -> AbstractAsyncContextManager[BaseCheckpointSaver]:
    """The server's checkpointer (``checkpointer.path`` in langgraph.json)."""
    return open_checkpointer_for(settings)


def store() -> QdrantStore:
    """The server's long-term memory store (``store.path`` in langgraph.json)."""
    return open_memory_store(settings)
