"""The Qdrant-backed LangGraph store, on every backend: embedded Qdrant Edge and a server.

The server backend is qdrant-client over HTTP against ``tests/qdrant_server.py`` (no Qdrant
server binary installs offline); the same tests run on both.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.store.base import InvalidNamespaceError, PutOp, SearchOp

from clocks import ManualClock
from bulwark.memory.backends import Collection, EdgeCollection, MemoryStoreError, ServerCollection, StoredPoint
from bulwark.memory.embeddings import HashingEmbeddings
from bulwark.memory.store import QdrantStore, open_memory_store
from bulwark.settings import Settings
from qdrant_server import QdrantTestServer

DIMS = 64
EMBED = HashingEmbeddings(dims=DIMS)
USER_A = ("memories", "acme", "alice")
USER_B = ("memories", "acme", "bob")


@pytest.fixture(scope="module")
def qdrant_server() -> Iterator[QdrantTestServer]:
    with QdrantTestServer() as server:
        yield server


@pytest.fixture(params=["embedded", "server"])
def open_collection(request: pytest.FixtureRequest, tmp_path: Path):
    """Opens a collection on the backend under test; same location on every call."""
    opened: list[Collection] = []

    def open_(dims: int = DIMS) -> Collection:
        if request.param == "embedded":
            collection: Collection = EdgeCollection.open(tmp_path / "memory", dims=dims)
        else:
            server = request.getfixturevalue("qdrant_server")
            collection = ServerCollection.open(server.url, dims=dims, name=f"t{abs(hash(tmp_path))}")
        opened.append(collection)
        return collection

    yield open_
    for collection in opened:
        collection.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(open_collection, clock: ManualClock) -> QdrantStore:
    index = {"dims": DIMS, "embed": EMBED, "fields": ["text"]}
    return QdrantStore(open_collection(), index=index, ttl={"refresh_on_read": True}, clock=clock)


def test_put_get_update_delete(store: QdrantStore, clock: ManualClock) -> None:
    store.put(USER_A, "colour", {"text": "my favourite colour is teal"})
    first = store.get(USER_A, "colour")
    assert first is not None and first.value == {"text": "my favourite colour is teal"}
    assert first.namespace == USER_A and first.key == "colour"

    clock.now += 60
    store.put(USER_A, "colour", {"text": "my favourite colour is green"})
    second = store.get(USER_A, "colour")
    assert second.value["text"].endswith("green")
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert store.count(USER_A) == 1  # replaced, not duplicated

    store.delete(USER_A, "colour")
    assert store.get(USER_A, "colour") is None
    store.delete(USER_A, "colour")  # deleting twice is fine


def test_semantic_search_ranks_by_meaning(store: QdrantStore) -> None:
    facts = {
        "colour": "my favourite colour is teal",
        "city": "I live in Lisbon near the river",
        "food": "I am allergic to peanuts",
    }
    for key, text in facts.items():
        store.put(USER_A, key, {"text": text})
    hits = store.search(USER_A, query="what is my favourite colour?", limit=2)
    assert [hit.key for hit in hits][0] == "colour"
    assert len(hits) == 2 and hits[0].score > hits[1].score
    assert store.search(USER_A, query="peanut allergy", limit=1)[0].key == "food"


def test_optimize_keeps_every_item_findable(store: QdrantStore) -> None:
    for n in range(300):
        store.put(("memories", "acme", f"user{n % 3}"), f"k{n}", {"text": f"fact {n} about topic {n % 7}"})
    store.put(USER_A, "colour", {"text": "my favourite colour is teal"})
    before = [i.key for i in store.search(USER_A, query="favourite colour", limit=3)]
    store.optimize()
    assert [i.key for i in store.search(USER_A, query="favourite colour", limit=3)] == before
    assert before[0] == "colour" and store.count() == 301


def test_search_without_query_is_newest_first_with_paging(store: QdrantStore, clock: ManualClock) -> None:
    for n in range(5):
        clock.now += 1
        store.put(USER_A, f"k{n}", {"text": f"fact number {n}"})
    assert [i.key for i in store.search(USER_A, limit=3)] == ["k4", "k3", "k2"]
    assert [i.key for i in store.search(USER_A, limit=3, offset=3)] == ["k1", "k0"]
    assert all(i.score is None for i in store.search(USER_A))


def test_filters_run_in_qdrant(store: QdrantStore) -> None:
    store.put(USER_A, "a", {"text": "likes tea", "kind": "preference", "importance": 0.8, "meta": {"src": "chat"}})
    store.put(USER_A, "b", {"text": "lives in Rome", "kind": "personal", "importance": 0.7, "meta": {"src": "tool"}})
    store.put(USER_A, "c", {"text": "went shopping", "kind": "statement", "importance": 0.3, "pinned": True})

    def keys(**filter: object) -> set[str]:
        return {i.key for i in store.search(USER_A, filter=filter)}

    assert keys(kind="preference") == {"a"}
    assert keys(importance={"$gte": 0.7}) == {"a", "b"}
    assert keys(importance={"$gt": 0.3, "$lt": 0.8}) == {"b"}
    assert keys(kind={"$ne": "statement"}) == {"a", "b"}
    assert keys(importance=0.3) == {"c"}
    assert keys(pinned=True) == {"c"}
    assert keys(meta={"src": "tool"}) == {"b"}
    assert {i.key for i in store.search(USER_A, query="tea", filter={"kind": "personal"})} == {"b"}
    with pytest.raises(ValueError, match="unsupported filter"):
        store.search(USER_A, filter={"importance": {"$regex": ".*"}})
    with pytest.raises(ValueError, match="invalid filter field"):
        store.search(USER_A, filter={"a b": 1})


def test_users_never_see_each_others_memories(store: QdrantStore) -> None:
    store.put(USER_A, "secret", {"text": "my favourite colour is teal"})
    store.put(USER_B, "other", {"text": "I like football"})
    assert store.get(USER_B, "secret") is None
    assert [i.key for i in store.search(USER_B, query="favourite colour")] == ["other"]
    assert {i.key for i in store.search(("memories", "acme"))} == {"secret", "other"}
    # a prefix matches whole labels only
    store.put(("memories", "acme", "alice2"), "x", {"text": "alice2's fact"})
    assert {i.key for i in store.search(USER_A)} == {"secret"}


def test_list_namespaces(store: QdrantStore) -> None:
    for ns in [USER_A, USER_B, ("memories", "globex", "carol"), ("knowledge", "acme")]:
        store.put(ns, "k", {"text": "x"})
    assert store.list_namespaces() == sorted([USER_A, USER_B, ("memories", "globex", "carol"), ("knowledge", "acme")])
    assert store.list_namespaces(prefix=("memories", "acme")) == [USER_A, USER_B]
    assert store.list_namespaces(suffix=("bob",)) == [USER_B]
    assert store.list_namespaces(prefix=("memories", "*", "carol")) == [("memories", "globex", "carol")]
    assert store.list_namespaces(max_depth=2) == [("knowledge", "acme"), ("memories", "acme"), ("memories", "globex")]
    assert store.list_namespaces(limit=1, offset=1) == [USER_A]


def test_batch_mixes_operations(store: QdrantStore) -> None:
    results = store.batch([
        PutOp(USER_A, "k", {"text": "first"}),
        PutOp(USER_A, "k", {"text": "second"}),  # the last put of a key wins
        SearchOp(USER_A),
    ])
    assert results[:2] == [None, None]
    assert store.get(USER_A, "k").value == {"text": "second"}


async def test_async_api_matches_sync(store: QdrantStore) -> None:
    await store.aput(USER_A, "colour", {"text": "my favourite colour is teal"})
    assert (await store.aget(USER_A, "colour")).value["text"].endswith("teal")
    hits = await store.asearch(USER_A, query="favourite colour")
    assert [h.key for h in hits] == ["colour"]
    assert await store.alist_namespaces(prefix=("memories",)) == [USER_A]
    await store.adelete(USER_A, "colour")
    assert await store.aget(USER_A, "colour") is None


def test_ttl_expires_refreshes_and_sweeps(store: QdrantStore, clock: ManualClock) -> None:
    store.put(USER_A, "short", {"text": "parked on level 3"}, ttl=10)  # minutes
    store.put(USER_A, "kept", {"text": "my name is Alice"})
    clock.now += 9 * 60
    assert store.get(USER_A, "short") is not None  # read: refreshed for another 10 minutes
    clock.now += 9 * 60
    assert store.get(USER_A, "short", refresh_ttl=False) is not None
    clock.now += 2 * 60
    assert store.get(USER_A, "short") is None
    assert [i.key for i in store.search(USER_A, query="parking level")] == ["kept"]
    assert store.sweep_ttl() == 1
    assert store.count(USER_A) == 1


def test_items_not_indexed_are_stored_but_not_ranked(store: QdrantStore) -> None:
    store.put(USER_A, "raw", {"text": "my favourite colour is teal"}, index=False)
    store.put(USER_A, "notes", {"title": "colour notes", "body": "teal"}, index=["title"])
    assert store.get(USER_A, "raw") is not None
    assert [i.key for i in store.search(USER_A, query="favourite colour teal")] == ["notes"]


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        (("memories", "a.b"), "periods"),
        (("memories", "bad\nlabel"), "control characters"),
        (("memories", ""), "empty"),
        (("memories", "x" * 300), "at most 256"),
        (("*",), "not '\\*'"),
        ((), "empty"),
    ],
)
def test_illegal_namespaces_are_refused(store: QdrantStore, namespace, message) -> None:
    with pytest.raises(InvalidNamespaceError, match=message):
        store.put(namespace, "k", {"text": "x"})
    assert store.count() == 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", {"text": "x"}, "non-empty string"),
        ("k", ["not", "a", "dict"], "is a dict"),
        ("k", {"x": float("nan")}, "must be JSON"),
        ("k", {"x": object()}, "must be JSON"),
        ("k", {"text": "x" * 1_000_001}, "at most 1000000 bytes"),
    ],
)
def test_bad_items_are_refused_and_nothing_is_written(store: QdrantStore, key, value, message) -> None:
    store.put(USER_A, "good", {"text": "kept"})
    with pytest.raises(ValueError, match=message):
        store.batch([PutOp(USER_A, "other", {"text": "same batch"}), PutOp(USER_A, key, value)])
    assert [i.key for i in store.search(USER_A)] == ["good"]


def test_memories_survive_reopening(open_collection) -> None:
    first = QdrantStore(open_collection(), index={"dims": DIMS, "embed": EMBED, "fields": ["text"]})
    first.put(USER_A, "colour", {"text": "my favourite colour is teal"})
    first.close()
    again = QdrantStore(open_collection(), index={"dims": DIMS, "embed": EMBED, "fields": ["text"]})
    assert again.search(USER_A, query="favourite colour")[0].key == "colour"


def test_changing_the_embedder_size_is_refused_without_damage(open_collection) -> None:
    store = QdrantStore(open_collection(), index={"dims": DIMS, "embed": EMBED, "fields": ["text"]})
    store.put(USER_A, "colour", {"text": "my favourite colour is teal"})
    store.close()
    with pytest.raises(MemoryStoreError, match=f"holds {DIMS}-dimensional vectors but the embedder makes 32"):
        open_collection(dims=32)
    again = QdrantStore(open_collection(), index={"dims": DIMS, "embed": EMBED, "fields": ["text"]})
    assert again.get(USER_A, "colour") is not None


def test_an_embedder_returning_the_wrong_size_writes_nothing(open_collection) -> None:
    wrong = HashingEmbeddings(dims=DIMS // 2)
    store = QdrantStore(open_collection(), index={"dims": DIMS, "embed": wrong, "fields": ["text"]})
    with pytest.raises(MemoryStoreError, match="nothing was written"):
        store.put(USER_A, "colour", {"text": "my favourite colour is teal"})
    assert store.count() == 0


def test_server_down_is_a_clear_error() -> None:
    with QdrantTestServer() as server:
        url = server.url
    with pytest.raises(MemoryStoreError, match=f"memory store at {url}.*connect failed"):
        ServerCollection.open(url, dims=DIMS)


def test_a_dead_server_trips_the_breaker_and_recovers() -> None:
    clock = ManualClock()
    with QdrantTestServer() as server:
        collection = ServerCollection.open(server.url, dims=DIMS, clock=clock)
        store = QdrantStore(collection, index={"dims": DIMS, "embed": EMBED, "fields": ["text"]})
        store.put(USER_A, "colour", {"text": "my favourite colour is teal"})
        server.stop()
        for _ in range(3):
            with pytest.raises(MemoryStoreError, match="failed: .*Connection refused"):
                store.get(USER_A, "colour")
        with pytest.raises(MemoryStoreError, match="skipped: the server failed 3 times in a row, retry in 30 s"):
            store.get(USER_A, "colour")  # fails at once, without waiting on the network
        server.start()
        clock.now += 30
        assert store.get(USER_A, "colour").value["text"].endswith("teal")
        for _ in range(3):  # a request the server refuses (4xx) says nothing about its health
            with pytest.raises(MemoryStoreError, match="upsert failed: .*dimension"):
                collection.upsert([StoredPoint(id=str(uuid.uuid4()), vector=[1.0, 0.0], payload={})])
        assert collection.breaker.state.value == "closed"


def test_embedded_store_in_use_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "memory"
    EdgeCollection.open(path, dims=DIMS).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from bulwark.memory.backends import EdgeCollection
            EdgeCollection.open({str(path)!r}, dims={DIMS})
            print("open", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(MemoryStoreError, match="open in another process.*Qdrant server"):
            EdgeCollection.open(path, dims=DIMS)
    finally:
        holder.communicate("")


def test_open_memory_store_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, memory_ttl_days=30)
    with open_memory_store(settings) as store:
        store.put(USER_A, "colour", {"text": "my favourite colour is teal"})
        item = store.search(USER_A, query="favourite colour")[0]
        assert item.key == "colour"
    assert (tmp_path / "memory" / "edge_config.json").exists()
    with open_memory_store(settings) as store:
        assert store.get(USER_A, "colour") is not None
