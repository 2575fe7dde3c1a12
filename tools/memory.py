"""Memory tools: the model saves and searches the current user's long-term memories.

Both tools work on the namespace of the run's user (see
:func:`~bulwark.memory.longterm.memory_namespace`), taken from the LangGraph runtime
(``context=RunContext(...)`` of the run), never from the model's arguments: a model
cannot read or write another user's memories, whatever it is told.
"""

from __future__ import annotations

from typing import Annotated

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.runtime import get_runtime
from langgraph.store.base import BaseStore, SearchItem
from pydantic import Field

from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import RailPolicy, check_context
from bulwark.memory.longterm import Fact, InvalidMemoryError, astore_memory, memory_namespace, store_memory

MAX_RESULTS = 10
"""Most results a search tool returns."""


def run_scope(*, missing: str) -> tuple[BaseStore, RunContext]:
    """The store and the run context of the graph run calling a tool.

    Raises:
        ToolException: with ``missing`` when the run has no store, or outside a graph run.
    """
    try:
        runtime = get_runtime(RunContext)
    except RuntimeError:
        raise ToolException(f"{missing} (the tool runs only inside an agent run)") from None
    if runtime is None or runtime.store is None:
        raise ToolException(missing)
    return runtime.store, runtime.context or RunContext()


def require_query(query: str) -> str:
    """``query`` stripped; a :class:`ToolException` if it is empty."""
    query = query.strip()
    if not query:
        raise ToolException("the query is empty: say what to search for")
    return query


_NO_MEMORY_STORE = "no long-term memory is configured"
Limit = Annotated[int, Field(ge=1, le=MAX_RESULTS)]


def _saved(key: str, fact: Fact) -> str:
    return f"saved to memory: {fact.text.strip()} (id {key})"


def _memory_lines(items: list[SearchItem]) -> str:
    if not items:
        return "no matching memories"
    return "\n".join(f"- {item.value['text']}" for item in items)


def search_memory(query: str, k: Limit = 5) -> str:
    """Look up what the user told you in earlier conversations, in long-term memory, by
    topic: "look up in memory ...", "search my memories for ...".

    Args:
        query: the topic to recall.
        k: how many memories to return, 1 to 10.
    """
    store, context = run_scope(missing=_NO_MEMORY_STORE)
    return _memory_lines(store.search(memory_namespace(context), query=require_query(query), limit=k))


async def asearch_memory(query: str, k: Limit = 5) -> str:
    """Async :func:`search_memory`."""
    store, context = run_scope(missing=_NO_MEMORY_STORE)
    return _memory_lines(await store.asearch(memory_namespace(context), query=require_query(query), limit=k))


def memory_tools(*, policy: RailPolicy) -> list[BaseTool]:
    """``save_memory`` and ``search_memory``; errors come back as :class:`ToolException`.

    What the model saves passes the context rail first (``policy``): secrets and PII are
    redacted and injected instructions neutralised, so the store never holds them raw and
    a poisoned memory cannot steer a later conversation.
    """

    def fact(text: str) -> Fact:
        return Fact(text=check_context(text, policy).text, kind="explicit", importance=1.0)

    def save_memory(text: str) -> str:
        """Save a fact the user asks you to keep to long-term memory, for later conversations:
        "save to memory: ...", "store in memory ...".

        Args:
            text: the fact to save, in the words of the user.
        """
        store, context = run_scope(missing=_NO_MEMORY_STORE)
        saved = fact(text)
        try:
            return _saved(store_memory(store, memory_namespace(context), saved, source="tool"), saved)
        except InvalidMemoryError as exc:
            raise ToolException(str(exc)) from None

    async def asave_memory(text: str) -> str:
        store, context = run_scope(missing=_NO_MEMORY_STORE)
        saved = fact(text)
        try:
            return _saved(await astore_memory(store, memory_namespace(context), saved, source="tool"), saved)
        except InvalidMemoryError as exc:
            raise ToolException(str(exc)) from None

    return [
        StructuredTool.from_function(func, coroutine=coroutine, handle_tool_error=False, parse_docstring=True)
        for func, coroutine in ((save_memory, asave_memory), (search_memory, asearch_memory))
    ]
