"""A local server that speaks Qdrant's REST protocol, for the tests of the Qdrant "server" backend.

Why it exists: the house rule is that the online path (a Qdrant server) is tested against a
local server that speaks the same protocol, and no Qdrant server binary can be installed on
this offline machine (Qdrant is not on PyPI, Debian or npm, and crates.io is unreachable). So
this module serves Qdrant's REST API over real HTTP on 127.0.0.1, and the production code
path - ``qdrant_client.QdrantClient(url=...)`` / ``AsyncQdrantClient`` talking REST through
httpx - runs unchanged against it: request building, serialisation, status handling and
``UnexpectedResponse`` / ``ResponseHandlingException`` are all exercised.

The engine is qdrant-client's own local mode (``QdrantClient(location=":memory:")``), the
official Python implementation of Qdrant's search, filter, scroll, count and facet semantics.
Request bodies are parsed with qdrant-client's pydantic REST models (``qdrant_client.http.
models``), so a body the client sends is accepted exactly when it matches Qdrant's OpenAPI
schema, and answers use Qdrant's envelope ``{"result": ..., "status": "ok", "time": ...}``.
Errors use Qdrant's shape ``{"status": {"error": "..."}, "time": ...}`` and status codes:
404 ``Not found: Collection `x` doesn't exist!`` for a missing collection, 400 ``Wrong input:
...`` for bad requests (e.g. ``Wrong input: Vector dimension error: expected dim: 8, got 3``),
400 ``Format error in JSON body: ...`` for bodies that do not match the schema, 409 for creating
an existing collection, 401 for a missing or wrong API key, 404 for unknown paths.

Served subset (paths as in ``qdrant_client/http/api/*.py``):

    GET    /                                     version info (reports qdrant-client's version,
                                                 so the client's compatibility check passes)
    GET    /healthz, /livez, /readyz
    GET    /collections
    GET    /collections/{name}
    GET    /collections/{name}/exists
    PUT    /collections/{name}                   create (named or unnamed dense vectors, sparse)
    DELETE /collections/{name}
    PUT    /collections/{name}/index             create payload index (recorded, see below)
    DELETE /collections/{name}/index/{field}
    PUT    /collections/{name}/points            upsert (PointsList or PointsBatch)
    POST   /collections/{name}/points            retrieve by ids
    GET    /collections/{name}/points/{id}
    POST   /collections/{name}/points/delete     by ids or by filter
    POST   /collections/{name}/points/payload    set payload (merge; optional ``key``)
    PUT    /collections/{name}/points/payload    overwrite payload
    POST   /collections/{name}/points/payload/delete
    POST   /collections/{name}/points/payload/clear
    POST   /collections/{name}/points/query      vector / order_by / ... queries
    POST   /collections/{name}/points/query/batch
    POST   /collections/{name}/points/scroll     filter, limit, offset, order_by
    POST   /collections/{name}/points/count
    POST   /collections/{name}/facet

Differences from a real server, on purpose or by necessity:

* Local mode ignores payload indexes (except text indexes with scoring), so this server records
  them itself: they show up in ``payload_schema`` of the collection info and, like a real server,
  ``order_by`` (in scroll and query) is refused with 400 unless the key has a range-capable index
  (integer, float or datetime). Filters work without indexes, as on a default real server.
* Writes are applied synchronously; ``wait=false`` only changes the reported status to
  ``acknowledged``. Search is exact (brute force). No gRPC, snapshots, aliases, sharding.

Usage::

    with QdrantTestServer() as server:
        client = QdrantClient(url=server.url)
        ...
        server.stop()    # now connecting is refused: simulates the server being down
        server.start()   # same port, same data: the server is back
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError
from qdrant_client import QdrantClient
from qdrant_client.http import models

__all__ = ["QdrantTestServer", "QDRANT_VERSION"]

#: Reported by ``GET /``; qdrant-client warns unless major matches and minor differs by <= 1.
QDRANT_VERSION = importlib.metadata.version("qdrant-client")

_RANGE_INDEX_TYPES = {
    models.PayloadSchemaType.INTEGER,
    models.PayloadSchemaType.FLOAT,
    models.PayloadSchemaType.DATETIME,
}
_AUTH_FREE_PATHS = {"/", "/healthz", "/livez", "/readyz"}


class QdrantError(Exception):
    """An error answered in Qdrant's shape: ``{"status": {"error": message}, "time": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _not_found(name: str) -> QdrantError:
    return QdrantError(404, f"Not found: Collection `{name}` doesn't exist!")


