"""The ``knowledge_search`` tool: passages from the tenant's knowledge base, with citations.

Documents get into the knowledge base with ``bulwark ingest`` (see
:mod:`bulwark.memory.knowledge`). The tool searches the namespace of the run's tenant
(from the LangGraph runtime, never from the model's arguments), so one tenant's
documents never answer another tenant's questions. Each passage ends with its citation,
``[source: docs/guide.md#2]`` (file and chunk), for the answer to carry.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.store.base import SearchItem

from bulwark.memory.longterm import knowledge_namespace
from bulwark.tools.memory import Limit, require_query, run_scope

_NO_KNOWLEDGE_BASE = "no knowledge base is configured"


def citation(value: dict[str, object]) -> str:
    """The citation of a stored chunk: ``[source: <file>#<chunk>]``."""
    return f"[source: {value['source']}#{value['chunk']}]"


def _passages(items: list[SearchItem]) -> str:
    if not items:
        return "no matching documents in the knowledge base"
    return "\n\n".join(
        f"{item.value['text']}\n{citation(item.value)}"
        + (f" ({item.value['title']})" if item.value.get("title") else "")
        for item in items
    )


def knowledge_search(query: str, k: Limit = 4) -> str:
    """Search the knowledge base (the ingested docs, handbook, guides and manuals) for what
    the documents say about a topic, according to them; returns passages, each with its
    [source: file#chunk] citation.

    Args:
        query: the topic to look up in the documents.
        k: how many passages to return, 1 to 10.
    """
    store, context = run_scope(missing=_NO_KNOWLEDGE_BASE)
    namespace = knowledge_namespace(context.tenant_id)
    return _passages(store.search(namespace, query=require_query(query), limit=k))


async def aknowledge_search(query: str, k: Limit = 4) -> str:
    """Async :func:`knowledge_search`."""
    store, context = run_scope(missing=_NO_KNOWLEDGE_BASE)
    namespace = knowledge_namespace(context.tenant_id)
    return _passages(await store.asearch(namespace, query=require_query(query), limit=k))


def knowledge_tool() -> BaseTool:
    """The ``knowledge_search`` tool; errors come back as ``ToolException``."""
    return StructuredTool.from_function(
        knowledge_search, coroutine=aknowledge_search, handle_tool_error=False, parse_docstring=True
    )
