"""Health and readiness probes and the runs WebSocket, mounted next to the LangGraph server's API.

``langgraph.json`` names :data:`app` as ``http.app``, and ``bulwark serve`` passes the same,
so every server that runs that file serves these routes in its own process. langgraph-api
puts its auth middleware on custom routes only with ``http.enable_custom_route_auth``,
which Bulwark leaves off: ``GET /health`` and ``GET /ready`` answer without a credential
(Kubernetes probes carry none) and say nothing about any tenant. The WebSocket
``/ws/threads/{thread_id}/runs`` (:mod:`bulwark.server.websocket`) authenticates itself and
starts every run through the server's own authenticated REST API. Every other path and
method falls through to the server's own, authenticated, routes.

``GET /health`` is liveness: ``{"status": "ok"}``, no I/O.

``GET /ready`` is readiness: the three things a run needs, checked concurrently, each
within :data:`CHECK_TIMEOUT_S`:

- ``checkpointer``, the backend of ``BULWARK_CHECKPOINTER_URL``, which the server's
  checkpointer uses (``graphs/platform.py``). SQLite: the ``checkpoints`` table is looked up
  in that file on a read-only connection opened and closed by each probe; the server holds
  the one writer connection, and :func:`~bulwark.persistence.checkpoints.open_checkpointer_for`
  would open another and run its setup, which writes. Redis: ``open_checkpointer_for``,
  which pings with the server's URL, password and TLS and closes its connection after the
  ping, so nothing stays open between probes. ``memory://`` lives in this process: ok.
- ``memory``, the store :func:`~bulwark.memory.store.open_memory_store` opens, opened once
  per process (retried until it opens) and kept: opening it per probe would build an
  embedder each time (a model load for MiniLM, a request for OpenAI). An embedded Qdrant
  Edge shard is opened once per process and reference-counted, so this shares the shard the
  server opened through ``store.path``; a Qdrant server gets a client of its own. Each probe
  looks up one (absent) item by id on that engine.
- ``rails``, the input rail (the per-process instance the auth handler screens with) must
  allow a fixed harmless request.

200 ``{"status": "ready", "checks": {"checkpointer": "ok", "memory": "ok", "rails": "ok"}}``;
else 503 with ``"status": "unavailable"`` and, for each failing check, a short reason: a
timeout, the rail's verdict, or the exception's type, never its message (it may name hosts
and paths; it goes to the server log, passwords masked). A result is reused for
:data:`RESULT_TTL_S` and one probe runs at a time, so callers hammering this open path do not
reach the backends more often than that.

``GET /metrics`` is the Prometheus scrape (:mod:`bulwark.observability.metrics`), and every
HTTP request is counted and timed (``http_requests_total``, ``http_request_duration_seconds``)
by :class:`HttpMetrics`, a pure ASGI middleware on :data:`app`. langgraph-api applies this
app's middleware to the whole server (``app.user_middleware``), so it sees every route, and
it answers ``/metrics`` itself because langgraph-api's own ``/metrics`` is matched before
custom routes; the body includes langgraph-api's series too. Requests are labelled with the
route template the router matched (``/threads/{thread_id}/runs/wait``; ``other`` when none
did) and the method, never the path itself, so thread ids never become label values. Like
the probes it answers without a credential (it holds no tenant data); with
``BULWARK_METRICS_TOKEN`` set it wants ``Authorization: Bearer <token>``.

:class:`VaultRestore`, a second middleware on :data:`app`, gives a thread's owner the PII it
typed back in place of the vault's placeholders (``<EMAIL_1>``), in the responses that show
a thread: its state and history (approval requests included), ``/runs/wait`` and
``/runs/stream`` and the thread itself. What is stored, logged and sent to the model keeps
the placeholders. The tenant and user are the request's credential's (checked again here,
with the same authenticator as the server's), never what a client claims; the vault restores
only for the user who owns the thread's values, in that tenant, so anyone else, an admin
included, sees placeholders (and the server's own filter answers 404 to other users anyway).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hmac
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jwt
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bulwark.guardrails.rails import Guardrails
from bulwark.guardrails.vault import PiiVault, StreamRestorer, VaultScope, vault_for
from bulwark.memory.store import QdrantStore, open_memory_store
from bulwark.nodes.agent import SYSTEM_PROMPT
from bulwark.observability import metrics
from bulwark.persistence.checkpoints import open_checkpointer_for
from bulwark.server.credentials import Authenticator, CredentialError, authenticator
from bulwark.server.websocket import RunSockets
from bulwark.settings import Settings, load_settings

CHECK_TIMEOUT_S = 2.0
"""How long each readiness check may take before it counts as down."""
RESULT_TTL_S = 1.0
"""How long a readiness result is reused."""
PROBE_TEXT = "What is 2 + 2?"
"""The request the input rail must allow."""
PROBE_ITEM = (("readiness",), "probe")
"""The memory item (namespace, key) each probe looks up; it never exists."""
NO_STORE = {"Cache-Control": "no-store"}

log = logging.getLogger("bulwark.server.routes")  # the server loads this file as "user_router_module"
_PASSWORD = re.compile(r"//[^/?#]*@")


class NotReady(Exception):
    """A dependency answered but cannot serve; the message is safe to show anyone."""


class Readiness:
    """The readiness checks of one server process, on the dependencies ``settings`` name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rails = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
        self.checks: dict[str, Callable[[], Awaitable[None]]] = {
            "checkpointer": self._checkpointer,
            "memory": self._memory,
            "rails": self._rails,
        }
        self._store: asyncio.Task[QdrantStore] | None = None
        self._lock = asyncio.Lock()
        self._last: tuple[float, dict[str, str]] | None = None

    async def run(self) -> dict[str, str]:
        """Each check's outcome, ``"ok"`` or why not; reused for :data:`RESULT_TTL_S`."""
        async with self._lock:
            if self._last is None or time.monotonic() - self._last[0] >= RESULT_TTL_S:
                outcomes = await asyncio.gather(*(self._outcome(name, check) for name, check in self.checks.items()))
                self._last = (time.monotonic(), dict(zip(self.checks, outcomes, strict=True)))
            return self._last[1]

    async def aclose(self) -> None:
        """Release the memory store, once an open still under way has ended."""
        opening, self._store = self._store, None
        if opening is None:
            return
        try:
            store = await opening
        except Exception:  # noqa: BLE001 - it never opened: nothing to release
            return
        await asyncio.to_thread(store.close)

    async def _outcome(self, name: str, check: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            reason = f"timed out after {CHECK_TIMEOUT_S:g} s"
            log.warning("not ready: %s %s", name, reason)
            return reason
        except NotReady as exc:
            log.warning("not ready: %s: %s", name, exc)
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("not ready: %s: %s: %s", name, type(exc).__name__, _PASSWORD.sub("//***@", str(exc)))
            return f"failed ({type(exc).__name__})"
        return "ok"

    async def _checkpointer(self) -> None:
        url = self.settings.resolved_checkpointer_url
        if url.startswith("sqlite:///"):
            await asyncio.to_thread(_read_sqlite, Path(url.removeprefix("sqlite:///")))
            return
        async with open_checkpointer_for(self.settings):  # Redis: pinged on opening
            pass

    async def _memory(self) -> None:
        if self._store is None or (self._store.done() and self._store.exception() is not None):
            self._store = asyncio.create_task(asyncio.to_thread(open_memory_store, self.settings))
        # Shielded: a probe that times out leaves the open running for the next probe.
        store = await asyncio.shield(self._store)
        await asyncio.to_thread(store.get, *PROBE_ITEM)

    async def _rails(self) -> None:
        verdict = (await self.rails.acheck_input(PROBE_TEXT)).verdict
        if verdict["action"] != "allow":
            raise NotReady(f"the input rail answered {verdict['action']} ({', '.join(verdict['reasons'])})")


def _read_sqlite(path: Path) -> None:
    """Look up the checkpoints table in ``path``, read-only (``mode=ro`` creates nothing)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=CHECK_TIMEOUT_S)) as db:
        found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'").fetchone()
    if found is None:
        raise NotReady("no checkpoints table")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Pure ASGI middleware: counts and times every HTTP request, and answers ``GET /metrics``.

    Pure ASGI rather than ``BaseHTTPMiddleware``, which would move the app into another
    task. The route template is read after the app has run, from ``scope["route"]``, which
    the router sets on the same scope.

    Args:
        app: the application it wraps.
        token: the bearer token ``/metrics`` wants; ``None``: no credential.
        clock: monotonic seconds, for the durations.
    """

    def __init__(
        self, app: ASGIApp, *, token: str | None = None, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.app = app
        self.token = token
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        status = 500  # what the client gets if the app raises before answering
        app = self._scrape if scope["path"] == "/metrics" and scope["method"] in {"GET", "HEAD"} else self.app

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = "/metrics" if app is self._scrape else _route_template(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(self.clock() - started)

    async def _scrape(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is not None:
            given = Request(scope).headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                response = Response("a bearer token is required\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        # Reading the multiprocess files is file I/O: off the event loop.
        body = await asyncio.to_thread(metrics.exposition)
        await Response(body, media_type=metrics.CONTENT_TYPE, headers=NO_STORE)(scope, receive, send)


_THREAD_RESPONSES = re.compile(
    r"^/threads/(?P<thread>[^/]+)(?:/state(?:/[^/]+)?|/history|/runs/wait|/runs/stream|/runs/[^/]+/(?:join|stream))?/?$"
)
"""The paths whose responses show a thread's messages or pending approvals."""


class VaultRestore:
    """ASGI middleware: a thread's PII placeholders replaced by the owner's values in the
    responses that show the thread (:data:`_THREAD_RESPONSES`), streamed ones included.

    The body is rewritten as it passes, piece by piece (a placeholder split across two pieces
    waits for the second), each value JSON-escaped; ``Content-Length`` is dropped, since the
    values are longer or shorter than their placeholders. The vault is read only when a
    piece holds a placeholder it has not looked up yet.

    Args:
        app: the application it wraps.
        vault: the PII vault (``None``: nothing to restore, the middleware passes through).
        authenticator: the server's credential check.
    """

    def __init__(self, app: ASGIApp, *, vault: PiiVault | None, authenticator: Authenticator) -> None:
        self.app = app
        self.vault = vault
        self.authenticator = authenticator

    async def _scope(self, scope: Scope, thread: str) -> VaultScope | None:
        headers = Headers(scope=scope)
        try:
            who = await self.authenticator.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        except (CredentialError, jwt.PyJWKClientConnectionError):
            return None  # the server answers the credential itself
        return VaultScope(tenant_id=who.tenant_id, thread_id=thread, user_id=who.user_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _THREAD_RESPONSES.match(scope["path"]) if scope["type"] == "http" and self.vault else None
        owner = await self._scope(scope, found["thread"]) if found else None
        if owner is None:
            await self.app(scope, receive, send)
            return
        vault: PiiVault = self.vault  # type: ignore[assignment]
        restorer = StreamRestorer({})
        looked_up: set[str] = set()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rewriting = False

        async def send_restored(message: Message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start":
                rewriting = message["status"] == 200
                if rewriting:
                    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                    message = {**message, "headers": kept}
            elif message["type"] == "http.response.body" and rewriting:
                more = message.get("more_body", False)
                text = decoder.decode(message.get("body", b""), final=not more)
                if wanted := restorer.unknown(text) - looked_up:
                    values = await vault.avalues(owner)
                    restorer.values = {p: json.dumps(v, ensure_ascii=False)[1:-1] for p, v in values.items()}
                    looked_up.update(wanted, values)
                out = restorer.feed(text) + ("" if more else restorer.flush())
                message = {**message, "body": out.encode("utf-8")}
            await send(message)

        await self.app(scope, receive, send_restored)


def _route_template(scope: Scope) -> str:
    """The path template of the route that handled the request, or ``other``: langgraph-api's
    routes put their template in ``scope["route"]`` as a string, Starlette's the route."""
    route = scope.get("route")
    if isinstance(route, str):
        return route
    return route.path_format if isinstance(route, (Route, WebSocketRoute)) else "other"


settings = load_settings()
readiness = Readiness(settings)
_authenticator = authenticator(settings)
run_sockets = RunSockets(settings=settings, authenticator=_authenticator)


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers HTTP.
    ---
    summary: Liveness probe
    description: Answers while the process serves HTTP; no I/O, no credential needed.
    responses:
      '200':
        description: '{"status": "ok"}'
    """
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def ready(request: Request) -> JSONResponse:
    """Readiness: the checkpointer, the memory store and the rails work.
    ---
    summary: Readiness probe
    description: Checks the checkpointer, the memory store and the input rail; no credential needed.
    responses:
      '200':
        description: '{"status": "ready", "checks": {"checkpointer": "ok", "memory": "ok", "rails": "ok"}}'
      '503':
        description: '{"status": "unavailable", "checks": {...}}: each failing check with a short reason'
    """
    checks = await readiness.run()
    ok = all(outcome == "ok" for outcome in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers=NO_STORE,
    )


http_metrics = Middleware(HttpMetrics, token=settings.metrics_token.get_secret_value() if settings.metrics_token else None)
"""The metrics middleware as configured (``bulwark serve --prod`` adds it to aegra's app too)."""
vault_restore = Middleware(VaultRestore, vault=vault_for(settings), authenticator=_authenticator)
"""The PII vault's restoring middleware as configured."""


@contextlib.asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    yield
    await readiness.aclose()


app = Starlette(
    routes=[
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        WebSocketRoute("/ws/threads/{thread_id}/runs", run_sockets.serve),
    ],
    # /metrics is answered by the middleware: langgraph-api's own /metrics is matched first.
    middleware=[http_metrics, vault_restore],
    lifespan=_lifespan,
)
"""The Starlette app the server mounts (``http.app``): ``/health``, ``/ready``, the runs
WebSocket, and (its middleware, applied to the whole server) ``/metrics`` and the owner's
PII restored in thread responses."""
