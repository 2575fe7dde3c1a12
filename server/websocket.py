"""``/ws/threads/{thread_id}/runs``: a thread's runs streamed over a WebSocket, for browsers.

Why a bridge and not a second API: the route starts each run through the server's own REST
API, over real HTTP to the address this connection came in on (never langgraph-sdk's
in-process client, which skips authentication), with the caller's own credential, and
forwards what ``POST /threads/{thread_id}/runs/stream`` streams. So every rule of the REST
API (authentication, the owner filter, input intake, rate limits, the auth handler's 403s
and 404s) applies unchanged, on any engine that serves that API.

The protocol:

1. **Credential.** ``Authorization: Bearer <token>`` or ``X-Api-Key`` where the client can
   set headers; from a browser, which cannot, the subprotocols ``bearer, <token>``
   (``new WebSocket(url, ["bearer", token])``): the server answers with ``bearer`` and never
   echoes the token. Never the query string, which lands in access logs. The credential
   is checked on connecting (:mod:`bulwark.server.credentials`) and sent again with
   every run. With ``BULWARK_AUTH=none`` a page from another origin is refused, so a web
   site a developer visits cannot drive the local server.
2. **Runs.** Each text frame is one JSON object starting one run: ``input`` or ``command``
   (a ``resume``), optionally ``stream_mode`` (default ``["values"]``), ``assistant_id``
   (default ``agent``), ``context``, ``metadata``, ``multitask_strategy``. The server sends
   one frame per event, ``{"event": ..., "data": ...}``, then ``{"event": "end"}``; the
   next run may follow on the same socket. A frame that arrives while a run streams is
   refused; closing the socket mid-run stops streaming (the server then cancels the run,
   as for an SSE client that goes away).
3. **Close codes**, each with a short reason and never a traceback: 1008 for a missing or
   bad credential, a cross-origin page without auth, a malformed request or one frame too
   many; 1003 for a binary frame; 1009 for a frame over :data:`MAX_FRAME_CHARS`; 4000 plus
   the HTTP status when the REST API refuses a run (4404 for a thread that is not yours,
   4422 for bad input, 4429 over a rate limit); 1011 when the API cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from bulwark.server.credentials import Authenticator, CredentialError
from bulwark.settings import Settings

log = logging.getLogger("bulwark.server.websocket")

MAX_FRAME_CHARS = 1_000_000
"""Largest text frame accepted (the REST intake caps the input itself, with a 413)."""
RUN_KEYS = frozenset({"input", "command", "stream_mode", "assistant_id", "context", "metadata", "multitask_strategy"})
BEARER = "bearer"
_REASON_BYTES = 123  # the most a close frame's reason may hold
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class Closed(Exception):
    """End the connection with ``code`` and ``reason`` (safe to show the client)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _offered(ws: WebSocket) -> list[str]:
    return [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]


def _credential(ws: WebSocket) -> dict[str, str]:
    """The credential headers to forward: the ``bearer, <token>`` subprotocols as
    ``Authorization: Bearer <token>``, else the request's own credential headers."""
    offered = _offered(ws)
    if offered[:1] == [BEARER]:
        if len(offered) != 2:
            raise Closed(1008, "send the subprotocols 'bearer, <token>'")
        return {"authorization": f"Bearer {offered[1]}"}
    return {name: ws.headers[name] for name in ("authorization", "x-api-key") if name in ws.headers}


def _cross_origin(ws: WebSocket) -> bool:
    """Whether a browser page from a non-loopback origin opened this socket."""
    origin = ws.headers.get("origin")
    return origin is not None and (urlsplit(origin).hostname or "") not in _LOOPBACK_HOSTS


def _request(message: Mapping[str, Any]) -> dict[str, Any]:
    """The run a client frame asks for, or :class:`Closed`."""
    if message.get("bytes") is not None:
        raise Closed(1003, "send JSON text frames, not binary")
    text = message.get("text") or ""
    if len(text) > MAX_FRAME_CHARS:
        raise Closed(1009, f"frame longer than {MAX_FRAME_CHARS} characters")
    try:
        request = json.loads(text)
    except ValueError:
        raise Closed(1008, "a frame must be one JSON object") from None
    if not isinstance(request, dict):
        raise Closed(1008, "a frame must be one JSON object")
    if unknown := sorted(set(request) - RUN_KEYS):
        raise Closed(1008, f"unknown keys {unknown[:3]}: use {', '.join(sorted(RUN_KEYS))}")
    if ("input" in request) == ("command" in request):
        raise Closed(1008, "send either input or command")
    return request


