"""Open a checkpointer from a URL.

``sqlite:///path`` is the embedded default; ``redis://`` / ``rediss://`` is the production
backend (plain Redis >= 6.2 or Valkey, see :mod:`bulwark.persistence.redis`); ``memory://``
keeps checkpoints in the process (tests, throwaway runs). The graph, the CLI and the server
all get their checkpointer here, through :func:`open_checkpointer_for`. With an encryption
key every backend stores checkpoint values AES-256-GCM encrypted (see
:mod:`bulwark.persistence.encryption`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from langgraph.checkpoint.base import BaseCheckpointSaver, SerializerProtocol
from langgraph.checkpoint.memory import InMemorySaver

from bulwark.persistence.sqlite import AsyncSqliteCheckpointer

if TYPE_CHECKING:
    from bulwark.settings import Settings


class PersistenceError(RuntimeError):
    """A checkpointer could not be opened, reached or read; the message says why and names
    the URL or file where it can (passwords masked)."""


def _sqlite_path(url: str) -> Path:
    path = Path(url.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or not path.name:
        raise PersistenceError(f"invalid SQLite URL {url!r}: use sqlite:///path/to/file.db")
    return path


@asynccontextmanager
async def open_checkpointer(
    url: str,
    *,
    ttl: timedelta | float | None = None,
    encryption_key: str | None = None,
) -> AsyncIterator[BaseCheckpointSaver]:
    """Yield a ready checkpointer for ``url`` and close it on exit.

    ``url`` is ``sqlite:///path/to/file.db``, ``memory://``, or
    ``redis[s]://[[user]:password@]host[:port][/db][?ttl=SECONDS]``. For Redis the server is
    pinged here, so an unreachable server or a wrong password fails now, not at the first
    run. ``ttl`` (seconds or a timedelta; or ``?ttl=`` in the URL) makes Redis threads expire
    that long after their last write or read; the other backends refuse it.

    ``encryption_key`` (32 bytes as base64 or hex) makes the saver encrypt what it serializes
    with AES-256-GCM; values stored unencrypted earlier are still read. Reading an encrypted
    value without the key, or with another one, raises
    :class:`~bulwark.persistence.encryption.CheckpointEncryptionError` (a PersistenceError;
    the Redis saver wraps it in its ``CheckpointDecodeError``, naming the checkpoint).

    Raises:
        PersistenceError: the URL is malformed, ``encryption_key`` is not a valid key, or the
            store cannot be opened or reached; the message names the URL with any password
            masked, and never contains the key.
    """
    from bulwark.persistence.encryption import checkpoint_serde

    try:
        serde = checkpoint_serde(encryption_key)
    except ValueError as exc:
        raise PersistenceError(f"cannot open checkpoints: {exc}") from None
    if url.startswith(("redis://", "rediss://")):
        async with _open_redis(url, ttl, serde) as saver:
            yield saver
        return
    if ttl is not None:
        raise PersistenceError(
            f"ttl is supported only by the Redis checkpointer, not by {url!r}; "
            "use a redis:// URL or drop the ttl"
        )
    if url == "memory://":
        yield InMemorySaver(serde=serde)
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
                AsyncSqliteCheckpointer.from_conn_string(str(path), serde=serde)
            )
            await saver.setup()
        except (sqlite3.Error, OSError) as exc:
            raise PersistenceError(f"cannot open checkpoints at {url}: {exc}") from exc
        yield saver


def open_checkpointer_for(
    settings: Settings,
) -> AbstractAsyncContextManager[BaseCheckpointSaver]:
    """:func:`open_checkpointer` on the URL and with the encryption key ``settings`` name."""
    key = settings.encryption_key
    return open_checkpointer(
        settings.resolved_checkpointer_url,
        encryption_key=key.get_secret_value() if key is not None else None,
    )


@asynccontextmanager
async def _open_redis(
    url: str, ttl: timedelta | float | None, serde: SerializerProtocol
) -> AsyncIterator[BaseCheckpointSaver]:
    from bulwark.persistence.redis import RedisSaver

    try:
        saver = RedisSaver(url=url, ttl=ttl, serde=serde)
    except ValueError as exc:  # ttl both in the URL and as an argument, or not positive
        raise PersistenceError(f"cannot open checkpoints: {exc}") from exc
    try:
        await saver.aping()
        yield saver
    finally:
        await saver.aclose()
