"""Open a checkpointer from a URL.

``sqlite:///path`` is the embedded default; ``redis://`` / ``rediss://`` is the production
backend (plain Redis >= 6.2 or Valkey, see :mod:`bulwark.persistence.redis`); ``memory://``
keeps checkpoints in the process (tests, throwaway runs). The graph, the CLI and the server
all get their checkpointer here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from bulwark.persistence.sqlite import AsyncSqliteCheckpointer


class PersistenceError(RuntimeError):
    """A checkpointer could not be opened; the message names the URL or file."""


def _sqlite_path(url: str) -> Path:
    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or not path.name:
        raise PersistenceError(f"invalid SQLite URL {url!r}: use sqlite:///path/to/file.db")
    return path


@asynccontextmanager
async def open_checkpointer(
    url: str, *, ttl: timedelta | float | None = None
) -> AsyncIterator[BaseCheckpointSaver]:
    """Yield a ready checkpointer for ``url`` and close it on exit.

    ``url`` is ``sqlite:///path/to/file.db``, ``memory://``, or
    ``redis[s]://[[user]:password@]host[:port][/db][?ttl=SECONDS]``. For Redis the server is
    pinged here, so an unreachable server or a wrong password fails now, not at the first
    run. ``ttl`` (seconds or a timedelta; or ``?ttl=`` in the URL) makes Redis threads expire
    that long after their last write or read; the other backends refuse it.

    Raises:
        PersistenceError: the URL is malformed or the store cannot be opened or reached;
            the message names the URL with any password masked.
    """
    if url.startswith(("redis://", "rediss://")):
        async with _open_redis(url, ttl) as saver:
            yield saver
        return
    if ttl is not None:
        raise PersistenceError(
            f"ttl is supported only by the Redis checkpointer, not by {url!r}; "
            "use a redis:// URL or drop the ttl"
        )
    if url == "memory://":
        yield InMemorySaver()
        return
    if not url.startswith("sqlite:"):
        scheme = url.split(":", 1)[0] if ":" in url else url[:20]
        raise PersistenceError(
            f"unsupported checkpointer URL (scheme {scheme!r}): use sqlite:///path/to/file.db, "
            "redis://[:password@]host:port/db or memory://"
        )
    path = _sqlite_path(url)
    async with AsyncExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            saver = await stack.enter_async_context(
                AsyncSqliteCheckpointer.from_conn_string(str(path))
            )
            await saver.setup()
        except (sqlite3.Error, OSError) as exc:
            raise PersistenceError(f"cannot open checkpoints at {url}: {exc}") from exc
        yield saver


@asynccontextmanager
async def _open_redis(
    url: str, ttl: timedelta | float | None
) -> AsyncIterator[BaseCheckpointSaver]:
    from bulwark.persistence.redis import RedisSaver

    try:
        saver = RedisSaver(url=url, ttl=ttl)
    except ValueError as exc:  # ttl both in the URL and as an argument, or not positive
        raise PersistenceError(f"cannot open checkpoints: {exc}") from exc
    try:
        await saver.aping()
        yield saver
    finally:
        await saver.aclose()
