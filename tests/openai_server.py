"""A scripted, local OpenAI-compatible HTTP server for tests.

Why this exists: Bulwark's ``openai:<model>`` path (``langchain_openai.ChatOpenAI`` on
top of the ``openai`` SDK) is tested against a real HTTP server on 127.0.0.1 that speaks
the same wire protocol as the OpenAI Chat Completions API, never against a mock of the
client. The real client therefore does everything it does in production: it serialises
the messages and tool schemas, parses JSON and server-sent events, retries 429/5xx with
back-off, and enforces its timeout. Tests stay offline and deterministic because the
answers are scripted.

Usage::

    with ScriptedOpenAIServer(replies=[
        Reply(tool_calls=[ToolCall("calculator", {"expression": "2+2"})]),
        Reply(content="2 + 2 is 4."),
    ]) as server:
        settings = load_settings(model="openai:gpt-test", openai_base_url=server.base_url)
        ...
        assert server.requests[0]["model"] == "gpt-test"

Each ``POST /v1/chat/completions`` consumes the next :class:`Reply` in order (a retry by
the client consumes one too). The same reply answers both a plain request (one
``chat.completion`` JSON object) and a streaming one (``"stream": true``: a series of
``chat.completion.chunk`` server-sent events ending with ``data: [DONE]``). A reply with
an error ``status`` answers with OpenAI's error body; ``delay_s`` holds the answer back
(timeouts); ``retry_after_s`` sends the ``retry-after-ms`` header the SDK honours, which
keeps retry tests fast. When the script runs out, the server answers 400 (which the SDK
does not retry) with a message saying so. ``ScriptedOpenAIServer(delay_s=...)`` holds back
every completion on top of its reply's own delay (a slow model), and ``max_in_flight``
records the most completion requests the server was answering at once (concurrency tests).
``ScriptedOpenAIServer(respond=fn)`` answers every completion with ``fn(body)`` instead of
the script: one server then plays several models at once (``body["model"]`` names the one
asked: one failing with 500s, one slow, one healthy; or models of scripted quality).

``POST /v1/embeddings`` is not scripted: it answers every request with deterministic
vectors from :class:`~bulwark.memory.embeddings.HashingEmbeddings` (1536 dimensions, or the
request's ``dimensions``), as floats or, when the client asks for ``"encoding_format":
"base64"`` (the ``openai`` SDK's default), as base64 little-endian float32. Its bodies are
recorded in ``embedding_requests``.

Extending: add a field to :class:`Reply` and use it in ``_respond``/``_completion``/
``_chunks``; everything a test may want to assert about the client is recorded in
``requests`` (bodies) and ``request_headers``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import numpy as np
from bulwark.memory.embeddings import HashingEmbeddings

__all__ = ["Reply", "ScriptedOpenAIServer", "ToolCall"]

COMPLETIONS_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
EMBEDDING_DIMS = 1536  # text-embedding-3-small's size, used when a request names none

# OpenAI's error ``type``/``code`` for the statuses tests are likely to script.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}


@dataclass(frozen=True)
class ToolCall:
    """One tool call the scripted model makes.

    Args:
        name: the function name, as in the tool schema the client sent.
        args: the arguments; sent as a JSON string, like OpenAI does.
        id: the call id; defaults to ``call_<request number>_<index>``.
        raw_arguments: send this exact ``arguments`` string instead of ``json.dumps(args)``
            (for malformed-arguments tests).
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    raw_arguments: str | None = None

    @property
    def arguments(self) -> str:
        """The ``function.arguments`` string put on the wire."""
        if self.raw_arguments is not None:
            return self.raw_arguments
        return json.dumps(self.args)


