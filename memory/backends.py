"""The two Qdrant engines behind the memory store: embedded and server.

- :class:`EdgeCollection` runs Qdrant's own engine in the process (``qdrant-edge-py``), in a
  directory. It is the default because it is the real engine and it is fast: on these
  machines 20k points × 384 dims upserted in 1.5 s and a filtered query took 1–27 ms, where
  qdrant-client's pure-Python local mode took 61 s and 600 ms (measured 2026-11). A shard
  directory can be open in one process at a time.
- :class:`ServerCollection` talks to a Qdrant server through ``qdrant-client`` (REST), for
  deployments where several processes or replicas share memory.

Both speak the same small interface, :class:`Collection`, in the neutral filter terms of
:class:`Where`, so :class:`~bulwark.memory.store.QdrantStore` has one code path. Every
engine error comes out as :class:`MemoryStoreError` naming the location.
"""

from __future__ import annotations

import atexit
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy

from bulwark.tools.policy import CircuitBreaker

VECTOR = "text"
"""Name of the one dense vector each point may carry."""
INDEXED: dict[str, str] = {"ns": "keyword", "ns_path": "keyword", "updated_at": "float", "expires_at": "float"}
"""Payload fields the store filters or sorts on, with their index type."""
FACET_LIMIT = 1_000_000
BREAKER_FAILURES = 3
BREAKER_RECOVERY_S = 30.0


class MemoryStoreError(RuntimeError):
    """The memory store cannot be opened or did not complete an operation."""


@dataclass(frozen=True)
class Match:
    """``key`` equals ``value`` (or, for a list field, contains it)."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class Range:
    """``key`` is a number within the bounds given."""

    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


Condition = Match | Range


@dataclass(frozen=True)
class Where:
    """All of ``must`` and none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class StoredPoint:
    """A point to write: its id, its vector (None: not searchable by meaning), its payload."""

    id: str
    vector: list[float] | None
    payload: dict[str, Any] = field(default_factory=dict)


class Collection(Protocol):
    """What the store needs from a Qdrant collection."""

    location: str
    dims: int

    def upsert(self, points: Sequence[StoredPoint]) -> None: ...
    def retrieve(self, ids: Sequence[str]) -> list[dict[str, Any]]: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def delete_where(self, where: Where) -> None: ...
    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None: ...
    def query(
        self, vector: list[float], where: Where, *, limit: int, offset: int
    ) -> list[tuple[dict[str, Any], float]]: ...
    def scroll(self, where: Where, *, limit: int) -> list[dict[str, Any]]:
        """Payloads matching ``where``, most recently updated first."""
        ...
    def facet(self, key: str, where: Where) -> list[str]: ...
    def count(self, where: Where) -> int: ...
    def optimize(self) -> None:
        """Index what was written since the last call (vector HNSW graph, payload indexes)."""
        ...
    def close(self) -> None: ...