def _bad_input(message: str) -> QdrantError:
    return QdrantError(400, message if message.startswith("Wrong input") else f"Wrong input: {message}")


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _parse(type_: Any, body: Any) -> Any:
    """Validate a JSON body with qdrant-client's REST model (or a Union of them)."""
    adapter = _ADAPTERS.get(type_)
    if adapter is None:
        adapter = _ADAPTERS[type_] = TypeAdapter(type_)
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise QdrantError(400, f"Format error in JSON body: {errors}") from None


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _selector(points: list[Any] | None, filter_: models.Filter | None) -> models.PointIdsList | models.FilterSelector:
    if points is not None:
        return models.PointIdsList(points=points)
    if filter_ is not None:
        return models.FilterSelector(filter=filter_)
    raise _bad_input("Either list of point ids or filter must be provided")


class _Engine:
    """Qdrant semantics from qdrant-client local mode, plus what local mode leaves out."""

    def __init__(self) -> None:
        self.local = QdrantClient(location=":memory:")
        self.lock = threading.Lock()
        self.indexes: dict[str, dict[str, models.PayloadSchemaType]] = {}

    # -- helpers ---------------------------------------------------------------------------------

    def require(self, name: str) -> None:
        if not self.local.collection_exists(name):
            raise _not_found(name)

    def require_order_by_index(self, name: str, order_by: Any) -> None:
        if order_by is None:
            return
        key = order_by if isinstance(order_by, str) else order_by.key
        schema = self.indexes.get(name, {}).get(key)
        if schema not in _RANGE_INDEX_TYPES:
            raise QdrantError(
                400,
                f"Bad request: No range index for `order_by` key: `{key}`. Please create one to use "
                "`order_by`. Check https://qdrant.tech/documentation/concepts/indexing/#payload-index "
                "to see which payload schemas support Range conditions",
            )

    @staticmethod
    def update_result(query: dict[str, list[str]]) -> models.UpdateResult:
        wait = query.get("wait", ["false"])[0].lower() == "true"
        status = models.UpdateStatus.COMPLETED if wait else models.UpdateStatus.ACKNOWLEDGED
        return models.UpdateResult(operation_id=0, status=status)

    # -- service ---------------------------------------------------------------------------------

    def root(self, body: Any, q: dict[str, list[str]]) -> Any:
        # Qdrant answers GET / without the envelope.
        return _Raw({"title": "qdrant - vector search engine", "version": QDRANT_VERSION, "commit": None})

    def health(self, body: Any, q: dict[str, list[str]]) -> Any:
        return _Raw("healthz check passed", content_type="text/plain")

    # -- collections -----------------------------------------------------------------------------

    def list_collections(self, body: Any, q: dict[str, list[str]]) -> Any:
        return self.local.get_collections()

    def get_collection(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        self.require(name)
        info = self.local.get_collection(name)
        count = self.local.count(name).count
        info.points_count = count
        info.indexed_vectors_count = 0
        info.payload_schema = {
            field: models.PayloadIndexInfo(data_type=schema, points=count)
            for field, schema in self.indexes.get(name, {}).items()
        }
        return info

    def collection_exists(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        return models.CollectionExistence(exists=self.local.collection_exists(name))

    def create_collection(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.CreateCollection, body or {})
        if self.local.collection_exists(name):
            raise QdrantError(409, f"Wrong input: Collection `{name}` already exists!")
        self.local.create_collection(
            name,
            vectors_config=request.vectors,
            sparse_vectors_config=request.sparse_vectors,
            metadata=request.metadata,
        )
        self.indexes[name] = {}
        return True

    def delete_collection(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        self.indexes.pop(name, None)
        return self.local.delete_collection(name)

    def create_index(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.CreateFieldIndex, body)
        self.require(name)
        schema = request.field_schema
        if schema is None:
            raise _bad_input("Field schema is required to create a payload index")
        data_type = schema if isinstance(schema, models.PayloadSchemaType) else models.PayloadSchemaType(getattr(schema.type, "value", schema.type))
        self.indexes.setdefault(name, {})[request.field_name] = data_type
        # Local mode uses only text indexes with scoring; creating others just warns there.
        if isinstance(schema, models.TextIndexParams) and schema.scoring:
            self.local.create_payload_index(name, request.field_name, field_schema=schema)
        return self.update_result(q)

    def delete_index(self, body: Any, q: dict[str, list[str]], name: str, field: str) -> Any:
        self.require(name)
        self.indexes.get(name, {}).pop(field, None)
        return self.update_result(q)

    # -- points ----------------------------------------------------------------------------------

    def upsert(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.PointInsertOperations, body)
        self.require(name)
        # local mode takes a list of PointStruct or a Batch, not the REST wrapper
        points = request.points if isinstance(request, models.PointsList) else request.batch
        self.local.upsert(name, points=points, update_filter=request.update_filter, update_mode=request.update_mode)
        return self.update_result(q)

    def retrieve(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.PointRequest, body)
        self.require(name)
        return self.local.retrieve(
            name,
            ids=request.ids,
            with_payload=True if request.with_payload is None else request.with_payload,
            with_vectors=False if request.with_vector is None else request.with_vector,
        )

    def get_point(self, body: Any, q: dict[str, list[str]], name: str, point_id: str) -> Any:
        self.require(name)
        parsed: Any = int(point_id) if point_id.isdigit() else point_id
        records = self.local.retrieve(name, ids=[parsed], with_payload=True, with_vectors=True)
        if not records:
            raise QdrantError(404, f"Not found: No point with id {point_id} found")
        return records[0]

    def delete_points(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        selector = _parse(models.PointsSelector, body)
        self.require(name)
        self.local.delete(name, points_selector=selector)
        return self.update_result(q)

    def set_payload(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.SetPayload, body)
        self.require(name)
        self.local.set_payload(
            name, payload=request.payload, points=_selector(request.points, request.filter), key=request.key
        )
        return self.update_result(q)

    def overwrite_payload(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.SetPayload, body)
        self.require(name)
        self.local.overwrite_payload(name, payload=request.payload, points=_selector(request.points, request.filter))
        return self.update_result(q)

    def delete_payload(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.DeletePayload, body)
        self.require(name)
        self.local.delete_payload(name, keys=request.keys, points=_selector(request.points, request.filter))
        return self.update_result(q)

    def clear_payload(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        selector = _parse(models.PointsSelector, body)
        self.require(name)
        self.local.clear_payload(name, points_selector=selector)
        return self.update_result(q)

    def check_query_vector(self, name: str, query: Any, using: str | None) -> None:
        """Qdrant's dimension error for dense query vectors (local mode fails in numpy instead)."""
        vector = query.nearest if isinstance(query, models.NearestQuery) else query
        if not (isinstance(vector, list) and vector and all(isinstance(x, float) for x in vector)):
            return
        vectors = self.local.get_collection(name).config.params.vectors
        params = vectors.get(using or "") if isinstance(vectors, dict) else (None if using else vectors)
        if params is None or params.multivector_config is not None:
            return  # unknown vector names etc. are reported by local mode
        if len(vector) != params.size:
            raise _bad_input(f"Vector dimension error: expected dim: {params.size}, got {len(vector)}")

    def _query(self, name: str, request: models.QueryRequest) -> models.QueryResponse:
        if isinstance(request.query, models.OrderByQuery):
            self.require_order_by_index(name, request.query.order_by)
        self.check_query_vector(name, request.query, request.using)
        prefetches = request.prefetch if isinstance(request.prefetch, list) else [request.prefetch]
        while prefetches:
            prefetch = prefetches.pop()
            if prefetch is not None:
                self.check_query_vector(name, prefetch.query, prefetch.using)
                nested = prefetch.prefetch
                prefetches.extend(nested if isinstance(nested, list) else [nested])
        return self.local.query_points(
            name,
            query=request.query,
            using=request.using,
            prefetch=request.prefetch,
            query_filter=request.filter,
            search_params=request.params,
            limit=request.limit if request.limit is not None else 10,
            offset=request.offset,
            with_payload=False if request.with_payload is None else request.with_payload,
            with_vectors=False if request.with_vector is None else request.with_vector,
            score_threshold=request.score_threshold,
            lookup_from=request.lookup_from,
        )

    def query(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.QueryRequest, body or {})
        self.require(name)
        return self._query(name, request)

    def query_batch(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.QueryRequestBatch, body)
        self.require(name)
        return [self._query(name, r) for r in request.searches]

    def scroll(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.ScrollRequest, body or {})
        self.require(name)
        self.require_order_by_index(name, request.order_by)
        order_by = request.order_by
        if isinstance(order_by, str):
            order_by = models.OrderBy(key=order_by)
        points, next_offset = self.local.scroll(
            name,
            scroll_filter=request.filter,
            limit=request.limit if request.limit is not None else 10,
            order_by=order_by,
            offset=request.offset,
            with_payload=True if request.with_payload is None else request.with_payload,
            with_vectors=False if request.with_vector is None else request.with_vector,
        )
        return models.ScrollResult(points=points, next_page_offset=next_offset)

    def count(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.CountRequest, body or {})
        self.require(name)
        return self.local.count(name, count_filter=request.filter)

    def facet(self, body: Any, q: dict[str, list[str]], name: str) -> Any:
        request = _parse(models.FacetRequest, body)
        self.require(name)
        return self.local.facet(
            name, key=request.key, facet_filter=request.filter, limit=request.limit if request.limit is not None else 10
        )


class _Raw:
    """A response sent as is, without Qdrant's ``result`` envelope."""

    def __init__(self, value: Any, content_type: str = "application/json") -> None:
        self.value = value
        self.content_type = content_type


_C = r"(?P<name>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{pattern}$"), handler)
    for method, pattern, handler in [
        ("GET", r"/", "root"),
        ("GET", r"/(?:healthz|livez|readyz)", "health"),
        ("GET", r"/collections", "list_collections"),
        ("GET", rf"/collections/{_C}", "get_collection"),
        ("PUT", rf"/collections/{_C}", "create_collection"),
        ("DELETE", rf"/collections/{_C}", "delete_collection"),
        ("GET", rf"/collections/{_C}/exists", "collection_exists"),
        ("PUT", rf"/collections/{_C}/index", "create_index"),
        ("DELETE", rf"/collections/{_C}/index/(?P<field>[^/]+)", "delete_index"),
        ("PUT", rf"/collections/{_C}/points", "upsert"),
        ("POST", rf"/collections/{_C}/points", "retrieve"),
        ("POST", rf"/collections/{_C}/points/delete", "delete_points"),
        ("POST", rf"/collections/{_C}/points/payload", "set_payload"),
        ("PUT", rf"/collections/{_C}/points/payload", "overwrite_payload"),
        ("POST", rf"/collections/{_C}/points/payload/delete", "delete_payload"),
        ("POST", rf"/collections/{_C}/points/payload/clear", "clear_payload"),
        ("POST", rf"/collections/{_C}/points/query", "query"),
        ("POST", rf"/collections/{_C}/points/query/batch", "query_batch"),
        ("POST", rf"/collections/{_C}/points/scroll", "scroll"),
        ("POST", rf"/collections/{_C}/points/count", "count"),
        ("POST", rf"/collections/{_C}/facet", "facet"),
        # after the fixed points/* paths, which it would otherwise shadow for GET only
        ("GET", rf"/collections/{_C}/points/(?P<point_id>[^/]+)", "get_point"),
    ]
]


def _make_handler(engine: _Engine, api_key: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "qdrant-test-server"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            started = time.perf_counter()
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            query = parse_qs(parts.query)
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                self._authorize(path)
                handler, params = self._route(path)
                try:
                    body = json.loads(raw) if raw.strip() else None
                except json.JSONDecodeError as exc:
                    raise QdrantError(400, f"Format error in JSON body: {exc}") from None
                with engine.lock:
                    result = self._call(handler, body, query, params)
            except QdrantError as exc:
                self._send(exc.status, {"status": {"error": exc.message}, "time": time.perf_counter() - started})
                return
            except Exception as exc:  # a bug here or in the engine: Qdrant's 500 shape
                self._send(500, {"status": {"error": f"Service internal error: {exc!r}"}, "time": 0.0})
                return
            if isinstance(result, _Raw):
                self._send(200, result.value, result.content_type)
            else:
                self._send(200, {"result": _dump(result), "status": "ok", "time": time.perf_counter() - started})

        def _authorize(self, path: str) -> None:
            if api_key is None or path in _AUTH_FREE_PATHS:
                return
            given = self.headers.get("api-key")
            bearer = self.headers.get("Authorization", "")
            if given is None and bearer.lower().startswith("bearer "):
                given = bearer[7:]
            if given is None:
                raise QdrantError(401, "Must provide an API key or an Authorization bearer token")
            if given != api_key:
                raise QdrantError(401, "Invalid API key or JWT")

        def _route(self, path: str) -> tuple[Callable[..., Any], dict[str, str]]:
            allowed = False
            for method, pattern, name in _ROUTES:
                match = pattern.match(path)
                if match is None:
                    continue
                if method == self.command:
                    return getattr(engine, name), {k: unquote(v) for k, v in match.groupdict().items()}
                allowed = True
            if allowed:
                raise QdrantError(405, f"Method {self.command} is not allowed for {path}")
            raise QdrantError(404, f"Not found: unknown path {path}")

        @staticmethod
        def _call(handler: Callable[..., Any], body: Any, query: dict[str, list[str]], params: dict[str, str]) -> Any:
            try:
                return handler(body, query, *params.values())
            except QdrantError:
                raise
            except ValueError as exc:  # local mode reports bad input as ValueError
                message = str(exc)
                match = re.fullmatch(r"Collection (.+) not found", message)
                if match:
                    raise _not_found(match.group(1)) from None
                raise _bad_input(message) from None

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

    return Handler


class QdrantTestServer:
    """A Qdrant REST server on 127.0.0.1 in a background thread; a context manager.

    ``url`` is the address to give ``QdrantClient(url=...)``. ``stop()`` closes the listening
    socket (connections are then refused, as when the server is down); ``start()`` brings it
    back on the same port with the same data. With ``api_key`` set, every request except
    ``/`` and the health checks needs header ``api-key`` (or ``Authorization: Bearer``).
    """

    def __init__(self, api_key: str | None = None, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.host = host
        self.port = 0
        self._engine = _Engine()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> QdrantTestServer:
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer((self.host, self.port), _make_handler(self._engine, self.api_key))
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"qdrant-test-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop for good and release the engine."""
        self.stop()
        self._engine.local.close()

    def __enter__(self) -> QdrantTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