@dataclass(frozen=True)
class Reply:
    """One scripted answer to one ``POST /v1/chat/completions``.

    Args:
        content: the assistant text (``None`` for a pure tool-call turn).
        tool_calls: tool calls the assistant makes.
        finish_reason: defaults to ``tool_calls`` when there are tool calls, else ``stop``.
        status: HTTP status; anything but 200 answers with an OpenAI error body.
        error_message: the error's ``message`` (a default names the status).
        error_type: the error's ``type`` (default chosen from the status).
        error_code: the error's ``code`` (default chosen from the status).
        retry_after_s: send ``retry-after-ms`` so the SDK waits this long before retrying.
        delay_s: wait this long before answering (timeout tests).
        prompt_tokens: reported in ``usage``.
        completion_tokens: reported in ``usage``.
        headers: extra response headers.
    """

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: str | None = None
    status: int = 200
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after_s: float | None = None
    delay_s: float = 0.0
    prompt_tokens: int = 11
    completion_tokens: int = 7
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.status != 200

    @property
    def resolved_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def error_body(self) -> dict[str, Any]:
        """OpenAI's error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
        kind, code = _ERROR_KINDS.get(
            self.status, ("server_error" if self.status >= 500 else "invalid_request_error", None)
        )
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = ""
        return {
            "error": {
                "message": self.error_message or f"scripted error {self.status} {phrase}".strip(),
                "type": self.error_type or kind,
                "param": None,
                "code": self.error_code if self.error_code is not None else code,
            }
        }

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def split_text(text: str) -> list[str]:
    """Split ``text`` into word-sized stream deltas whose concatenation is ``text``."""
    return re.findall(r"\s*\S+|\s+", text) or [text]


class ScriptedOpenAIServer:
    """A local OpenAI-compatible server answering with scripted replies, in order.

    Use as a context manager; ``base_url`` (``http://127.0.0.1:PORT/v1``) is what goes in
    ``openai_base_url``. Attributes:

    * ``requests``: every JSON body received on the completions endpoint, in order.
    * ``request_headers``: the matching request headers (lower-cased names).
    * ``embedding_requests``: every JSON body received on the embeddings endpoint.
    * ``remaining``: how many scripted replies are left.
    * ``in_flight`` / ``max_in_flight``: completion requests being answered now / at most
      at once since the server started.

    Args:
        replies: the script.
        delay_s: seconds every completion request waits before its reply (and its reply's
            own ``delay_s``) is sent.
        respond: answers each completion request's body instead of the script.
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        delay_s: float = 0.0,
        respond: Callable[[dict[str, Any]], Reply] | None = None,
    ) -> None:
        self._replies: deque[Reply] = deque(replies)
        self.respond = respond
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        handler = type("_BoundHandler", (_Handler,), {"scripted": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-openai-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes handlers sleeping in ``delay_s``
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- script ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started: use `with ScriptedOpenAIServer(...)`")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._replies)

    def add(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._replies.extend(replies)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Reply | None]:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            number = len(self.requests)
            if self.respond is not None:
                return number, self.respond(body)
            return number, (self._replies.popleft() if self._replies else None)

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """Count one completion request as in flight while the block runs."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is closing; True if the server is closing."""
        return self._closing.wait(seconds) if seconds > 0 else self._closing.is_set()


class _Server(ThreadingHTTPServer):
    # The default backlog (5) makes many simultaneous clients wait for a SYN retry.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    scripted: ScriptedOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path not in (COMPLETIONS_PATH, EMBEDDINGS_PATH):
            self._send_json(
                404,
                _error(
                    f"ScriptedOpenAIServer serves only {COMPLETIONS_PATH} and "
                    f"{EMBEDDINGS_PATH}, not {self.path}",
                    "invalid_request_error",
                ),
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._send_json(
                400, _error(f"request body is not JSON: {exc}", "invalid_request_error")
            )
            return
        if path == EMBEDDINGS_PATH:
            with self.scripted._lock:
                self.scripted.embedding_requests.append(body)
            self._send_embeddings(body)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.scripted._answering():
            self._complete(body, headers)

    def _complete(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        number, reply = self.scripted._record(body, headers)
        if reply is None:
            self._send_json(
                400,
                _error(
                    f"ScriptedOpenAIServer: no scripted reply left for request #{number}",
                    "invalid_request_error",
                    code="script_exhausted",
                ),
            )
            return
        try:
            self._respond(reply, body, number)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer

    def do_GET(self) -> None:
        self._send_json(
            404, _error(f"ScriptedOpenAIServer: no GET {self.path}", "invalid_request_error")
        )

    # -- responses -------------------------------------------------------------------

    def _respond(self, reply: Reply, body: dict[str, Any], number: int) -> None:
        if self.scripted._sleep(self.scripted.delay_s + reply.delay_s):
            return
        extra = dict(reply.headers)
        if reply.retry_after_s is not None:
            extra["retry-after-ms"] = str(int(reply.retry_after_s * 1000))
        if reply.is_error:
            self._send_json(reply.status, reply.error_body(), extra)
            return
        model = str(body.get("model", "unknown"))
        completion_id = f"chatcmpl-scripted-{number}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._send_stream(_chunks(reply, model, completion_id, number, include_usage), extra)
        else:
            self._send_json(200, _completion(reply, model, completion_id, number), extra)

    def _send_embeddings(self, body: dict[str, Any]) -> None:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._send_json(
                400,
                _error(
                    "ScriptedOpenAIServer embeds only a string or a list of strings "
                    "(token arrays are not supported)",
                    "invalid_request_error",
                ),
            )
            return
        self._send_json(200, _embeddings(texts, body))

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_scripted_{len(self.scripted.requests)}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, events: Iterator[dict[str, Any]], headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        for event in events:
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")  # end of chunked body
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _embeddings(texts: list[str], body: dict[str, Any]) -> dict[str, Any]:
    """A ``CreateEmbeddingResponse`` with deterministic vectors for ``texts``."""
    dims = int(body.get("dimensions") or EMBEDDING_DIMS)
    vectors = HashingEmbeddings(dims=dims).embed_documents(texts)
    as_base64 = body.get("encoding_format") == "base64"
    tokens = sum(len(text.split()) for text in texts)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": (
                    base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                    if as_base64
                    else vector
                ),
            }
            for i, vector in enumerate(vectors)
        ],
        "model": str(body.get("model", "unknown")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _tool_call_id(call: ToolCall, number: int, index: int) -> str:
    return call.id or f"call_{number}_{index}"


def _completion(reply: Reply, model: str, completion_id: str, number: int) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _tool_call_id(call, number, i),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.resolved_finish_reason,
            }
        ],
        "usage": reply.usage(),
        "service_tier": "default",
        "system_fingerprint": "fp_scripted",
    }


def _chunks(
    reply: Reply, model: str, completion_id: str, number: int, include_usage: bool
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer, in order."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_scripted",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            event["usage"] = None
        return event

    yield chunk(
        {
            "role": "assistant",
            "content": "" if reply.content is not None else None,
            "refusal": None,
        }
    )
    if reply.content:
        for piece in split_text(reply.content):
            yield chunk({"content": piece})
    for i, call in enumerate(reply.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": _tool_call_id(call, number, i),
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        args = call.arguments
        step = max(1, len(args) // 3 + 1)  # arguments arrive in a few fragments
        for start in range(0, len(args), step):
            yield chunk(
                {
                    "tool_calls": [
                        {"index": i, "function": {"arguments": args[start : start + step]}}
                    ]
                }
            )
    yield chunk({}, reply.resolved_finish_reason)
    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_scripted",
            "choices": [],
            "usage": reply.usage(),
        }
