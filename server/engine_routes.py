"""The HTTP app the production engine mounts (``bulwark serve --prod``, ``http.app``).

aegra takes ``http.app`` only as a FastAPI application, and adds its own API to that app;
the probes of :mod:`bulwark.server.routes` are a Starlette app (what langgraph-api takes).
This app serves those same routes, with their lifespan, from a FastAPI instance, plus
``GET /ok``: the liveness path langgraph-api has built in and aegra has not, so clients and
probes written for ``langgraph dev`` work unchanged. Bulwark's ``/health`` and ``/ready``
come first, so they answer rather than aegra's routes of the same paths. ``redirect_slashes``
is off: aegra's API is added to this router, and ``GET /health/`` must be a 404 as on
langgraph-api, not a redirect to an open path.

**Intake.** langgraph-api stores a run as the auth handler left it: the input screened and
redacted, the context taken from the credential (:mod:`bulwark.server.auth`). aegra calls
the same handlers on a copy of the request and stores the request as the client sent it,
raw input included. So :class:`Intake` runs the handler's preparation
(``prepare_run``: validation, context from the identity, input rail, resume commands,
webhooks) on the JSON body of every request that creates a run or a cron, before aegra reads
it; a refusal is answered there with the handler's status (401 is left to aegra's own
authentication). The handlers then run again inside aegra on the prepared body: they screen
the input a second time (its result is dropped), take the run's rate-limit token, and still
refuse what they refuse.

**Readiness.** ``/ready`` checks what this engine depends on: the checkpointer URL (Redis:
the effect journal and rate limits), the rails, and Postgres (``DATABASE_URL``), where aegra
keeps threads, runs, checkpoints and the store with the agent's memories; the embedded
memory store of ``bulwark serve`` is not used here, so it is not checked.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import jwt
from fastapi import FastAPI
from langgraph_sdk import Auth
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bulwark.server import auth, routes
from bulwark.server.credentials import CredentialError

RUN_CREATE = re.compile(r"^/(?:threads/([^/]+)/)?runs(/stream|/wait|/crons)?$")
"""POST paths that create a run or a cron (thread-bound or not)."""
CRON_UPDATE = re.compile(r"^/runs/crons/[^/]+$")
"""PATCH path that changes a cron's payload."""


async def database_ready() -> None:
    """Postgres answers a query (one short-lived connection)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"], connect_timeout=2) as conn:
        await conn.execute("SELECT 1")


routes.readiness.checks = {
    "checkpointer": routes.readiness.checks["checkpointer"],
    "database": database_ready,
    "rails": routes.readiness.checks["rails"],
}


async def ok(request: Request) -> JSONResponse:
    """Liveness as langgraph-api answers it: ``{"ok": true}``, no I/O, no credential."""
    return JSONResponse({"ok": True})


async def prepare(
    body: dict[str, Any], headers: Mapping[str, str], *, cron: bool, creating: bool, thread_id: str | None = None
) -> dict[str, Any]:
    """``body`` as Bulwark's auth handler prepares a new run's or cron's fields (or a cron's
    changed ones: not ``creating``), for the credential in ``headers``; unchanged when that
    credential is not valid or cannot be checked now (the engine then answers it). The PII
    of a run on ``thread_id`` goes into the vault under that thread.

    Raises:
        Auth.exceptions.HTTPException: the handler's refusal (403, 413, 422).
    """
    try:
        who = await auth.authn.authenticate(auth.header(headers, "authorization"), auth.header(headers, "x-api-key"))
    except (CredentialError, jwt.PyJWKClientConnectionError):
        return body
    if creating:
        auth.stamp_owner(body, who)  # the run's (or cron's) own metadata: its owner
    context = body.get("context")
    if context is None:
        context = body["context"] = {}
    if isinstance(context, dict):  # the handler refuses any other context
        # aegra has no run id yet: the request id ties the input's screening to its turn.
        context.setdefault("request_id", auth.header_request_id(headers) or str(uuid.uuid4()))
    await auth.prepare_run(
        body, who, run_id=None, metadata=body.get("metadata") or {}, context_given=True, cron=cron,
        thread_id=thread_id,
    )
    return body


class Intake:
    """ASGI middleware: :func:`prepare` on the JSON body of run- and cron-creating requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, thread_id = _which(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        raw = await _read(receive)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            try:
                prepared = await prepare(
                    body, _headers(scope), cron=kind != "run", creating=kind != "cron update", thread_id=thread_id
                )
                raw = json.dumps(prepared).encode()
            except Auth.exceptions.HTTPException as exc:
                response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
                await response(scope, receive, send)
                return
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        # In place: the route the app matches is recorded in this scope, which HttpMetrics reads.
        scope["headers"] = [*headers, (b"content-length", str(len(raw)).encode())]
        await self.app(scope, _replay(raw, receive), send)


def _which(scope: Scope) -> tuple[Literal["run", "cron", "cron update"] | None, str | None]:
    """What the request does, if it creates a run or a cron or changes a cron (else None),
    and the thread in its path."""
    if scope["type"] != "http":
        return None, None
    method, path = scope["method"], scope["path"]
    if method == "POST" and (match := RUN_CREATE.match(path)):
        return "cron" if match.group(2) == "/crons" else "run", match.group(1)
    if method == "PATCH" and CRON_UPDATE.match(path):
        return "cron update", None
    return None, None


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the client sends (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


app = FastAPI(
    title="Bulwark",
    routes=[*routes.app.routes, Route("/ok", ok, methods=["GET"])],
    lifespan=routes.app.router.lifespan_context,
    redirect_slashes=False,
)
"""The FastAPI app aegra mounts: ``/health``, ``/ready`` (server/routes.py) and ``/ok``,
with :class:`Intake` in front of aegra's API, the PII vault's restoring middleware
(:class:`~bulwark.server.routes.VaultRestore`: the owner's values in thread responses) around
it, and :class:`~bulwark.server.routes.HttpMetrics` (``/metrics``, HTTP series) in front of
everything."""
app.add_middleware(Intake)
app.add_middleware(routes.vault_restore.cls, *routes.vault_restore.args, **routes.vault_restore.kwargs)
app.add_middleware(routes.http_metrics.cls, *routes.http_metrics.args, **routes.http_metrics.kwargs)  # outermost
