"""Open a checkpointer from a URL.

``sqlite:///path`` is the embedded default; ``redis://`` / ``rediss://`` is the production
backend (plain Redis >= 6.2 or Valkey, see :mod:`bulwark.persistence.redis`); ``memory://``
keeps checkpoints in the process (tests, throwaway runs). The graph, the CLI and the server
all get their checkpointer here, through :func:`open_checkpointer_for`. With an encryption
key every backend stores checkpoint values AES-256-GCM encrypted (see
:mod:`bulwark.persistence.encryption`).
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from langgraph.checkpoint.base import BaseCheckpointSaver, SerializerProtocol
from langgraph.checkpoint.memory import InMemorySaver

from bulwark.observability.metrics import CHECKPOINT_DURATION, timed
from bulwark.persistence.sqlite import AsyncSqliteCheckpointer

if TYPE_CHECKING:
    from bulwark.settings import Settings


class PersistenceError(RuntimeError):
    """A checkpointer could not be opened, reached or read; the message says why and names
    the URL or file where it can (passwords masked)."""


def _sqlite_path(url: str) -> tuple[Path, float | None]:
    """The file an ``sqlite:///path[?ttl=SECONDS]`` URL names, and its ttl."""
    hint = "use sqlite:///path/to/file.db[?ttl=SECONDS]"
    location, _, query = url.partition("?")
    path = Path(location.removeprefix("sqlite:///"))
    if not url.startswith("sqlite:///") or not path.name:
        raise PersistenceError(f"invalid SQLite URL {url!r}: {hint}")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if set(options) - {"ttl"}:
        raise PersistenceError(f"invalid SQLite URL {url!r}: the only option is ttl; {hint}")
    if "ttl" not in options:
        return path, None
    try:
        ttl = float(options["ttl"])
    except ValueError:
        ttl = -1.0
    if not 0 < ttl < float("inf"):
        raise PersistenceError(f"invalid SQLite URL {url!r}: ttl must be a number of seconds > 0")
    return path, ttl


@asynccontextmanager
async def open_checkpointer(
    url: str,
    *,
    ttl: timedelta | float | None = None,
    keep: int | None = None,
    encryption_key: str | None = None,
) -> AsyncIterator[BaseCheckpointSaver]:
    """Yield a ready checkpointer for ``url`` and close it on exit.

    ``url`` is ``sqlite:///path/to/file.db``, ``memory://``, or
    ``redis[s]://[[user]:password@]host[:port][/db][?ttl=SECONDS]``. For Redis the server is
    pinged here, so an unreachable server or a wrong password fails now, not at the first
    run.

    Retention: ``ttl`` (seconds or a timedelta; or ``?ttl=`` in the URL) makes threads
    expire: on Redis that long after their last write or read, on SQLite that long after a
    run last started on them. ``keep`` trims each thread to its latest ``keep`` checkpoints
    whenever a run starts on it (older history is dropped; the state is kept). ``memory://``
    refuses both.

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
    if keep is not None and keep < 1:
        raise PersistenceError(f"cannot open checkpoints: keep must be at least 1, got {keep!r}")
    if url.startswith(("redis://", "rediss://")):
        async with _open_redis(url, ttl, keep, serde) as saver:
            yield timed_checkpointer(saver)
        return
    if url == "memory://":
        if ttl is not None or keep is not None:
            raise PersistenceError(
                "memory:// keeps no history to expire or trim: drop ttl and keep, "
                "or use a sqlite:/// or redis:// URL"
            )
        yield timed_checkpointer(InMemorySaver(serde=serde))
        return
    if not url.startswith("sqlite:"):
        scheme = url.split(":", 1)[0] if ":" in url else url[:20]
        raise PersistenceError(
            f"unsupported checkpointer URL (scheme {scheme!r}): use sqlite:///path/to/file.db, "
            "redis://[:password@]host:port/db or memory://"
        )
    path, url_ttl = _sqlite_path(url)
    if url_ttl is not None and ttl is not None:
        raise PersistenceError(f"cannot open checkpoints: ttl given both in the URL {url!r} and as an argument")
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl if ttl is not None else url_ttl
    async with AsyncExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            saver = await stack.enter_async_context(
                AsyncSqliteCheckpointer.from_conn_string(str(path), serde=serde, keep=keep, ttl=seconds)
            )
            await saver.setup()
        except ValueError as exc:  # a ttl argument that is not positive
            raise PersistenceError(f"cannot open checkpoints: {exc}") from None
        except (sqlite3.Error, OSError) as exc:
            raise PersistenceError(f"cannot open checkpoints at {url}: {exc}") from exc
        yield timed_checkpointer(saver)


_TIMED = {"aget_tuple": "get", "aput": "put", "aput_writes": "put_writes", "get_tuple": "get", "put": "put", "put_writes": "put_writes"}


def timed_checkpointer(saver: BaseCheckpointSaver) -> BaseCheckpointSaver:
    """``saver`` with each read, write and listing timed in ``checkpoint_duration_seconds``.

    The methods are wrapped on this instance (a wrapper class would have to re-implement
    every saver's interface); a listing is timed until the caller has read it all.
    """
    for name, op in _TIMED.items():
        method = getattr(saver, name)
        if inspect.iscoroutinefunction(method):
            async def atimed(*args: Any, _method: Any = method, _op: str = op, **kwargs: Any) -> Any:
                with timed(CHECKPOINT_DURATION, _op):
                    return await _method(*args, **kwargs)
            setattr(saver, name, atimed)
        else:
            def stimed(*args: Any, _method: Any = method, _op: str = op, **kwargs: Any) -> Any:
                with timed(CHECKPOINT_DURATION, _op):
                    return _method(*args, **kwargs)
            setattr(saver, name, stimed)
    alist, slist = saver.alist, saver.list

    async def alisted(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        with timed(CHECKPOINT_DURATION, "list"):
            async for item in alist(*args, **kwargs):
                yield item

    def listed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with timed(CHECKPOINT_DURATION, "list"):
            yield from slist(*args, **kwargs)

    saver.alist, saver.list = alisted, listed  # type: ignore[method-assign]
    return saver


def open_checkpointer_for(
    settings: Settings,
) -> AbstractAsyncContextManager[BaseCheckpointSaver]:
    """:func:`open_checkpointer` on the URL, retention and encryption key ``settings`` name."""
    key = settings.encryption_key
    return open_checkpointer(
        settings.resolved_checkpointer_url,
        keep=settings.checkpoint_keep,
        encryption_key=key.get_secret_value() if key is not None else None,
    )


@asynccontextmanager
async def _open_redis(
    url: str, ttl: timedelta | float | None, keep: int | None, serde: SerializerProtocol
) -> AsyncIterator[BaseCheckpointSaver]:
    from bulwark.persistence.redis import RedisSaver

    try:
        saver = RedisSaver(url=url, ttl=ttl, keep=keep, serde=serde)
    except ValueError as exc:  # ttl both in the URL and as an argument, or not positive
        raise PersistenceError(f"cannot open checkpoints: {exc}") from exc
    try:
        await saver.aping()
        yield saver
    finally:
        await saver.aclose()