def _api_url(ws: WebSocket) -> str:
    """The REST API at the local address this connection reached (so a server bound to
    every interface is called on the one the client used, which it certainly listens on)."""
    host, port = ws.scope["server"]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _forward(ws: WebSocket, client: LangGraphClient, thread_id: str, request: dict[str, Any]) -> None:
    """Start one run through the REST API and send each of its events as a frame."""
    body = dict(request)
    assistant = body.pop("assistant_id", "agent")
    body.setdefault("stream_mode", ["values"])
    try:
        async for part in client.runs.stream(thread_id, assistant, **body):
            if part.event != "end":  # aegra streams one of its own; the bridge sends one for all
                await ws.send_json({"event": part.event, "data": part.data})
    except httpx.HTTPStatusError as exc:
        raise Closed(4000 + exc.response.status_code, _detail(exc.response)) from None
    except httpx.TransportError as exc:
        log.warning("websocket: the REST API is unreachable: %s", type(exc).__name__)
        raise Closed(1011, "the server cannot start runs right now") from None
    await ws.send_json({"event": "end"})


def _detail(response: httpx.Response) -> str:
    """The refusal's message: langgraph-api's ``detail`` or aegra's ``message``."""
    try:
        body = response.json()
        detail = body.get("detail") or body.get("message")
    except (ValueError, AttributeError):
        detail = None
    return str(detail or response.reason_phrase or response.status_code)


async def _close(ws: WebSocket, exc: Closed) -> None:
    reason = exc.reason.encode()[:_REASON_BYTES].decode(errors="ignore")
    try:
        await ws.close(code=exc.code, reason=reason)
    except RuntimeError:  # the client has already gone
        pass


class RunSockets:
    """The WebSocket endpoint: authenticates, then bridges each run to the REST API."""

    def __init__(self, *, settings: Settings, authenticator: Authenticator) -> None:
        self.settings = settings
        self.authenticator = authenticator

    async def serve(self, ws: WebSocket) -> None:
        """Serve one connection until the client closes it or a run is refused."""
        # Accepted before any check, so that a refusal can say why in its close frame.
        await ws.accept(subprotocol=BEARER if _offered(ws)[:1] == [BEARER] else None)
        try:
            headers = _credential(ws)
            await self._authorize(ws, headers)
            api_key = headers.pop("x-api-key", None)  # the SDK sends it only as api_key
            async with get_client(url=_api_url(ws), api_key=api_key, headers=headers) as client:
                await self._serve(ws, client, ws.path_params["thread_id"])
        except Closed as exc:
            await _close(ws, exc)
        except WebSocketDisconnect:
            pass
        except Exception:  # noqa: BLE001 - the client gets a close frame, the log the details
            log.exception("websocket: run stream failed")
            await _close(ws, Closed(1011, "internal error"))

    async def _authorize(self, ws: WebSocket, headers: Mapping[str, str]) -> None:
        if self.settings.auth == "none" and _cross_origin(ws):
            raise Closed(1008, "cross-origin WebSocket refused: this server runs without authentication")
        try:
            await self.authenticator.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        except CredentialError as exc:
            raise Closed(1008, str(exc)) from None
        except jwt.PyJWKClientConnectionError:  # our key server is down: not the client's fault
            raise Closed(1011, "cannot check tokens right now: the signing keys are unreachable") from None

    async def _serve(self, ws: WebSocket, client: LangGraphClient, thread_id: str) -> None:
        receiving = asyncio.ensure_future(ws.receive())
        try:
            while True:
                message = await receiving
                if message["type"] == "websocket.disconnect":
                    return
                run = asyncio.ensure_future(_forward(ws, client, thread_id, _request(message)))
                receiving = asyncio.ensure_future(ws.receive())
                await asyncio.wait({run, receiving}, return_when=asyncio.FIRST_COMPLETED)
                if not run.done():  # the client spoke, or left, while its run streamed
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
                    if receiving.result()["type"] == "websocket.disconnect":
                        return
                    raise Closed(1008, "one run at a time: wait for its end event")
                run.result()
        finally:
            receiving.cancel()
