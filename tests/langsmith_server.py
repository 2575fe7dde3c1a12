"""A local HTTP server speaking the LangSmith REST protocol the ``langsmith`` SDK uses, for tests.

Why this exists: Bulwark's tracing and its LangSmith datasets and experiments are tested
against a real HTTP server on 127.0.0.1, not against a mock of the client, so the real
``langsmith.Client`` does everything it does against LangSmith: it reads ``/info`` to
choose how to ingest, batches runs on its background thread, sends them as multipart
form data (zstd-compressed when ``/info`` allows it, as LangSmith's does), anonymizes and
samples them on the way, and pages through datasets and examples. Nothing leaves the
machine, and there is no LangSmith to talk to offline anyway.

Usage::

    with LangSmithServer() as server:
        client = langsmith.Client(api_url=server.url, api_key="test")
        ...
        client.flush()
        roots = [run for run in server.runs.values() if run["parent_run_id"] is None]

What it speaks (what the SDK's tracing and ``evaluate`` call; JSON unless said):

* ``GET /info``: the ingest config (multipart, zstd when ``compression``);
* runs: ``POST /runs/multipart`` (parts ``post.<id>``, ``patch.<id>``, ``post.<id>.inputs``,
  ``.outputs``, ``.extra``, ``.events``, ``.error``, ``.serialized``, ``feedback.<id>``;
  ``Content-Encoding: zstd`` or ``gzip``), ``POST /runs/batch`` (``{"post": [...],
  "patch": [...]}``), ``POST /runs``, ``PATCH /runs/<id>``, ``GET /runs/<id>``;
* projects (``/sessions``): create, read by id, list (``name``, ``reference_dataset``),
  update; a run naming an unknown ``session_name`` creates that project, as LangSmith does;
* datasets: create (409 on a taken name), read by id, list (``name``, ``id``), update,
  ``/datasets/<id>/versions``, ``/datasets/<id>/version``;
* examples: ``POST /examples/bulk`` (create; 409 on a taken id, as LangSmith does),
  ``PATCH /examples/bulk`` (update), ``POST /examples``, ``GET /examples`` (``dataset``,
  ``id``, ``offset``, ``limit``), ``GET``/``PATCH``/``DELETE /examples/<id>``;
* feedback: ``POST /feedback``, ``GET /feedback`` (``run``, ``session``), multipart parts.

Everything is recorded: ``runs`` (each run's post and patches merged by id), ``projects``,
``datasets``, ``examples``, ``feedback``, ``requests`` (method and path of each request)
and ``bodies`` (every request body, decompressed), so a test can grep all that arrived.
An unknown path answers 404 and is recorded in ``unknown``.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import zstandard

__all__ = ["LangSmithServer"]

TENANT_ID = "00000000-0000-4000-8000-000000000001"
_RUN_PART = re.compile(r"^(post|patch)\.([0-9a-f-]{36})(?:\.(\w+))?$")
_FEEDBACK_PART = re.compile(r"^feedback\.([0-9a-f-]{36})$")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class _Conflict(Exception):
    """Answered with 409, as LangSmith answers a name or id that is taken."""


class _NotFound(Exception):
    """Answered with 404."""


class LangSmithServer:
    """A LangSmith-protocol server on 127.0.0.1, recording what arrives; a context manager.

    Args:
        compression: advertise zstd-compressed multipart ingest in ``/info`` (the SDK's
            default against LangSmith); ``False`` makes the SDK send plain multipart.
    """

    def __init__(self, *, compression: bool = True) -> None:
        self.compression = compression
        self.runs: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []
        self.unknown: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: what ``LANGSMITH_ENDPOINT`` / ``api_url`` takes."""
        assert self._http is not None, "the server is not running"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> Self:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="langsmith-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._http is not None and self._thread is not None
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def clear(self) -> None:
        """Forget everything recorded (a module-scoped server shared by several tests)."""
        with self._lock:
            for store in (self.runs, self.projects, self.datasets, self.examples, self.feedback):
                store.clear()
            self.requests.clear()
            self.bodies.clear()
            self.unknown.clear()

    # -- queries for tests ---------------------------------------------------------------

    def received(self) -> str:
        """Every request body received so far, decompressed, as one text (for greps)."""
        with self._lock:
            return "\n".join(body.decode("utf-8", "replace") for body in self.bodies)

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """The runs whose parent is ``run_id``, in start order."""
        with self._lock:
            found = [run for run in self.runs.values() if run.get("parent_run_id") == run_id]
        return sorted(found, key=lambda run: run.get("dotted_order") or "")

    def project_named(self, name: str) -> dict[str, Any] | None:
        """The project (``/sessions``) called ``name``."""
        with self._lock:
            return next((p for p in self.projects.values() if p["name"] == name), None)

    # -- runs ----------------------------------------------------------------------------

    def _post_run(self, run: dict[str, Any]) -> None:
        run_id = str(run["id"])
        merged = self.runs.setdefault(run_id, {"id": run_id, "parent_run_id": None})
        merged.update({key: value for key, value in run.items() if value is not None})
        if (name := run.get("session_name")) and not any(p["name"] == name for p in self.projects.values()):
            self._create_project({"name": name})

    def _patch_run(self, run_id: str, update: dict[str, Any]) -> None:
        merged = self.runs.setdefault(run_id, {"id": run_id, "parent_run_id": None})
        for key, value in update.items():
            if value is None:
                continue
            if key == "extra" and isinstance(merged.get("extra"), dict):
                extra = {**merged["extra"], **value}
                extra["metadata"] = {**merged["extra"].get("metadata", {}), **value.get("metadata", {})}
                merged["extra"] = extra
            else:
                merged[key] = value

    def _multipart(self, content_type: str, body: bytes) -> None:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        runs: dict[tuple[str, str], dict[str, Any]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = json.loads(part.get_payload(decode=True))
            if (match := _RUN_PART.match(name or "")) is not None:
                operation, run_id, field = match.groups()
                fields = runs.setdefault((operation, run_id), {})
                if field is None:
                    fields.update(data)
                else:
                    fields[field] = data
            elif _FEEDBACK_PART.match(name or "") is not None:
                self._create_feedback(data)
            elif not (name or "").startswith("attachment."):
                raise ValueError(f"unexpected multipart part {name!r}")
        for (operation, run_id), fields in runs.items():
            if operation == "post":
                self._post_run({**fields, "id": run_id})
            else:
                self._patch_run(run_id, fields)

    # -- projects, datasets, examples, feedback ----------------------------------------------

    def _create_project(self, body: dict[str, Any]) -> dict[str, Any]:
        if any(p["name"] == body.get("name") for p in self.projects.values()):
            raise _Conflict(f"project {body.get('name')!r} exists")
        project = {
            "id": str(body.get("id") or uuid.uuid4()),
            "name": body.get("name"),
            "description": body.get("description"),
            "extra": body.get("extra"),
            "reference_dataset_id": body.get("reference_dataset_id"),
            "start_time": body.get("start_time") or _now(),
            "end_time": body.get("end_time"),
            "tenant_id": TENANT_ID,
        }
        self.projects[project["id"]] = project
        return project

    def _create_dataset(self, body: dict[str, Any]) -> dict[str, Any]:
        if any(d["name"] == body.get("name") for d in self.datasets.values()):
            raise _Conflict(f"dataset {body.get('name')!r} exists")
        dataset = {
            "id": str(body.get("id") or uuid.uuid4()),
            "name": body["name"],
            "description": body.get("description"),
            "data_type": body.get("data_type") or "kv",
            "metadata": body.get("extra", {}).get("metadata") if body.get("extra") else body.get("metadata"),
            "created_at": _now(),
            "modified_at": _now(),
            "tenant_id": TENANT_ID,
        }
        self.datasets[dataset["id"]] = dataset
        return dataset

    def _dataset_view(self, dataset: dict[str, Any]) -> dict[str, Any]:
        count = sum(1 for e in self.examples.values() if e["dataset_id"] == dataset["id"])
        sessions = sum(1 for p in self.projects.values() if p["reference_dataset_id"] == dataset["id"])
        return {**dataset, "example_count": count, "session_count": sessions}

    def _create_example(self, body: dict[str, Any]) -> dict[str, Any]:
        example_id = str(body.get("id") or uuid.uuid4())
        if example_id in self.examples:
            raise _Conflict(f"example {example_id} exists")
        if str(body.get("dataset_id")) not in self.datasets:
            raise _NotFound(f"dataset {body.get('dataset_id')} not found")
        example = {
            "id": example_id,
            "dataset_id": str(body["dataset_id"]),
            "inputs": body.get("inputs") or {},
            "outputs": body.get("outputs"),
            "metadata": body.get("metadata"),
            "split": body.get("split"),
            "source_run_id": body.get("source_run_id"),
            "created_at": body.get("created_at") or _now(),
            "modified_at": _now(),
        }
        self.examples[example_id] = example
        return example

    def _update_example(self, example_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if example_id not in self.examples:
            raise _NotFound(f"example {example_id} not found")
        example = self.examples[example_id]
        for key in ("inputs", "outputs", "metadata", "split", "dataset_id"):
            if body.get(key) is not None:
                example[key] = body[key] if key != "dataset_id" else str(body[key])
        example["modified_at"] = _now()
        return example

    def _create_feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        feedback = {
            **body,
            "id": str(body.get("id") or uuid.uuid4()),
            "created_at": body.get("created_at") or _now(),
            "modified_at": _now(),
        }
        self.feedback[feedback["id"]] = feedback
        return feedback

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        """Answer one request: ``(status, JSON-able body)``."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        encoding = headers.get("content-encoding", "")
        if encoding == "zstd":
            body = zstandard.ZstdDecompressor().stream_reader(body).read()
        elif encoding == "gzip":
            body = gzip.decompress(body)
        with self._lock:
            self.requests.append((method, path))
            if body:
                self.bodies.append(body)
            try:
                return self._route(method, path, query, headers.get("content-type", ""), body)
            except _Conflict as exc:
                return 409, {"detail": str(exc)}
            except _NotFound as exc:
                return 404, {"detail": str(exc)}

    def _route(self, method: str, path: str, query: dict[str, list[str]], content_type: str, body: bytes) -> tuple[int, Any]:
        data: Any = json.loads(body) if body and content_type.startswith("application/json") else None
        one = {key: values[0] for key, values in query.items()}
        segments = path.strip("/").split("/")
        routes: dict[tuple[str, str], Callable[[], tuple[int, Any]]] = {
            ("GET", "/info"): lambda: (200, self._info()),
            ("POST", "/runs/multipart"): lambda: (self._multipart(content_type, body), (202, {}))[1],
            ("POST", "/runs/batch"): lambda: (self._batch(data), (202, {}))[1],
            ("POST", "/runs"): lambda: (self._post_run(data), (202, {}))[1],
            ("POST", "/sessions"): lambda: (200, self._create_project(data)),
            ("GET", "/sessions"): lambda: (200, self._list_projects(one)),
            ("POST", "/datasets"): lambda: (200, self._create_dataset(data)),
            ("GET", "/datasets"): lambda: (200, self._list_datasets(query, one)),
            ("POST", "/examples/bulk"): lambda: (200, [self._create_example(e) for e in data]),
            ("PATCH", "/examples/bulk"): lambda: (200, [self._update_example(str(e["id"]), e) for e in data]),
            ("POST", "/examples"): lambda: (200, self._create_example(data)),
            ("GET", "/examples"): lambda: (200, self._list_examples(query, one)),
            ("POST", "/feedback"): lambda: (200, self._create_feedback(data)),
            ("GET", "/feedback"): lambda: (200, self._list_feedback(query)),
        }
        if (method, path) in routes:
            return routes[(method, path)]()
        if len(segments) >= 2:
            kind, item = segments[0], segments[1]
            rest = "/".join(segments[2:])
            store = {"runs": self.runs, "sessions": self.projects, "datasets": self.datasets,
                     "examples": self.examples, "feedback": self.feedback}.get(kind)
            if store is not None and not rest:
                if method == "PATCH" and kind == "runs":
                    self._patch_run(item, data)
                    return 202, {}
                if item not in store:
                    return 404, {"detail": f"{kind[:-1]} {item} not found"}
                if method == "GET":
                    return 200, self._dataset_view(store[item]) if kind == "datasets" else store[item]
                if method == "PATCH":
                    if kind == "examples":
                        return 200, self._update_example(item, data)
                    store[item].update({k: v for k, v in data.items() if v is not None})
                    return 200, store[item]
                if method == "DELETE":
                    del store[item]
                    return 200, {}
            if kind == "datasets" and item in self.datasets and method == "GET" and rest in ("versions", "version"):
                version = {"as_of": self.datasets[item]["modified_at"], "tags": ["latest"]}
                return 200, [version] if rest == "versions" else version
        self.unknown.append((method, path))
        return 404, {"detail": f"no route {method} {path}"}

    def _info(self) -> dict[str, Any]:
        return {
            "version": "0.12.0",
            "instance_flags": {
                "zstd_compression_enabled": self.compression,
                "dataset_examples_multipart_enabled": False,
            },
            "batch_ingest_config": {
                "use_multipart_endpoint": True,
                "scale_up_qsize_trigger": 1000,
                "scale_up_nthreads_limit": 1,
                "scale_down_nempty_trigger": 4,
                "size_limit": 100,
                "size_limit_bytes": 20_971_520,
            },
        }

    def _batch(self, data: dict[str, list[dict[str, Any]]]) -> None:
        for run in data.get("post") or []:
            self._post_run(run)
        for run in data.get("patch") or []:
            self._patch_run(str(run["id"]), run)

    def _list_projects(self, one: dict[str, str]) -> list[dict[str, Any]]:
        found = list(self.projects.values())
        if "name" in one:
            found = [p for p in found if p["name"] == one["name"]]
        if "reference_dataset" in one:
            found = [p for p in found if p["reference_dataset_id"] == one["reference_dataset"]]
        return _page(found, one)

    def _list_datasets(self, query: dict[str, list[str]], one: dict[str, str]) -> list[dict[str, Any]]:
        found = list(self.datasets.values())
        if "name" in one:
            found = [d for d in found if d["name"] == one["name"]]
        if "id" in query:
            found = [d for d in found if d["id"] in query["id"]]
        return _page([self._dataset_view(d) for d in found], one)

    def _list_examples(self, query: dict[str, list[str]], one: dict[str, str]) -> list[dict[str, Any]]:
        found = sorted(self.examples.values(), key=lambda e: (e["created_at"], e["id"]))
        if "dataset" in one:
            found = [e for e in found if e["dataset_id"] == one["dataset"]]
        if "id" in query:
            found = [e for e in found if e["id"] in query["id"]]
        return _page(found, one)

    def _list_feedback(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        found = list(self.feedback.values())
        if "run" in query:
            found = [f for f in found if str(f.get("run_id")) in query["run"]]
        if "session" in query:
            found = [f for f in found if str(f.get("session_id")) in query["session"]]
        return found


def _page(items: list[dict[str, Any]], one: dict[str, str]) -> list[dict[str, Any]]:
    offset = int(one.get("offset", 0))
    limit = int(one.get("limit", 100))
    return items[offset : offset + limit]


def _handler(server: LangSmithServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            try:
                status, answer = server.handle(self.command, self.path, headers, body)
            except Exception as exc:  # noqa: BLE001 - a malformed request is the client's bug: say so
                status, answer = 400, {"detail": f"{type(exc).__name__}: {exc}"}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            pass

    return Handler
