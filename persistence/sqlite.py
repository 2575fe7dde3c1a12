"""The embedded SQLite checkpointer, with the extended capabilities upstream leaves out.

``langgraph.checkpoint.sqlite.aio.AsyncSqliteSaver`` implements the base checkpointer
contract (put, put_writes, get_tuple, list, delete_thread) but not the optional extensions
``delete_for_runs``, ``copy_thread`` and ``prune``: calling them raises NotImplementedError,
and LangGraph's conformance suite reports them as not implemented. Bulwark needs ``prune``
to apply its retention policy (drop old checkpoints, keep the latest state) and
``copy_thread`` to fork a conversation into a new thread. ``AsyncSqliteCheckpointer`` adds
the three, async and sync, as plain SQL on the saver's own ``checkpoints`` and ``writes``
tables, each one in a single transaction. Nothing else changes: same tables, same
constructor, same ``from_conn_string`` (which also takes the ``serde`` the constructor
takes, e.g. an ``EncryptedSerializer``; upstream's does not).

It also applies a retention policy by itself, as Bulwark's Redis saver does: ``keep=N``
trims a thread to its latest N checkpoints whenever a new run starts on it, and ``ttl``
deletes threads no run has started on for that many seconds (a side table records when each
thread last began a run; expired threads are swept at most every ``ttl / 10`` seconds, on
the next run start). SQLite has no key expiry, so both happen on writes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

__all__ = ["PRUNE_STRATEGIES", "AsyncSqliteCheckpointer"]

_T = TypeVar("_T")

#: Accepted ``strategy`` values for :meth:`AsyncSqliteCheckpointer.aprune`. ``"delete"`` is
#: the name in ``BaseCheckpointSaver``'s docstring, ``"delete_all"`` the one LangGraph's
#: server and gRPC layer send; both remove every checkpoint of the thread.
PRUNE_STRATEGIES = frozenset({"keep_latest", "delete", "delete_all"})

# Metadata key in which the Pregel loop counts, per DeltaChannel, the supersteps since that
# channel last stored a snapshot in ``channel_values`` (see ``aprune``).
_DELTA_COUNTERS_KEY = "counters_since_delta_snapshot"

# Parameters are passed as one JSON array and expanded with json_each(), so the statements
# stay the same whatever the number of ids (no placeholder lists, no variable limit).
_IN_THREADS = "thread_id IN (SELECT value FROM json_each(?))"
_RUN_ID_IN = (
    "json_extract(CAST(metadata AS TEXT), '$.run_id') IN (SELECT value FROM json_each(?))"
)
# When each thread last started a run (for ttl); created only when a ttl is set.
_ACTIVITY_TABLE = "bulwark_thread_activity"
# The set of (thread_id, checkpoint_ns, checkpoint_id) rows that keep_latest keeps.
_KEPT_ROWS = (
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]') FROM json_each(?)"
)


def _id_list(ids: Iterable[Any], what: str) -> list[str]:
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of ids, not a single {type(ids).__name__}")
    return [str(i) for i in ids]


class AsyncSqliteCheckpointer(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` plus ``delete_for_runs``, ``copy_thread`` and ``prune``.

    Construct it like the upstream saver: ``AsyncSqliteCheckpointer(conn)`` with an
    ``aiosqlite`` connection, or ``async with AsyncSqliteCheckpointer.from_conn_string(path)``
    (which yields this class, and takes an optional ``serde``). As upstream, the
    sync methods are only for other threads: they run the async method on the saver's event
    loop and wait, and raise ``asyncio.InvalidStateError`` when called on that loop's thread.

    Retention (both off by default): ``keep`` trims each thread to its latest ``keep``
    checkpoints when a run starts on it; ``ttl`` (seconds) deletes threads on which no run
    has started for that long. ``clock`` (seconds, ``time.time`` by default) is injectable
    so expiry is tested without waiting.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        serde: SerializerProtocol | None = None,
        keep: int | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep!r}")
        if ttl is not None and not 0 < ttl < float("inf"):
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        super().__init__(conn, serde=serde)
        self.keep, self.ttl, self.clock = keep, ttl, clock
        self._swept_at: float | None = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        keep: int | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AsyncIterator[AsyncSqliteCheckpointer]:
        """Yield a saver on a connection to ``conn_string`` (a path or ``:memory:``).

        ``serde`` is the serializer of checkpoints and writes (LangGraph's JsonPlusSerializer
        by default); ``keep``, ``ttl`` and ``clock`` as for the constructor. The connection
        is closed on exit.
        """
        async with aiosqlite.connect(conn_string) as conn:
            yield cls(conn, serde=serde, keep=keep, ttl=ttl, clock=clock)

    # -- retention -----------------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the tables (and, with a ttl, the activity table) if they do not exist."""
        was_setup = self.is_setup
        await super().setup()
        if was_setup or self.ttl is None:
            return
        async with self.lock:
            await self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_ACTIVITY_TABLE} "
                "(thread_id TEXT PRIMARY KEY, started_at REAL NOT NULL)"
            )
            # Threads from before the ttl was set start their clock now.
            await self.conn.execute(
                f"INSERT OR IGNORE INTO {_ACTIVITY_TABLE} SELECT DISTINCT thread_id, ? FROM checkpoints",
                (self.clock(),),
            )
            await self.conn.commit()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint; at the start of a run, apply the retention policy to its thread."""
        stored = await super().aput(config, checkpoint, metadata, new_versions)
        if metadata.get("source") == "input" and (self.keep is not None or self.ttl is not None):
            thread_id = str(config["configurable"]["thread_id"])
            if self.ttl is not None:
                await self._touch_and_sweep(thread_id)
            if self.keep is not None:
                await self.aprune([thread_id], keep=self.keep)
        return stored

    async def _touch_and_sweep(self, thread_id: str) -> None:
        now = self.clock()
        async with self._transaction() as cur:
            await cur.execute(
                f"INSERT INTO {_ACTIVITY_TABLE} VALUES (?, ?) "
                "ON CONFLICT(thread_id) DO UPDATE SET started_at = excluded.started_at",
                (thread_id, now),
            )
            if self._swept_at is not None and now - self._swept_at < self.ttl / 10:  # type: ignore[operator]
                return
            self._swept_at = now
            expired = f"SELECT thread_id FROM {_ACTIVITY_TABLE} WHERE started_at <= ?"
            cutoff = (now - self.ttl,)  # type: ignore[operator]
            for table in ("writes", "checkpoints"):
                await cur.execute(f"DELETE FROM {table} WHERE thread_id IN ({expired})", cutoff)
            await cur.execute(f"DELETE FROM {_ACTIVITY_TABLE} WHERE started_at <= ?", cutoff)

    # -- async API -------------------------------------------------------------------------

    async def adelete_for_runs(self, run_ids: Iterable[str]) -> None:
        """Delete every checkpoint whose metadata ``run_id`` is one of ``run_ids``.

        All threads and namespaces are searched; the pending writes stored against a deleted
        checkpoint go with it. Checkpoints of other runs are untouched, including writes a
        deleted run may have left on the checkpoint it started from (writes carry no run id).
        Unknown run ids and an empty list are no-ops.
        """
        ids = _id_list(run_ids, "run_ids")
        if not ids:
            return
        param = json.dumps(ids)
        async with self._transaction() as cur:
            await cur.execute(
                "DELETE FROM writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
                "(SELECT thread_id, checkpoint_ns, checkpoint_id FROM checkpoints "
                f"WHERE {_RUN_ID_IN})",
                (param,),
            )
            await cur.execute(f"DELETE FROM checkpoints WHERE {_RUN_ID_IN}", (param,))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and pending write of one thread to another.

        All namespaces and the whole history are copied, with the same checkpoint ids,
        parent links, checkpoint blobs and metadata, so the target lists the same
        checkpoints in the same order and is independent of the source from then on. A
        ``thread_id`` key in the metadata, if any, is rewritten to the target. Rows the
        target already has under the same namespace and checkpoint id are replaced, others
        are kept. A source without checkpoints, or ``source == target``, is a no-op.
        """
        source, target = str(source_thread_id), str(target_thread_id)
        if source == target:
            return
        task_path = "task_path, " if self._has_task_path else ""
        async with self._transaction() as cur:
            await cur.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) "
                "SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
                "CASE WHEN json_type(CAST(metadata AS TEXT), '$.thread_id') IS NULL THEN metadata "
                "ELSE CAST(json_set(CAST(metadata AS TEXT), '$.thread_id', ?) AS BLOB) END "
                "FROM checkpoints WHERE thread_id = ?",
                (target, target, source),
            )
            await cur.execute(
                "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                f"{task_path}idx, channel, type, value) "
                f"SELECT ?, checkpoint_ns, checkpoint_id, task_id, {task_path}idx, channel, type, "
                "value FROM writes WHERE thread_id = ?",
                (target, source),
            )

    async def aprune(
        self, thread_ids: Iterable[str], *, strategy: str = "keep_latest", keep: int = 1
    ) -> None:
        """Prune the checkpoints of ``thread_ids``; other threads are untouched.

        ``strategy="keep_latest"`` keeps, in each namespace of each thread, only the latest
        ``keep`` checkpoints (highest checkpoint ids; the latest is the one ``get_tuple``
        returns) and their pending writes. ``"delete"`` (alias ``"delete_all"``) removes every
        checkpoint and write of the threads. Unknown threads and an empty list are no-ops.

        ``keep_latest`` is DeltaChannel-aware, as ``BaseCheckpointSaver.prune`` requires: a
        ``DeltaChannel`` stores a value only every so many steps and is rebuilt by replaying
        the writes of the ancestors back to that snapshot. When a kept checkpoint's metadata
        counts supersteps since a snapshot, its ancestors (and their writes) are kept back to
        that snapshot, as ``get_delta_channel_history`` replays them. Graphs without
        DeltaChannel keep exactly ``keep`` checkpoints.

        Raises:
            ValueError: ``strategy`` is not one of :data:`PRUNE_STRATEGIES`, or ``keep`` < 1.
        """
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep!r}")
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}: use one of {sorted(PRUNE_STRATEGIES)}"
            )
        threads = json.dumps(_id_list(thread_ids, "thread_ids"))
        if threads == "[]":
            return
        async with self._transaction() as cur:
            if strategy != "keep_latest":
                await cur.execute(f"DELETE FROM writes WHERE {_IN_THREADS}", (threads,))
                await cur.execute(f"DELETE FROM checkpoints WHERE {_IN_THREADS}", (threads,))
                return
            await cur.execute(
                "SELECT thread_id, checkpoint_ns, checkpoint_id, metadata FROM (SELECT *, "
                "ROW_NUMBER() OVER (PARTITION BY thread_id, checkpoint_ns "
                "ORDER BY checkpoint_id DESC) AS recency FROM checkpoints "
                f"WHERE {_IN_THREADS}) WHERE recency <= ?",
                (threads, keep),
            )
            heads = await cur.fetchall()
            kept = [(thread_id, ns, checkpoint_id) for thread_id, ns, checkpoint_id, _ in heads]
            needed = await self._delta_ancestors(cur, heads)
            kept += sorted(needed - set(kept))
            await cur.execute(f"SELECT COUNT(*) FROM checkpoints WHERE {_IN_THREADS}", (threads,))
            if (await cur.fetchone())[0] <= len(kept):
                return  # nothing to drop: spare the statements (the usual case, run after run)
            # Writes newer than the latest stored checkpoint belong to one a running graph
            # has not stored yet (with async durability, writes can land first): kept.
            for table in ("writes", "checkpoints"):
                await cur.execute(
                    f"DELETE FROM {table} WHERE {_IN_THREADS} AND "
                    f"(thread_id, checkpoint_ns, checkpoint_id) NOT IN ({_KEPT_ROWS}) AND "
                    f"checkpoint_id < (SELECT MAX(c.checkpoint_id) FROM checkpoints c WHERE "
                    f"c.thread_id = {table}.thread_id AND c.checkpoint_ns = {table}.checkpoint_ns)",
                    (threads, json.dumps(kept)),
                )

    # -- sync API: for threads other than the saver's event loop -------------------------------

    def delete_for_runs(self, run_ids: Iterable[str]) -> None:
        """Sync form of :meth:`adelete_for_runs`; call it from a thread other than the loop's."""
        self._run_sync(lambda: self.adelete_for_runs(run_ids), "adelete_for_runs")

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync form of :meth:`acopy_thread`; call it from a thread other than the loop's."""
        self._run_sync(
            lambda: self.acopy_thread(source_thread_id, target_thread_id), "acopy_thread"
        )

    def prune(self, thread_ids: Iterable[str], *, strategy: str = "keep_latest") -> None:
        """Sync form of :meth:`aprune`; call it from a thread other than the loop's."""
        self._run_sync(lambda: self.aprune(thread_ids, strategy=strategy), "aprune")

    # -- helpers -----------------------------------------------------------------------------

    def _run_sync(self, make_coro: Callable[[], Coroutine[Any, Any, _T]], async_name: str) -> _T:
        """Run ``make_coro()`` on the saver's loop and wait, as upstream's sync methods do."""
        try:
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError(
                    "Synchronous calls to AsyncSqliteCheckpointer are only allowed from a "
                    f"different thread. From the main thread, use `await checkpointer."
                    f"{async_name}(...)`."
                )
        except RuntimeError:  # no running loop in this thread: blocking is fine
            pass
        return asyncio.run_coroutine_threadsafe(make_coro(), self.loop).result()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """One write transaction under the saver's lock: commit on success, else roll back.

        ``BEGIN IMMEDIATE`` takes the write lock up front, so what a statement reads cannot
        change before the statements after it write.
        """
        await self.setup()
        async with self.lock, self.conn.cursor() as cur:
            if not self.conn.in_transaction:
                await cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()

    async def _delta_ancestors(self, cur: Any, heads: list[tuple[str, str, str, Any]]) -> set[tuple[str, str, str]]:
        """Ancestors of the kept checkpoints that DeltaChannel replay still needs.

        A DeltaChannel is rebuilt by replaying the writes of the ancestors back to the one
        that stored its snapshot, and a checkpoint's ``counters_since_delta_snapshot``
        metadata counts, per channel, the supersteps since that snapshot: so its chain is
        its nearest ``n`` parents, ``n`` the largest count (every channel's snapshot is in
        it). One recursive query follows the parent ids of every head; no blob is read.
        """
        seeds = []
        for thread_id, ns, checkpoint_id, metadata in heads:
            counters = (json.loads(metadata) if metadata else {}).get(_DELTA_COUNTERS_KEY) or {}
            depth = max((c[1] for c in counters.values() if isinstance(c, list) and len(c) == 2), default=0)
            if depth > 0:
                seeds.append([thread_id, ns, checkpoint_id, depth])
        if not seeds:
            return set()
        await cur.execute(
            "WITH RECURSIVE chain(thread_id, checkpoint_ns, checkpoint_id, left) AS ("
            "SELECT c.thread_id, c.checkpoint_ns, c.parent_checkpoint_id, json_extract(s.value, '$[3]') - 1 "
            "FROM json_each(?) s JOIN checkpoints c ON c.thread_id = json_extract(s.value, '$[0]') "
            "AND c.checkpoint_ns = json_extract(s.value, '$[1]') "
            "AND c.checkpoint_id = json_extract(s.value, '$[2]') "
            "UNION SELECT c.thread_id, c.checkpoint_ns, c.parent_checkpoint_id, chain.left - 1 "
            "FROM chain JOIN checkpoints c ON c.thread_id = chain.thread_id "
            "AND c.checkpoint_ns = chain.checkpoint_ns AND c.checkpoint_id = chain.checkpoint_id "
            "WHERE chain.left > 0) "
            "SELECT DISTINCT thread_id, checkpoint_ns, checkpoint_id FROM chain WHERE checkpoint_id IS NOT NULL",
            (json.dumps(seeds),),
        )
        return {(t, ns, c) for t, ns, c in await cur.fetchall()}
