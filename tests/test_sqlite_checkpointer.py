"""AsyncSqliteCheckpointer: LangGraph conformance (all 8 capabilities) and Bulwark's uses.

The conformance suite only calls the async methods, so the direct tests here also drive the
sync forms from a worker thread, the way LangGraph's sync graph API calls a checkpointer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from bulwark.persistence.sqlite import PRUNE_STRATEGIES, AsyncSqliteCheckpointer


@pytest.fixture
async def saver(tmp_path: Path) -> AsyncIterator[AsyncSqliteCheckpointer]:
    async with AsyncSqliteCheckpointer.from_conn_string(str(tmp_path / "cp.db")) as s:
        await s.setup()
        yield s


# Each direct test runs twice: through the async method, and through the sync method from a
# worker thread (the sync form blocks on the saver's loop, so it must not run on it).
Call = Callable[..., Awaitable[None]]


@pytest.fixture(params=["async", "sync-from-thread"])
def call(request: pytest.FixtureRequest, saver: AsyncSqliteCheckpointer) -> Call:
    sync = request.param == "sync-from-thread"

    async def _call(name: str, *args: Any, **kwargs: Any) -> None:
        if sync:
            await asyncio.to_thread(getattr(saver, name), *args, **kwargs)
        else:
            await getattr(saver, "a" + name)(*args, **kwargs)

    return _call


async def _put_chain(
    saver: AsyncSqliteCheckpointer, thread_id: str, n: int, /, *, ns: str = "", **metadata: Any
) -> list[dict]:
    """Put ``n`` chained checkpoints with one pending write each; return their configs."""
    stored: list[dict] = []
    for step in range(n):
        config = generate_config(thread_id, checkpoint_ns=ns)
        if stored:
            config["configurable"]["checkpoint_id"] = stored[-1]["configurable"]["checkpoint_id"]
        checkpoint = generate_checkpoint(channel_values={"step": step})
        checkpoint["channel_versions"] = {"step": step + 1}
        cfg = await saver.aput(
            config, checkpoint, generate_metadata(step=step, **metadata), {"step": step + 1}
        )
        await saver.aput_writes(cfg, [("out", f"{ns}/{step}")], f"task-{step}")
        stored.append(cfg)
    return stored


async def _ids(saver: AsyncSqliteCheckpointer, thread_id: str, ns: str | None = "") -> list[str]:
    config: dict = {"configurable": {"thread_id": thread_id}}
    if ns is not None:
        config["configurable"]["checkpoint_ns"] = ns
    return [t.checkpoint["id"] async for t in saver.alist(config)]


async def _rows(saver: AsyncSqliteCheckpointer, table: str, thread_id: str) -> list[tuple]:
    """Raw rows of ``table`` for a thread, without the thread id, in a stable order."""
    async with saver.conn.execute(
        f"SELECT * FROM {table} WHERE thread_id = ? ORDER BY 2, 3, 4, 5", (thread_id,)
    ) as cur:
        return [tuple(row[1:]) for row in await cur.fetchall()]


# -- conformance --------------------------------------------------------------------------


async def test_conformance_all_capabilities(tmp_path: Path) -> None:
    databases = itertools.count()

    @checkpointer_test(name="AsyncSqliteCheckpointer")
    async def factory() -> AsyncIterator[AsyncSqliteCheckpointer]:
        # validate() calls this once per capability: a fresh database file each time.
        path = tmp_path / f"conformance-{next(databases)}.db"
        async with AsyncSqliteCheckpointer.from_conn_string(str(path)) as s:
            yield s

    report = await validate(factory)

    summary = {
        name: (r.detected, r.passed, r.tests_passed, r.failures)
        for name, r in report.results.items()
    }
    assert set(report.results) == {c.value for c in Capability}, summary
    for name, result in report.results.items():
        assert result.detected, f"{name} not detected: {summary}"
        assert result.passed is True and result.tests_failed == 0, (
            f"{name} failed: {result.failures}"
        )
        assert result.tests_passed > 0, summary
    assert report.conformance_level() == "FULL"
    assert next(databases) == len(Capability)  # one database per capability


async def test_from_conn_string_yields_the_subclass(tmp_path: Path) -> None:
    async with AsyncSqliteCheckpointer.from_conn_string(str(tmp_path / "x.db")) as s:
        assert type(s) is AsyncSqliteCheckpointer
        assert isinstance(s, AsyncSqliteSaver)


# -- prune ------------------------------------------------------------------------------------


async def test_prune_keep_latest_keeps_exactly_the_latest_per_namespace(
    saver: AsyncSqliteCheckpointer, call: Call
) -> None:
    root = await _put_chain(saver, "t1", 4)
    child = await _put_chain(saver, "t1", 3, ns="child:1")
    other = await _put_chain(saver, "t2", 3)
    await _put_chain(saver, "t3", 2)
    untouched_rows = {t: await _rows(saver, t, "t3") for t in ("checkpoints", "writes")}

    await call("prune", ["t1", "t2"], strategy="keep_latest")

    for thread, ns, chain in (("t1", "", root), ("t1", "child:1", child), ("t2", "", other)):
        latest = chain[-1]["configurable"]["checkpoint_id"]
        assert await _ids(saver, thread, ns) == [latest]
        tup = await saver.aget_tuple(generate_config(thread, checkpoint_ns=ns))
        assert tup is not None and tup.checkpoint["channel_values"] == {"step": len(chain) - 1}
        assert [(c, v) for _, c, v in tup.pending_writes] == [("out", f"{ns}/{len(chain) - 1}")]
    # The writes of the pruned checkpoints are gone from the table, not just unreachable.
    assert len(await _rows(saver, "writes", "t1")) == 2
    assert len(await _rows(saver, "writes", "t2")) == 1
    # A thread not named is untouched.
    assert {t: await _rows(saver, t, "t3") for t in untouched_rows} == untouched_rows
    assert len(await _ids(saver, "t3")) == 2

    # Pruning again changes nothing.
    before = await _rows(saver, "checkpoints", "t1")
    await call("prune", ["t1"])
    assert await _rows(saver, "checkpoints", "t1") == before


async def test_prune_delete_removes_everything_of_the_threads(
    saver: AsyncSqliteCheckpointer, call: Call
) -> None:
    await _put_chain(saver, "t1", 3)
    await _put_chain(saver, "t1", 2, ns="child:1")
    await _put_chain(saver, "t2", 2)
    await call("prune", ["t1"], strategy="delete")
    assert await _ids(saver, "t1", ns=None) == []
    assert await _rows(saver, "writes", "t1") == []
    assert len(await _ids(saver, "t2")) == 2
    await call("prune", ["t2"], strategy="delete_all")  # the name LangGraph's server sends
    assert await _ids(saver, "t2") == []


async def test_prune_rejects_bad_arguments(saver: AsyncSqliteCheckpointer) -> None:
    await _put_chain(saver, "t1", 2)
    with pytest.raises(ValueError, match="unknown prune strategy"):
        await saver.aprune(["t1"], strategy="keep_oldest")
    with pytest.raises(TypeError, match="sequence of ids"):
        await saver.aprune("t1")  # would otherwise mean threads "t" and "1"
    assert len(await _ids(saver, "t1")) == 2
    assert PRUNE_STRATEGIES == {"keep_latest", "delete", "delete_all"}


# -- copy_thread -----------------------------------------------------------------------------


async def test_copy_thread_produces_an_independent_thread(
    saver: AsyncSqliteCheckpointer, call: Call
) -> None:
    src = await _put_chain(saver, "src", 3, thread_id="src")  # thread_id in metadata too
    await _put_chain(saver, "src", 2, ns="child:1")
    src_checkpoints = await _rows(saver, "checkpoints", "src")
    src_writes = await _rows(saver, "writes", "src")

    await call("copy_thread", "src", "dst")

    # Same history in every namespace, same writes, same order.
    for ns in ("", "child:1"):
        assert await _ids(saver, "dst", ns) == await _ids(saver, "src", ns)
    assert await _rows(saver, "writes", "dst") == src_writes
    dst_tuples = [t async for t in saver.alist(generate_config("dst"))]
    assert [t.config["configurable"]["thread_id"] for t in dst_tuples] == ["dst"] * 3
    assert {t.metadata["thread_id"] for t in dst_tuples} == {"dst"}
    assert dst_tuples[0].parent_config == {
        "configurable": {
            "thread_id": "dst",
            "checkpoint_ns": "",
            "checkpoint_id": src[1]["configurable"]["checkpoint_id"],
        }
    }
    latest = await saver.aget_tuple(generate_config("dst"))
    assert latest is not None and latest.checkpoint["channel_values"] == {"step": 2}
    assert [(c, v) for _, c, v in latest.pending_writes] == [("out", "/2")]

    # Independent: changing the copy leaves the source alone ...
    await _put_chain(saver, "dst", 1)
    await saver.aput_writes(dst_tuples[-1].config, [("extra", 1)], "task-x")
    assert await _rows(saver, "checkpoints", "src") == src_checkpoints
    assert await _rows(saver, "writes", "src") == src_writes
    # ... and removing the source leaves the copy whole.
    await saver.adelete_thread("src")
    assert len(await _ids(saver, "dst")) == 4
    assert len(await _ids(saver, "dst", "child:1")) == 2


async def test_copy_thread_missing_source_and_self_copy_are_noops(
    saver: AsyncSqliteCheckpointer, call: Call
) -> None:
    await _put_chain(saver, "src", 2)
    before = await _rows(saver, "checkpoints", "src")
    await call("copy_thread", "nope", "dst")
    assert await _ids(saver, "dst", ns=None) == []
    await call("copy_thread", "src", "src")
    assert await _rows(saver, "checkpoints", "src") == before


async def test_copy_thread_is_one_transaction(saver: AsyncSqliteCheckpointer) -> None:
    """If copying the writes fails, the checkpoints copied before it are rolled back."""
    await _put_chain(saver, "src", 2)
    await saver.conn.execute("ALTER TABLE writes RENAME TO writes_gone")
    await saver.conn.commit()
    with pytest.raises(Exception, match="writes"):
        await saver.acopy_thread("src", "dst")
    assert await _ids(saver, "dst") == []
    assert not saver.conn.in_transaction


# -- delete_for_runs ---------------------------------------------------------------------------


async def test_delete_for_runs_across_threads_and_namespaces(
    saver: AsyncSqliteCheckpointer, call: Call
) -> None:
    await _put_chain(saver, "t1", 2, run_id="r1")
    await _put_chain(saver, "t1", 1, ns="child:1", run_id="r1")
    await _put_chain(saver, "t2", 2, run_id="r1")
    kept = await _put_chain(saver, "t2", 1, run_id="r2")
    await _put_chain(saver, "t3", 1)  # no run_id at all

    await call("delete_for_runs", ["r1", "unknown"])

    assert await _ids(saver, "t1", ns=None) == []
    assert await _rows(saver, "writes", "t1") == []
    assert await _ids(saver, "t2") == [kept[0]["configurable"]["checkpoint_id"]]
    assert len(await _rows(saver, "writes", "t2")) == 1
    assert len(await _ids(saver, "t3")) == 1
    await call("delete_for_runs", [])


# -- sync methods on the loop's own thread ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [("prune", (["t"],)), ("copy_thread", ("t", "u")), ("delete_for_runs", (["r"],))],
)
async def test_sync_methods_refuse_the_event_loop_thread(
    saver: AsyncSqliteCheckpointer, name: str, args: tuple
) -> None:
    # Blocking here would deadlock: the loop that must run the query is this thread.
    with pytest.raises(asyncio.InvalidStateError, match="different thread"):
        getattr(saver, name)(*args)


# -- prune and DeltaChannel --------------------------------------------------------------------


def _extend(state: list | None, writes: list) -> list:
    out = list(state or [])
    for w in writes:
        out.extend(w)
    return out


class _DeltaState(TypedDict):
    items: Annotated[list, DeltaChannel(_extend, snapshot_frequency=4)]


def _delta_graph(saver: AsyncSqliteCheckpointer) -> Any:
    return (
        StateGraph(_DeltaState)
        .add_node("n", lambda s: {"items": [len(s["items"])]})
        .add_edge(START, "n")
        .add_edge("n", END)
        .compile(checkpointer=saver)
    )


async def test_prune_keep_latest_keeps_what_delta_channels_replay(
    saver: AsyncSqliteCheckpointer,
) -> None:
    """A DeltaChannel's latest value is rebuilt from ancestors; prune must keep those."""
    graph = _delta_graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    for i in range(3):
        await graph.ainvoke({"items": [f"in{i}"]}, config)
    expected = (await graph.aget_state(config)).values
    assert expected == {"items": ["in0", 1, "in1", 3, "in2", 5]}
    total = len(await _ids(saver, "t"))

    # Control: a copy pruned to the latest checkpoint alone loses the channel's history.
    await saver.acopy_thread("t", "naive")
    naive = _delta_graph(saver)
    async with saver.conn.execute(
        "DELETE FROM checkpoints WHERE thread_id = 'naive' AND checkpoint_id < ?",
        ((await _ids(saver, "t"))[0],),
    ):
        await saver.conn.commit()
    naive_config = {"configurable": {"thread_id": "naive"}}
    assert (await naive.aget_state(naive_config)).values != expected

    await saver.aprune(["t"], strategy="keep_latest")

    kept = len(await _ids(saver, "t"))
    assert 1 < kept < total  # back to the last snapshot, not the whole history
    assert (await graph.aget_state(config)).values == expected
    # And the thread goes on correctly from the pruned history.
    await graph.ainvoke({"items": ["in3"]}, config)
    assert (await graph.aget_state(config)).values == {
        "items": ["in0", 1, "in1", 3, "in2", 5, "in3", 7]
    }
