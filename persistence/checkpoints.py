"""Open a checkpointer (and the memory store) from a URL.

``sqlite:///path`` is the embedded default; ``memory://`` keeps checkpoints in the process
(tests, throwaway runs). The graph, the CLI and the server all get their checkpointer here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.sqlite.aio import AsyncSqliteStore


class PersistenceError(RuntimeError):
    """A checkpointer or store could not be opened; the message names the URL or file."""


def _sqlite_path(url: str) -> Path:
    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or not path.name:
        raise PersistenceError(f"invalid SQLite URL {url!r}: use sqlite:///path/to/file.db")
    return path


@asynccontextmanager
async def open_checkpointer(url: str) -> AsyncIterator[BaseCheckpointSaver]:
    """Yield a ready checkpointer for ``url`` and close it on exit.

    Raises:
        PersistenceError: the URL is malformed or the database cannot be opened.
    """
    if url == "memory://":
        yield InMemorySaver()
        return
    path = _sqlite_path(url)
    async with AsyncExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(path)))
            await saver.setup()
        except (sqlite3.Error, OSError) as exc:
            raise PersistenceError(f"cannot open checkpoints at {url}: {exc}") from exc
        yield saver


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[AsyncSqliteStore]:
    """Yield the long-term memory store kept in the SQLite file ``path``.

    Raises:
        PersistenceError: the database cannot be opened.
    """
    async with AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(AsyncSqliteStore.from_conn_string(str(path)))
            await store.setup()
        except (sqlite3.Error, OSError) as exc:
            raise PersistenceError(f"cannot open the memory store at {path}: {exc}") from exc
        yield store