class EdgeCollection:
    """A Qdrant Edge shard in ``path``, created with ``dims``-dimensional cosine vectors."""

    _open: dict[Path, EdgeCollection] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path, shard: Any, dims: int) -> None:
        self.path, self.location, self._shard, self.dims = path, str(path), shard, dims
        self._users = 1

    @classmethod
    def open(cls, path: Path | str, *, dims: int) -> EdgeCollection:
        """The process's shard at ``path``, created if missing; opened once per process."""
        import qdrant_edge as q

        path = Path(path).resolve()
        with cls._lock:
            if (opened := cls._open.get(path)) is not None:
                _check_dims(opened.dims, dims, opened.location)
                opened._users += 1
                return opened
            try:
                path.mkdir(parents=True, exist_ok=True)
                config_file = path / "edge_config.json"
                if config_file.exists():
                    stored = json.loads(config_file.read_text())["vectors"][VECTOR]["size"]
                    _check_dims(stored, dims, str(path))  # before loading: nothing is touched
                    shard = q.EdgeShard.load(str(path))
                elif any(path.iterdir()):
                    raise MemoryStoreError(f"{path} is not empty and holds no memory store")
                else:
                    vectors = {VECTOR: q.EdgeVectorParams(size=dims, distance=q.Distance.Cosine)}
                    shard = q.EdgeShard.create(str(path), q.EdgeConfig(vectors=vectors))
                    for name, kind in INDEXED.items():
                        schema = q.PayloadSchemaType.Keyword if kind == "keyword" else q.PayloadSchemaType.Float
                        shard.update(q.UpdateOperation.create_field_index(name, schema))
            except MemoryStoreError:
                raise
            except (OSError, KeyError, ValueError) as exc:
                raise MemoryStoreError(f"cannot open the memory store at {path}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - the engine raises bare Exception
                if "WouldBlock" in str(exc):
                    raise MemoryStoreError(
                        f"the embedded memory store at {path} is open in another process; "
                        "an embedded store serves one process: point BULWARK_MEMORY_URL at a "
                        "Qdrant server to share memory between processes"
                    ) from None
                raise MemoryStoreError(f"cannot open the memory store at {path}: {exc}") from None
            collection = cls(path, shard, dims)
            cls._open[path] = collection
            return collection

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the engine raises bare Exception
            raise MemoryStoreError(f"memory store at {self.location}: {what} failed: {exc}") from None

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        import qdrant_edge as q

        native = [
            q.Point(p.id, {VECTOR: p.vector} if p.vector is not None else {}, p.payload)
            for p in points
        ]
        self._call("upsert", self._shard.update, q.UpdateOperation.upsert_points(native))

    def retrieve(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        records = self._call("retrieve", self._shard.retrieve, list(ids), True, False)
        return [r.payload for r in records]

    def delete(self, ids: Sequence[str]) -> None:
        import qdrant_edge as q

        self._call("delete", self._shard.update, q.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, where: Where) -> None:
        import qdrant_edge as q

        op = q.UpdateOperation.delete_points_by_filter(_edge_filter(where))
        self._call("delete", self._shard.update, op)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        import qdrant_edge as q

        op = q.UpdateOperation.set_payload(list(ids), payload)
        self._call("set payload", self._shard.update, op)

    def query(
        self, vector: list[float], where: Where, *, limit: int, offset: int
    ) -> list[tuple[dict[str, Any], float]]:
        import qdrant_edge as q

        request = q.QueryRequest(
            limit=limit, offset=offset, query=q.Query.Nearest(vector, using=VECTOR),
            filter=_edge_filter(where), with_payload=True,
        )
        return [(p.payload, p.score) for p in self._call("query", self._shard.query, request)]

    def scroll(self, where: Where, *, limit: int) -> list[dict[str, Any]]:
        import qdrant_edge as q

        request = q.ScrollRequest(
            limit=limit, filter=_edge_filter(where), with_payload=True,
            order_by=q.OrderBy("updated_at", q.Direction.Desc),
        )
        records, _ = self._call("scroll", self._shard.scroll, request)
        return [r.payload for r in records]

    def facet(self, key: str, where: Where) -> list[str]:
        import qdrant_edge as q

        request = q.FacetRequest(key, limit=FACET_LIMIT, exact=True, filter=_edge_filter(where))
        return [str(hit.value) for hit in self._call("facet", self._shard.facet, request).hits]

    def count(self, where: Where) -> int:
        import qdrant_edge as q

        return self._call("count", self._shard.count, q.CountRequest(exact=True, filter=_edge_filter(where)))

    def optimize(self) -> None:
        """Build the HNSW index of new points now (the engine does not do it by itself).

        Until then new points are searched exhaustively, which is fast for one user's
        memories but grows with the whole store: at 50k memories in one namespace a query
        went from 20 ms to 2 ms (bench/memory_recall.py). It blocks the process while it
        runs (seconds for 10k points), so it is run by batch jobs, not per write.
        """
        self._call("optimize", self._shard.optimize)

    def close(self) -> None:
        """Release one :meth:`open`; the last one flushes and closes the shard."""
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._release()

    def _release(self) -> None:
        del self._open[self.path]
        self._shard.flush()
        self._shard.close()


class ServerCollection:
    """Collection ``name`` on the Qdrant server at ``url``, through qdrant-client's REST API."""

    def __init__(self, client: Any, name: str, url: str, dims: int, breaker: CircuitBreaker) -> None:
        self._client, self.name, self.location, self.dims = client, name, f"{url} (collection {name})", dims
        self.breaker = breaker

    @classmethod
    def open(
        cls, url: str, *, dims: int, name: str = "bulwark", api_key: str | None = None,
        timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
    ) -> ServerCollection:
        """Connect, creating the collection and its payload indexes if missing.

        A server that fails ``BREAKER_FAILURES`` calls in a row (unreachable, timing out,
        5xx) is not called again for ``BREAKER_RECOVERY_S``: calls fail at once instead of
        each waiting for ``timeout_s``, so a request does not pay for a dead memory server.

        Raises:
            MemoryStoreError: the server is unreachable or refuses, or the collection holds
                vectors of another size.
        """
        from qdrant_client import QdrantClient, models

        client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s), check_compatibility=False)
        breaker = CircuitBreaker(failure_threshold=BREAKER_FAILURES, recovery_s=BREAKER_RECOVERY_S, clock=clock)
        collection = cls(client, name, url, dims, breaker)
        if collection._call("connect", client.collection_exists, name):
            info = collection._call("connect", client.get_collection, name)
            vectors = info.config.params.vectors
            stored = vectors[VECTOR].size if isinstance(vectors, dict) and VECTOR in vectors else None
            if stored is None:
                raise MemoryStoreError(f"{collection.location} has no {VECTOR!r} vector: not a memory store")
            _check_dims(stored, dims, collection.location)
            return collection
        vectors = {VECTOR: models.VectorParams(size=dims, distance=models.Distance.COSINE)}
        collection._call("create", client.create_collection, name, vectors)
        for field_name, kind in INDEXED.items():
            schema = models.PayloadSchemaType.KEYWORD if kind == "keyword" else models.PayloadSchemaType.FLOAT
            collection._call("create index", client.create_payload_index, name, field_name, schema)
        return collection

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

        if not self.breaker.allow():
            raise MemoryStoreError(
                f"memory store at {self.location}: {what} skipped: the server failed "
                f"{self.breaker.failure_threshold} times in a row, retry in {self.breaker.retry_in():.0f} s"
            )
        try:
            result = fn(*args, **kwargs)
        except UnexpectedResponse as exc:
            # A 4xx means the server is up and refused this request; a 5xx that it is not well.
            (self.breaker.record_failure if exc.status_code >= 500 else self.breaker.record_success)()
            raise self._error(what, exc) from None
        except (ApiException, OSError) as exc:  # unreachable or timed out
            self.breaker.record_failure()
            raise self._error(what, exc) from None
        except ValueError as exc:
            raise self._error(what, exc) from None
        self.breaker.record_success()
        return result

    def _error(self, what: str, exc: Exception) -> MemoryStoreError:
        from qdrant_client.http.exceptions import UnexpectedResponse

        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, UnexpectedResponse):  # Qdrant's own words are in the body
            try:
                detail = f"{exc.status_code} {json.loads(exc.content)['status']['error']}"
            except (ValueError, KeyError, TypeError):
                pass
        return MemoryStoreError(f"memory store at {self.location}: {what} failed: {detail}")

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        from qdrant_client import models

        native = [
            models.PointStruct(id=p.id, vector={VECTOR: p.vector} if p.vector is not None else {}, payload=p.payload)
            for p in points
        ]
        self._call("upsert", self._client.upsert, self.name, native, wait=True)

    def retrieve(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        records = self._call("retrieve", self._client.retrieve, self.name, list(ids), with_payload=True)
        return [r.payload or {} for r in records]

    def delete(self, ids: Sequence[str]) -> None:
        from qdrant_client import models

        selector = models.PointIdsList(points=list(ids))
        self._call("delete", self._client.delete, self.name, selector, wait=True)

    def delete_where(self, where: Where) -> None:
        from qdrant_client import models

        selector = models.FilterSelector(filter=_client_filter(where) or models.Filter())
        self._call("delete", self._client.delete, self.name, selector, wait=True)

    def set_payload(self, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._call("set payload", self._client.set_payload, self.name, payload, list(ids), wait=True)

    def query(
        self, vector: list[float], where: Where, *, limit: int, offset: int
    ) -> list[tuple[dict[str, Any], float]]:
        response = self._call(
            "query", self._client.query_points, self.name, query=vector, using=VECTOR,
            query_filter=_client_filter(where), limit=limit, offset=offset, with_payload=True,
        )
        return [(p.payload or {}, p.score) for p in response.points]

    def scroll(self, where: Where, *, limit: int) -> list[dict[str, Any]]:
        from qdrant_client import models

        records, _ = self._call(
            "scroll", self._client.scroll, self.name, scroll_filter=_client_filter(where), limit=limit,
            with_payload=True, order_by=models.OrderBy(key="updated_at", direction=models.Direction.DESC),
        )
        return [r.payload or {} for r in records]

    def facet(self, key: str, where: Where) -> list[str]:
        response = self._call(
            "facet", self._client.facet, self.name, key, facet_filter=_client_filter(where),
            limit=FACET_LIMIT, exact=True,
        )
        return [str(hit.value) for hit in response.hits]

    def count(self, where: Where) -> int:
        response = self._call("count", self._client.count, self.name, count_filter=_client_filter(where), exact=True)
        return response.count

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server indexes new points in the background."""

    def close(self) -> None:
        self._client.close()


def _client_filter(where: Where) -> Any:
    from qdrant_client import models

    def condition(c: Condition) -> Any:
        if isinstance(c, Match):
            return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
        return models.FieldCondition(key=c.key, range=models.Range(gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte))

    if not where.must and not where.must_not:
        return None
    return models.Filter(
        must=[condition(c) for c in where.must] or None,
        must_not=[condition(c) for c in where.must_not] or None,
    )


@atexit.register
def _close_edge_shards() -> None:
    with EdgeCollection._lock:
        for collection in list(EdgeCollection._open.values()):
            collection._release()


def _edge_filter(where: Where) -> Any:
    import qdrant_edge as q

    def condition(c: Condition) -> Any:
        if isinstance(c, Match):
            # qdrant-edge-py 0.9 reads a Python bool as the integer 1 or 0 (bool subclasses
            # int), so True would never match a JSON true; numpy's bool is read as a bool.
            value = numpy.bool_(c.value) if isinstance(c.value, bool) else c.value
            return q.FieldCondition(c.key, match=q.MatchValue(value))
        return q.FieldCondition(c.key, range=q.RangeFloat(gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte))

    if not where.must and not where.must_not:
        return None
    return q.Filter(
        must=[condition(c) for c in where.must] or None,
        must_not=[condition(c) for c in where.must_not] or None,
    )


def _check_dims(stored: int, wanted: int, location: str) -> None:
    if stored != wanted:
        raise MemoryStoreError(
            f"the memory store at {location} holds {stored}-dimensional vectors but the "
            f"embedder makes {wanted}: set BULWARK_EMBEDDINGS back, or point "
            "BULWARK_MEMORY_URL at a new location and re-ingest (the store was not changed)"
        )
