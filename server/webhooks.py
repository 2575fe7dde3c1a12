"""Run-completion webhooks: checked at intake, signed, retried, and sent by Bulwark itself.

Why Bulwark sends them and not the engine: langgraph-api (0.16.7) does POST a run's
``webhook`` when the run ends (``langgraph_api/webhook.py``), with a URL policy
(``webhooks.url`` in langgraph.json: loopback refused, DNS checked) and optional static
headers, but it does not sign (a static header is the same shared secret on every call,
proving nothing about the body or when it was sent), makes one attempt (a failure is only
logged), and sends the whole run record and the thread's final ``values``, the conversation.
aegra drops the field. So the auth handler takes ``webhook`` out of every run before the
engine stores it (the engine never sends an unsigned call) and records it, checked, in the
run's ``config.configurable`` under :data:`CONFIG_KEY`, the one place both engines carry
into the graph; the graph's last node then calls :meth:`WebhookSender.notify`.

The record is bound to the run's ``request_id`` (its runtime context, which no later run
inherits) and sealed with an HMAC under ``BULWARK_WEBHOOK_SECRET``: an engine may carry a
thread's stored config into its later runs (langgraph-api's in-memory runtime merges the
thread's ``configurable`` into each new run's), and a client may write that key into its
own config; neither record is honoured, and the handler replaces both with ``None``.

Security choices:

* **Who and where.** Webhooks need the ``admin`` scope (the auth handler). The URL must be
  ``http``/``https``, at most :data:`MAX_URL_CHARS` characters, without ``user:password@``
  (credentials would be stored with the run). By default only public addresses are
  reached: a literal address or ``localhost`` is refused at intake (422), and at delivery
  the host is resolved and refused if *any* address is not public (the checks of
  :mod:`bulwark.tools.http_fetch`), then the connection goes to the vetted address itself,
  never to the name again, so DNS rebinding cannot swap in an internal one; the ``Host``
  header and TLS SNI carry the real name. ``BULWARK_WEBHOOK_ALLOW_PRIVATE=true`` lets
  loopback and private networks through (development, receivers inside the cluster);
  link-local (the cloud metadata service), multicast and unspecified stay refused.
  Redirects are not followed.
* **What.** The body is ``{"run_id", "thread_id", "status", "finished_at"}``: no message
  text, so no PII; the receiver reads the thread with its own credential if it needs more.
* **Proof.** ``X-Bulwark-Timestamp`` is the Unix time of the attempt and
  ``X-Bulwark-Signature`` is ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
  ``BULWARK_WEBHOOK_SECRET``; :func:`verify_signature` checks both for receivers, with a
  tolerance against replays. Each attempt is signed afresh.
* **Retries.** Connection errors, timeouts, 408, 429 and 5xx are retried with exponential
  backoff (tenacity; 1, 2, 4 ... s, at most 60 s) up to ``BULWARK_WEBHOOK_ATTEMPTS``
  attempts; other answers are final. A receiver may see a run twice (an answer lost on the
  way back): ``run_id`` is the idempotency key.
* **Never in the way.** :meth:`WebhookSender.notify` only schedules a task on the running
  loop and returns: the run finishes without waiting, and a failed delivery is logged
  (host only: a URL path may carry a token), never raised into the run. Deliveries still
  pending when the process stops are lost (there is no durable outbox).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bulwark.settings import Settings
from bulwark.tools.http_fetch import (
    DEFAULT_BLOCKED_NETWORKS,
    DEFAULT_REFUSED,
    AddressCategory,
    IPAddress,
    Resolver,
    address_problem,
    resolve_host,
)

log = logging.getLogger(__name__)

CONFIG_KEY: Final = "__bulwark_webhook__"
"""Where a run's webhook travels: ``config.configurable[CONFIG_KEY]`` is ``{"url", "request_id",
"seal"}`` or ``None``. Double underscores: LangGraph never copies it into trace or stream metadata."""
MAX_URL_CHARS: Final = 2048
SIGNATURE_HEADER: Final = "X-Bulwark-Signature"
TIMESTAMP_HEADER: Final = "X-Bulwark-Timestamp"
USER_AGENT: Final = "bulwark-webhooks/0.1"
PRIVATE_ALLOWED: Final[frozenset[AddressCategory]] = frozenset({"unspecified", "link_local", "multicast"})
"""What is still refused with ``BULWARK_WEBHOOK_ALLOW_PRIVATE=true``."""
_PORTS: Final = {"http": 80, "https": 443}
_RETRIED_STATUSES: Final = frozenset({408, 429})


class WebhookError(ValueError):
    """A webhook URL that is refused; the message is safe to show the client."""


class WebhookFailed(Exception):
    """A delivery that did not succeed; the message names the host, never the full URL."""


class _Transient(Exception):
    """An attempt worth repeating (connection error, timeout, 408, 429, 5xx)."""


def _host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii").rstrip(".").lower()


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: object, *, allow_private: bool) -> str:
    """The webhook URL a client asked for, if Bulwark may call it.

    Only what needs no DNS is checked here (the scheme, the shape, literal addresses and
    ``localhost``); the resolved addresses are checked on every delivery.

    Raises:
        WebhookError: the URL is refused, with the reason.
    """
    if not isinstance(url, str) or not url.strip():
        raise WebhookError("webhook must be a URL string")
    if len(url) > MAX_URL_CHARS:
        raise WebhookError(f"webhook URL is longer than {MAX_URL_CHARS} characters")
    try:
        parsed = httpx.URL(url.strip())
        host = _host(parsed)
    except (httpx.InvalidURL, UnicodeError):
        raise WebhookError("webhook is not a valid URL") from None
    if parsed.scheme not in _PORTS:
        raise WebhookError("webhook URL must start with http:// or https://")
    if parsed.userinfo:
        raise WebhookError("webhook URL must not carry credentials (user:password@)")
    if not host:
        raise WebhookError("webhook URL has no host")
    literal = _literal(host)
    if literal is not None and (problem := _problem(literal, allow_private=allow_private)):
        raise WebhookError(f"webhook host refused: {problem}")
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise WebhookError("webhook host refused: loopback address")
    return str(parsed)


def _problem(ip: IPAddress, *, allow_private: bool) -> str | None:
    refuse: Collection[AddressCategory] = PRIVATE_ALLOWED if allow_private else DEFAULT_REFUSED
    blocked = () if allow_private else tuple(ipaddress.ip_network(n) for n in DEFAULT_BLOCKED_NETWORKS)
    return address_problem(ip, refuse=refuse, blocked_networks=blocked)


def bind(kwargs: dict[str, Any], url: str | None, *, request_id: str, secret: str | None) -> None:
    """Record ``url`` in a run's kwargs for the graph, bound to the run's ``request_id`` and
    sealed with ``secret``, and drop any ``webhook`` field so the engine sends nothing.

    Without ``url`` a record sealed for this ``request_id`` is kept (preparing a run twice,
    as ``server/engine_routes.py`` does for aegra, changes nothing) and anything else there,
    such as a record a client wrote itself, becomes ``None``.
    """
    kwargs.pop("webhook", None)
    config = kwargs.get("config")
    if not isinstance(config, dict):
        config = kwargs["config"] = {}
    configurable = config.get("configurable")
    if not isinstance(configurable, dict):
        configurable = config["configurable"] = {}
    if url and secret:
        configurable[CONFIG_KEY] = {"url": url, "request_id": request_id, "seal": _seal(secret, url, request_id)}
    elif sealed_url(configurable.get(CONFIG_KEY), request_id=request_id, secret=secret) is None:
        configurable[CONFIG_KEY] = None


def _seal(secret: str | bytes, url: str, request_id: str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"bulwark-webhook\0{request_id}\0{url}".encode(), hashlib.sha256).hexdigest()


def sealed_url(record: object, *, request_id: str | None, secret: str | bytes | None) -> str | None:
    """The URL of ``record`` if :func:`bind` sealed it with ``secret`` for ``request_id``."""
    if not secret or not isinstance(record, Mapping) or record.get("request_id") != request_id or request_id is None:
        return None
    url, seal = record.get("url"), record.get("seal")
    if not isinstance(url, str) or not isinstance(seal, str):
        return None
    return url if hmac.compare_digest(seal, _seal(secret, url, request_id)) else None


# -- signing -------------------------------------------------------------------------------------


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``body`` with ``headers`` is a webhook Bulwark signed with ``secret`` within
    ``tolerance_s`` seconds of ``now`` (default: the current time). For receivers: pass the
    raw body, before any JSON parsing, and the request headers (any case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(given.encode(), signature(secret, timestamp, body).encode())


def payload(*, run_id: str, thread_id: str | None, status: str, finished_at: datetime) -> bytes:
    """The JSON body of a run's webhook: identifiers, status and time, never message text."""
    return json.dumps(
        {"run_id": run_id, "thread_id": thread_id, "status": status, "finished_at": finished_at.isoformat()},
        separators=(",", ":"),
    ).encode()


