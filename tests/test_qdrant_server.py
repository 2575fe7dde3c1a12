"""The Qdrant-protocol test server (tests/qdrant_server.py), driven only through qdrant-client over HTTP."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from qdrant_server import QDRANT_VERSION, QdrantTestServer

COLLECTION = "memories"
DIM = 8


@pytest.fixture
def server() -> Iterator[QdrantTestServer]:
    with QdrantTestServer() as srv:
        yield srv


@pytest.fixture
def client(server: QdrantTestServer) -> Iterator[QdrantClient]:
    # The version check runs in a daemon thread on init and may outlive a fast test (then it warns
    # "Failed to obtain server version"); test_root_reports_a_version_the_client_accepts covers it.
    qc = QdrantClient(url=server.url, prefer_grpc=False, timeout=5, check_compatibility=False)
    yield qc
    qc.close()


def vec(*head: float) -> list[float]:
    return [float(x) for x in head] + [0.0] * (DIM - len(head))


def make_collection(client: QdrantClient) -> None:
    client.create_collection(
        COLLECTION,
        vectors_config={"text": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
    )


POINTS = [
    # id, vector, payload
    (1, vec(1, 0), {"value": {"colour": "red", "size": 1}, "user": "ann", "created": 10}),
    (2, vec(1, 0.1), {"value": {"colour": "red", "size": 5}, "user": "ann", "created": 20}),
    (3, vec(0, 1), {"value": {"colour": "blue", "size": 7}, "user": "bob", "created": 30}),
    (4, vec(0.2, 1), {"value": {"colour": "green", "size": 3}, "user": "bob", "created": 40, "tags": []}),
    (5, vec(1, 1), {"value": {"colour": "red", "size": 9}, "user": "cy", "created": 50, "tags": ["x"]}),
]


@pytest.fixture
def filled(client: QdrantClient) -> QdrantClient:
    make_collection(client)
    client.create_payload_index(COLLECTION, "created", models.PayloadSchemaType.INTEGER)
    client.create_payload_index(COLLECTION, "user", models.PayloadSchemaType.KEYWORD)
    result = client.upsert(
        COLLECTION,
        points=[models.PointStruct(id=i, vector={"text": v}, payload=p) for i, v, p in POINTS],
        wait=True,
    )
    assert result.status == models.UpdateStatus.COMPLETED
    return client


def red() -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="value.colour", match=models.MatchValue(value="red"))])


# -- service and collections ------------------------------------------------------------------------


def test_root_reports_a_version_the_client_accepts(server: QdrantTestServer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qc = QdrantClient(url=server.url, check_compatibility=False)
        info = qc.info()
        qc.close()
    assert info.version == QDRANT_VERSION
    assert "qdrant" in info.title
    from qdrant_client.common.version_check import get_server_version, is_compatible
    from qdrant_client.qdrant_remote import QdrantRemote

    assert is_compatible(QDRANT_VERSION, get_server_version(server.url, {}, None, 5))
    # the check QdrantClient runs in a background thread on init: no warning means it passed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        QdrantRemote._check_compatibility(server.url, {}, None, 5)
    assert [str(w.message) for w in caught] == []
    server.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        QdrantRemote._check_compatibility(server.url, {}, None, 5)
    assert any("Failed to obtain server version" in str(w.message) for w in caught)  # the check can fail


def test_collection_lifecycle(client: QdrantClient) -> None:
    assert client.collection_exists(COLLECTION) is False
    assert client.get_collections().collections == []
    make_collection(client)
    assert client.collection_exists(COLLECTION) is True
    assert [c.name for c in client.get_collections().collections] == [COLLECTION]
    info = client.get_collection(COLLECTION)
    params = info.config.params.vectors
    assert isinstance(params, dict) and params["text"].size == DIM
    assert params["text"].distance == models.Distance.COSINE
    assert info.points_count == 0

    with pytest.raises(UnexpectedResponse) as exc:
        make_collection(client)
    assert exc.value.status_code == 409
    assert "already exists" in exc.value.content.decode()

    assert client.delete_collection(COLLECTION) is True
    assert client.collection_exists(COLLECTION) is False


def test_unnamed_vector_collection(client: QdrantClient) -> None:
    client.create_collection("plain", vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    client.upsert("plain", [models.PointStruct(id=1, vector=[1.0, 2.0, 3.0], payload={"a": 1})])
    hits = client.query_points("plain", query=[1.0, 0.0, 0.0], limit=1).points
    assert [h.id for h in hits] == [1]
    assert hits[0].score == pytest.approx(1.0)


def test_payload_index_shows_in_collection_info(filled: QdrantClient) -> None:
    schema = filled.get_collection(COLLECTION).payload_schema
    assert schema["created"].data_type == models.PayloadSchemaType.INTEGER
    assert schema["user"].data_type == models.PayloadSchemaType.KEYWORD
    assert filled.get_collection(COLLECTION).points_count == len(POINTS)


# -- points ------------------------------------------------------------------------------------------


def test_retrieve(filled: QdrantClient) -> None:
    records = filled.retrieve(COLLECTION, ids=[3, 1, 99], with_vectors=True)
    by_id = {r.id: r for r in records}
    assert set(by_id) == {1, 3}
    assert by_id[3].payload == POINTS[2][2]
    assert by_id[1].vector == {"text": pytest.approx(vec(1, 0))}
    bare = filled.retrieve(COLLECTION, ids=[1], with_payload=False)
    assert bare[0].payload is None and bare[0].vector is None


def test_query_vector_nearest_first(filled: QdrantClient) -> None:
    hits = filled.query_points(COLLECTION, query=vec(0, 1), using="text", limit=3).points
    assert [h.id for h in hits] == [3, 4, 5]
    assert hits[0].score == pytest.approx(1.0)
    assert hits[0].payload == POINTS[2][2]
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_query_filter_match_nested_key(filled: QdrantClient) -> None:
    hits = filled.query_points(COLLECTION, query=vec(0, 1), using="text", query_filter=red(), limit=10).points
    assert sorted(h.id for h in hits) == [1, 2, 5]
    assert hits[0].id == 5  # the red point closest to (0, 1)


def test_query_filter_range_and_is_empty(filled: QdrantClient) -> None:
    in_range = models.Filter(must=[models.FieldCondition(key="value.size", range=models.Range(gte=3, lt=9))])
    hits = filled.query_points(COLLECTION, query=vec(1), using="text", query_filter=in_range, limit=10).points
    assert sorted(h.id for h in hits) == [2, 3, 4]

    empty_tags = models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="tags"))])
    hits = filled.query_points(COLLECTION, query=vec(1), using="text", query_filter=empty_tags, limit=10).points
    assert sorted(h.id for h in hits) == [1, 2, 3, 4]  # missing or [] count as empty

    combined = models.Filter(must=[red()], must_not=[empty_tags])
    hits = filled.query_points(COLLECTION, query=vec(1), using="text", query_filter=combined, limit=10).points
    assert [h.id for h in hits] == [5]


def test_query_offset_limit_and_score_threshold(filled: QdrantClient) -> None:
    everything = [h.id for h in filled.query_points(COLLECTION, query=vec(1), using="text", limit=10).points]
    assert len(everything) == len(POINTS)
    page = filled.query_points(COLLECTION, query=vec(1), using="text", limit=2, offset=2).points
    assert [h.id for h in page] == everything[2:4]
    close = filled.query_points(COLLECTION, query=vec(1), using="text", score_threshold=0.9, limit=10).points
    assert sorted(h.id for h in close) == [1, 2]
    with_vectors = filled.query_points(COLLECTION, query=vec(1), using="text", limit=1, with_vectors=True)
    assert with_vectors.points[0].vector == {"text": pytest.approx(vec(1, 0))}
    no_payload = filled.query_points(COLLECTION, query=vec(1), using="text", limit=1, with_payload=False)
    assert no_payload.points[0].payload is None


def test_query_order_by_needs_range_index(filled: QdrantClient) -> None:
    hits = filled.query_points(
        COLLECTION,
        query=models.OrderByQuery(order_by=models.OrderBy(key="created", direction=models.Direction.DESC)),
        limit=2,
    ).points
    assert [h.id for h in hits] == [5, 4]
    with pytest.raises(UnexpectedResponse) as exc:
        filled.query_points(COLLECTION, query=models.OrderByQuery(order_by="value.size"), limit=2)
    assert exc.value.status_code == 400
    assert "No range index for `order_by` key" in exc.value.content.decode()


def test_query_batch(filled: QdrantClient) -> None:
    results = filled.query_batch_points(
        COLLECTION,
        requests=[
            models.QueryRequest(query=vec(1), using="text", limit=1),
            models.QueryRequest(query=vec(0, 1), using="text", limit=2, filter=red(), with_payload=True),
        ],
    )
    assert [[h.id for h in r.points] for r in results] == [[1], [5, 2]]
    assert results[1].points[0].payload["user"] == "cy"


def test_scroll_filter_pagination_and_order_by(filled: QdrantClient) -> None:
    first, next_offset = filled.scroll(COLLECTION, limit=2)
    assert [r.id for r in first] == [1, 2] and next_offset == 3
    rest, end = filled.scroll(COLLECTION, limit=10, offset=next_offset)
    assert [r.id for r in rest] == [3, 4, 5] and end is None

    reds, _ = filled.scroll(COLLECTION, scroll_filter=red(), limit=10)
    assert [r.id for r in reds] == [1, 2, 5]

    newest, _ = filled.scroll(
        COLLECTION, limit=3, order_by=models.OrderBy(key="created", direction=models.Direction.DESC)
    )
    assert [r.id for r in newest] == [5, 4, 3]
    oldest_bob, _ = filled.scroll(
        COLLECTION,
        scroll_filter=models.Filter(must=[models.FieldCondition(key="user", match=models.MatchValue(value="bob"))]),
        order_by="created",
        limit=10,
    )
    assert [r.id for r in oldest_bob] == [3, 4]


def test_count_and_facet(filled: QdrantClient) -> None:
    assert filled.count(COLLECTION).count == len(POINTS)
    assert filled.count(COLLECTION, count_filter=red()).count == 3
    facet = filled.facet(COLLECTION, key="value.colour")
    assert {(h.value, h.count) for h in facet.hits} == {("red", 3), ("blue", 1), ("green", 1)}
    assert facet.hits[0].value == "red"  # most frequent first
    bobs = filled.facet(
        COLLECTION,
        key="user",
        facet_filter=models.Filter(must=[models.FieldCondition(key="created", range=models.Range(gt=25))]),
    )
    assert {(h.value, h.count) for h in bobs.hits} == {("bob", 2), ("cy", 1)}


def test_set_payload(filled: QdrantClient) -> None:
    filled.set_payload(COLLECTION, payload={"pinned": True}, points=[1, 3], wait=True)
    filled.set_payload(COLLECTION, payload={"colour": "crimson"}, points=red(), key="value", wait=True)
    records = {r.id: r.payload for r in filled.retrieve(COLLECTION, ids=[1, 2, 3])}
    assert records[1]["pinned"] is True and records[3]["pinned"] is True and "pinned" not in records[2]
    assert records[2]["value"] == {"colour": "crimson", "size": 5}  # merged under the key
    assert records[3]["value"]["colour"] == "blue"


def test_delete_by_ids_and_by_filter(filled: QdrantClient) -> None:
    result = filled.delete(COLLECTION, points_selector=models.PointIdsList(points=[1]), wait=True)
    assert result.status == models.UpdateStatus.COMPLETED
    assert filled.count(COLLECTION).count == 4
    filled.delete(COLLECTION, points_selector=models.FilterSelector(filter=red()), wait=True)
    remaining, _ = filled.scroll(COLLECTION, limit=10)
    assert [r.id for r in remaining] == [3, 4]
    filled.delete(COLLECTION, points_selector=[3])
    assert filled.count(COLLECTION).count == 1


# -- errors ------------------------------------------------------------------------------------------


def test_wrong_vector_dimension_is_a_400_with_qdrant_text(filled: QdrantClient) -> None:
    with pytest.raises(UnexpectedResponse) as exc:
        filled.upsert(COLLECTION, [models.PointStruct(id=9, vector={"text": [1.0, 2.0, 3.0]})])
    assert exc.value.status_code == 400
    body = exc.value.structured()
    assert "Vector dimension error: expected dim: 8, got 3" in body["status"]["error"]
    assert filled.count(COLLECTION).count == len(POINTS)

    with pytest.raises(UnexpectedResponse) as exc:
        filled.query_points(COLLECTION, query=[1.0, 2.0], using="text")
    assert exc.value.status_code == 400
    assert "expected dim: 8, got 2" in exc.value.structured()["status"]["error"]


def test_missing_collection_is_a_404(client: QdrantClient) -> None:
    calls = [
        lambda: client.get_collection("nope"),
        lambda: client.count("nope"),
        lambda: client.upsert("nope", [models.PointStruct(id=1, vector=vec(1))]),
        lambda: client.query_points("nope", query=vec(1)),
        lambda: client.scroll("nope"),
        lambda: client.retrieve("nope", ids=[1]),
    ]
    for call in calls:
        with pytest.raises(UnexpectedResponse) as exc:
            call()
        assert exc.value.status_code == 404
        body = exc.value.structured()
        assert body["status"]["error"] == "Not found: Collection `nope` doesn't exist!"
        assert "result" not in body


def test_unknown_path_and_bad_body(server: QdrantTestServer) -> None:
    import httpx

    response = httpx.get(f"{server.url}/no/such/thing")
    assert response.status_code == 404 and "error" in response.json()["status"]
    response = httpx.put(f"{server.url}/collections/x", content=json.dumps({"vectors": {"size": "big"}}))
    assert response.status_code == 400
    assert response.json()["status"]["error"].startswith("Format error in JSON body")


def test_server_down_raises_response_handling_exception(server: QdrantTestServer) -> None:
    qc = QdrantClient(url=server.url, timeout=2, check_compatibility=False)
    make_collection(qc)
    server.stop()
    with pytest.raises(ResponseHandlingException):
        qc.collection_exists(COLLECTION)
    server.start()  # same port, same data
    assert qc.collection_exists(COLLECTION) is True
    qc.close()


def test_api_key(server: QdrantTestServer) -> None:
    with QdrantTestServer(api_key="s3cret") as secured:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Api key is used with an insecure connection"
            good = QdrantClient(url=secured.url, api_key="s3cret", check_compatibility=False)
            bad = QdrantClient(url=secured.url, api_key="wrong", check_compatibility=False)
        anonymous = QdrantClient(url=secured.url, check_compatibility=False)
        assert good.collection_exists("x") is False
        for qc in (bad, anonymous):
            with pytest.raises(UnexpectedResponse) as exc:
                qc.collection_exists("x")
            assert exc.value.status_code == 401
        assert anonymous.info().version == QDRANT_VERSION  # GET / needs no key
        for qc in (good, bad, anonymous):
            qc.close()


async def test_async_client_round_trip(server: QdrantTestServer) -> None:
    aclient = AsyncQdrantClient(url=server.url, check_compatibility=False)
    try:
        await aclient.create_collection(
            COLLECTION, vectors_config={"text": models.VectorParams(size=DIM, distance=models.Distance.COSINE)}
        )
        await aclient.upsert(
            COLLECTION,
            [models.PointStruct(id=i, vector={"text": v}, payload=p) for i, v, p in POINTS],
            wait=True,
        )
        hits = (await aclient.query_points(COLLECTION, query=vec(0, 1), using="text", query_filter=red(), limit=1)).points
        assert [h.id for h in hits] == [5]
        assert (await aclient.count(COLLECTION)).count == len(POINTS)
        with pytest.raises(UnexpectedResponse) as exc:
            await aclient.count("nope")
        assert exc.value.status_code == 404
    finally:
        await aclient.close()