# -- delivery ------------------------------------------------------------------------------------


class WebhookSender:
    """Signs and delivers webhooks; the graph's last node calls :meth:`notify`.

    ``sleep``, ``clock`` (Unix time), ``resolver`` and ``transport`` are injectable so
    tests neither wait, nor resolve names, nor (with an ``httpx.MockTransport``) connect.
    """

    def __init__(
        self,
        *,
        secret: str | bytes,
        allow_private: bool = False,
        attempts: int = 5,
        timeout_s: float = 10.0,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        resolver: Resolver = resolve_host,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.secret = secret
        self.allow_private = allow_private
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self.clock = clock
        self.resolver = resolver
        self.transport = transport
        self._tls = httpx.create_ssl_context()  # once: building one costs tens of milliseconds
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSender | None:
        """The sender ``settings`` configure; ``None`` without ``BULWARK_WEBHOOK_SECRET``."""
        if settings.webhook_secret is None:
            return None
        return cls(
            secret=settings.webhook_secret.get_secret_value(),
            allow_private=settings.webhook_allow_private,
            attempts=settings.webhook_attempts,
            timeout_s=settings.webhook_timeout_s,
        )

    def notify(self, configurable: Mapping[str, Any], *, request_id: str | None, status: str) -> asyncio.Task[None] | None:
        """Schedule the webhook of the run that ``configurable`` belongs to, if that run
        asked for one; return at once with the delivery's task (``None``: nothing to send).

        ``request_id`` is the run's (its runtime context's): a record left by an earlier
        run of the thread names another one, and one not sealed by :func:`bind` with this
        sender's secret was not written by Bulwark; both are ignored. Needs a running loop.
        """
        url = sealed_url(configurable.get(CONFIG_KEY), request_id=request_id, secret=self.secret)
        if url is None:
            return None
        body = payload(
            run_id=str(configurable.get("run_id")),
            thread_id=None if configurable.get("thread_id") is None else str(configurable["thread_id"]),
            status=status,
            finished_at=datetime.fromtimestamp(self.clock(), UTC),
        )
        task = asyncio.get_running_loop().create_task(self._deliver_logged(url, body))
        self._pending.add(task)  # a strong reference until it ends: the loop keeps weak ones
        task.add_done_callback(self._pending.discard)
        return task

    async def _deliver_logged(self, url: str, body: bytes) -> None:
        try:
            status = await self.deliver(url, body)
        except WebhookFailed as exc:
            log.warning("webhook not delivered: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a background task: log, never raise
            log.warning("webhook not delivered to %s: %s", _host(httpx.URL(url)), type(exc).__name__)
        else:
            log.info("webhook delivered to %s: HTTP %d", _host(httpx.URL(url)), status)

    async def deliver(self, url: str, body: bytes) -> int:
        """POST ``body``, signed, to ``url``, retrying transient failures with backoff.

        Returns:
            The receiver's 2xx status.

        Raises:
            WebhookFailed: refused by the address policy, a final answer that is not 2xx,
                or every attempt failed.
        """
        parsed = httpx.URL(url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.backoff_max_s),
            retry=retry_if_exception_type(_Transient),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(parsed, body)
        except _Transient as exc:
            raise WebhookFailed(f"{_host(parsed)}: {exc} after {self.attempts} attempts") from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises

    async def _attempt(self, url: httpx.URL, body: bytes) -> int:
        addresses = await self._addresses(url)
        if self.transport is not None:
            return await self._send(self.transport, url, addresses, body)
        transport = httpx.AsyncHTTPTransport(verify=self._tls, retries=0, limits=httpx.Limits(max_keepalive_connections=0))
        async with transport:
            return await self._send(transport, url, addresses, body)

    async def _addresses(self, url: httpx.URL) -> list[IPAddress]:
        """The host's addresses, each allowed by the policy (resolved on every attempt)."""
        host = _host(url)
        literal = _literal(host)
        port = url.port or _PORTS[url.scheme]
        try:
            answers = [str(literal)] if literal is not None else list(await asyncio.to_thread(self.resolver, host, port))
        except OSError as exc:
            raise _Transient(f"cannot resolve the host ({exc})") from None
        addresses = []
        for answer in answers:
            ip = ipaddress.ip_address(answer)
            if problem := _problem(ip, allow_private=self.allow_private):
                raise WebhookFailed(f"{host}: refused, it resolves to a {problem}")
            addresses.append(ip)
        if not addresses:
            raise _Transient("the host has no address")
        return addresses

    async def _send(
        self, transport: httpx.AsyncBaseTransport, url: httpx.URL, addresses: list[IPAddress], body: bytes
    ) -> int:
        """One signed POST, to the first vetted address that accepts the connection."""
        host, port = _host(url), url.port or _PORTS[url.scheme]
        name = f"[{host}]" if ":" in host else host
        timestamp = int(self.clock())
        headers = {
            "Host": name if port == _PORTS[url.scheme] else f"{name}:{port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Connection": "close",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self.secret, timestamp, body),
        }
        extensions: dict[str, Any] = {"timeout": httpx.Timeout(self.timeout_s).as_dict()}
        if url.scheme == "https" and _literal(host) is None:
            extensions["sni_hostname"] = host  # TLS checks the certificate against the real name
        failure: Exception | None = None
        for ip in addresses:
            request = httpx.Request(
                "POST", url.copy_with(host=str(ip), port=port), headers=headers, content=body, extensions=extensions
            )
            try:
                response = await transport.handle_async_request(request)
                await response.aread()
                await response.aclose()
            except httpx.ConnectError as exc:
                failure = exc
                continue
            except httpx.TransportError as exc:  # timeouts, a connection dropped mid-answer
                raise _Transient(type(exc).__name__) from None
            status = response.status_code
            if 200 <= status < 300:
                return status
            if status in _RETRIED_STATUSES or status >= 500:
                raise _Transient(f"HTTP {status}")
            raise WebhookFailed(f"{host}: HTTP {status}, not retried")
        raise _Transient(f"cannot connect ({type(failure).__name__})")
