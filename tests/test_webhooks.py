"""Run-completion webhooks (``server/webhooks.py``): intake, signing, delivery, end to end.

In process: the URL policy, the signature and :func:`verify_signature`, and deliveries to a
real HTTP receiver on loopback with an injected sleep and clock (retries with exponential
backoff, final answers, the address policy, pinning a name to its vetted address, and
:meth:`WebhookSender.notify` returning before the receiver answers). End to end: the real
server (``langgraph dev``) with the real auth handler and a one-node graph whose node calls
``notify`` as the agent's last node (``nodes/audit.py``) is to: an admin's run brings exactly one signed call,
the engine none of its own, and the thread's next run none.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from agent_server import REPO, free_port, running
from bulwark.server.credentials import ApiKeys
from bulwark.server.webhooks import (
    CONFIG_KEY,
    WebhookError,
    WebhookFailed,
    WebhookSender,
    bind,
    check_url,
    payload,
    sealed_url,
    signature,
    verify_signature,
)
from bulwark.settings import ConfigError, load_settings

SECRET = "webhook-secret-for-tests-0123456789abcdef"
BODY = payload(run_id="r1", thread_id="t1", status="success", finished_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


class Receiver:
    """A webhook receiver on loopback: records each request and answers the next status
    of ``statuses`` (then 200), after ``delay_s``."""

    def __init__(self, *statuses: int, delay_s: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay_s = delay_s
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k: v for k, v in self.headers.items()}, body))
                time.sleep(receiver.delay_s)
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/run-done"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    """Unix time that moves on by one second each time it is read."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _sender(**overrides: Any) -> tuple[WebhookSender, list[float]]:
    """A sender for loopback receivers whose sleeps are recorded, not slept."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    options = {"secret": SECRET, "allow_private": True, "attempts": 4, "sleep": sleep, "clock": Clock()} | overrides
    return WebhookSender(**options), slept


# -- signature ---------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_800_000_000, BODY) == f"sha256={expected}"
    assert json.loads(BODY) == {
        "run_id": "r1", "thread_id": "t1", "status": "success", "finished_at": "2026-01-02T03:04:05+00:00",
    }


def test_verify_signature_accepts_only_fresh_untampered_calls() -> None:
    headers = {"X-Bulwark-Timestamp": "1800000000", "X-Bulwark-Signature": signature(SECRET, 1_800_000_000, BODY)}
    assert verify_signature(SECRET, BODY, headers, 300, now=1_800_000_100)
    assert verify_signature(SECRET.encode(), BODY, {k.lower(): v for k, v in headers.items()}, now=1_800_000_000)
    assert not verify_signature(SECRET, BODY + b" ", headers, now=1_800_000_000), "tampered body"
    assert not verify_signature("another-secret-0123456789abcdef0123", BODY, headers, now=1_800_000_000)
    assert not verify_signature(SECRET, BODY, headers, 300, now=1_800_000_301), "replayed too late"
    assert not verify_signature(SECRET, BODY, {**headers, "X-Bulwark-Timestamp": "1800000001"}, now=1_800_000_000)
    assert not verify_signature(SECRET, BODY, {"X-Bulwark-Signature": headers["X-Bulwark-Signature"]})
    assert not verify_signature(SECRET, BODY, {**headers, "X-Bulwark-Timestamp": "soon"})


def test_settings_refuse_a_short_secret() -> None:
    with pytest.raises(ConfigError, match="BULWARK_WEBHOOK_SECRET: the webhook secret must be at least 32 bytes"):
        load_settings(webhook_secret="short")
    assert WebhookSender.from_settings(load_settings()) is None, "no secret: no webhooks"
    assert WebhookSender.from_settings(load_settings(webhook_secret=SECRET)) is not None


# -- intake --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "must start with http:// or https://"),
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("hooks.example.com/x", "must start with http:// or https://"),
        ("https://user:pw@hooks.example.com/x", "must not carry credentials"),
        ("https://hooks.example.com/" + "x" * 2048, "longer than 2048 characters"),
        ("http://169.254.169.254/latest/meta-data", "link-local address"),
        ("http://127.0.0.1:8024/threads", "loopback address"),
        ("http://[::1]:8024/", "loopback address"),
        ("http://localhost:8024/", "loopback address"),
        ("http://10.0.0.7/hook", "private address"),
        ("http://100.100.100.200/", "not-global address"),  # CGNAT: the Alibaba metadata service
        ("https://", "no host"),
        (42, "must be a URL string"),
    ],
)
def test_refused_urls(url: object, reason: str) -> None:
    with pytest.raises(WebhookError, match=reason):
        check_url(url, allow_private=False)


def test_private_addresses_need_the_setting_and_link_local_never_passes() -> None:
    assert check_url("https://hooks.example.com/run-done", allow_private=False) == "https://hooks.example.com/run-done"
    for url in ("http://127.0.0.1:9000/h", "http://localhost:9000/h", "http://10.0.0.7/h"):
        assert check_url(url, allow_private=True) == url
    with pytest.raises(WebhookError, match="link-local"):
        check_url("http://169.254.169.254/", allow_private=True)


def _bound(url: str | None, request_id: str, **kwargs: Any) -> dict[str, Any]:
    """A run's configurable once :func:`bind` prepared it."""
    bind(kwargs, url, request_id=request_id, secret=SECRET)
    return kwargs["config"]["configurable"]


def test_bind_takes_the_webhook_from_the_engine_and_seals_it_for_the_graph() -> None:
    kwargs: dict[str, Any] = {"webhook": "https://hooks.example.com/h", "config": None}
    bind(kwargs, "https://hooks.example.com/h", request_id="req-1", secret=SECRET)
    assert "webhook" not in kwargs, "the engine has nothing to call"
    record = kwargs["config"]["configurable"][CONFIG_KEY]
    assert sealed_url(record, request_id="req-1", secret=SECRET) == "https://hooks.example.com/h"
    assert sealed_url(record, request_id="req-2", secret=SECRET) is None, "another run's"
    assert sealed_url(record, request_id="req-1", secret="x" * 32) is None, "another secret's"
    bind(kwargs, None, request_id="req-1", secret=SECRET)
    assert kwargs["config"]["configurable"][CONFIG_KEY] == record, "preparing the same run twice keeps it"
    bind(kwargs, None, request_id="req-2", secret=SECRET)
    assert kwargs["config"]["configurable"][CONFIG_KEY] is None, "a later run does not inherit it"


def test_a_record_a_client_wrote_is_dropped() -> None:
    forged = {"url": "http://10.0.0.7/", "request_id": "req-1", "seal": "0" * 64}
    assert _bound(None, "req-1", config={"configurable": {CONFIG_KEY: forged}})[CONFIG_KEY] is None
    unsealed = {"url": "http://10.0.0.7/", "request_id": "req-1"}
    assert _bound(None, "req-1", config={"configurable": {CONFIG_KEY: unsealed}})[CONFIG_KEY] is None
    kwargs: dict[str, Any] = {"config": {"configurable": {CONFIG_KEY: forged}}}
    bind(kwargs, None, request_id="req-1", secret=None)
    assert kwargs["config"]["configurable"][CONFIG_KEY] is None, "webhooks off: no record at all"


# -- delivery ------------------------------------------------------------------------------------


async def test_a_delivery_is_signed_and_carries_no_message_text() -> None:
    sender, slept = _sender()
    with Receiver() as receiver:
        assert await sender.deliver(receiver.url, BODY) == 200
    [(headers, body)] = receiver.requests
    assert body == BODY and slept == []
    assert headers["Content-Type"] == "application/json"
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert verify_signature(SECRET, body, headers, now=int(headers["X-Bulwark-Timestamp"]))


async def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    sender, slept = _sender()
    with Receiver(503, 429, 500) as receiver:
        assert await sender.deliver(receiver.url, BODY) == 200
    assert slept == [1.0, 2.0, 4.0]
    stamps = [headers["X-Bulwark-Timestamp"] for headers, _ in receiver.requests]
    assert len(set(stamps)) == 4, "each attempt is signed afresh"
    assert all(verify_signature(SECRET, body, h, now=int(h["X-Bulwark-Timestamp"])) for h, body in receiver.requests)


async def test_a_final_answer_is_not_retried_and_attempts_are_capped() -> None:
    sender, slept = _sender()
    with Receiver(400) as receiver:
        with pytest.raises(WebhookFailed, match="127.0.0.1: HTTP 400, not retried"):
            await sender.deliver(receiver.url, BODY)
    assert (len(receiver.requests), slept) == (1, [])
    sender, slept = _sender(attempts=3, backoff_max_s=1.5)
    with Receiver(502, 502, 502, 502) as receiver:
        with pytest.raises(WebhookFailed, match="HTTP 502 after 3 attempts"):
            await sender.deliver(receiver.url, BODY)
    assert (len(receiver.requests), slept) == (3, [1.0, 1.5])


async def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    sender, slept = _sender(attempts=3)
    with pytest.raises(WebhookFailed, match=r"cannot connect \(ConnectError\) after 3 attempts"):
        await sender.deliver(f"http://127.0.0.1:{free_port()}/h", BODY)
    assert slept == [1.0, 2.0]


async def test_a_name_is_resolved_vetted_and_pinned() -> None:
    resolved = {"hooks.example.test": ["127.0.0.1"], "internal.example.test": ["203.0.113.9", "10.1.2.3"]}

    def resolver(host: str, port: int) -> list[str]:
        return resolved[host]

    with Receiver() as receiver:
        sender, _ = _sender(resolver=resolver)
        assert await sender.deliver(f"http://hooks.example.test:{receiver.port}/h", BODY) == 200
        assert receiver.requests[0][0]["Host"] == f"hooks.example.test:{receiver.port}", "the real name, the vetted address"
        strict, slept = _sender(resolver=resolver, allow_private=False)
        for url, reason in (
            (receiver.url, "resolves to a loopback address"),
            (f"http://hooks.example.test:{receiver.port}/h", "resolves to a loopback address"),
            ("http://internal.example.test/h", "resolves to a private address"),
        ):
            with pytest.raises(WebhookFailed, match=reason):
                await strict.deliver(url, BODY)
        with pytest.raises(WebhookFailed, match="link-local"):
            await sender.deliver("http://169.254.169.254/latest", BODY)
    assert len(receiver.requests) == 1 and slept == [], "a refused host is never contacted, nor retried"


async def test_notify_schedules_the_run_s_own_webhook_and_returns_at_once() -> None:
    sender, _ = _sender()
    with Receiver(delay_s=0.5) as receiver:
        configurable = _bound(receiver.url, "req-1", config={"configurable": {"run_id": "r1", "thread_id": "t1"}})
        assert sender.notify({"run_id": "r1"}, request_id="req-1", status="success") is None
        assert sender.notify({**configurable, CONFIG_KEY: None}, request_id="req-1", status="success") is None
        assert sender.notify(configurable, request_id="req-0", status="success") is None, "an earlier run's"
        unsealed = {**configurable, CONFIG_KEY: {"url": receiver.url, "request_id": "req-1"}}
        assert sender.notify(unsealed, request_id="req-1", status="success") is None, "not written by bind"
        started = time.perf_counter()
        task = sender.notify(configurable, request_id="req-1", status="success")
        returned_after = time.perf_counter() - started
        assert task is not None and not task.done()
        await task
    assert returned_after < 0.05, f"notify took {returned_after:.3f} s"
    [(headers, body)] = receiver.requests
    sent = json.loads(body)
    assert (sent["run_id"], sent["thread_id"], sent["status"]) == ("r1", "t1", "success")
    assert datetime.fromisoformat(sent["finished_at"]).tzinfo is not None


async def test_a_failed_delivery_is_logged_with_the_host_only(caplog: pytest.LogCaptureFixture) -> None:
    sender, _ = _sender(attempts=1)
    with Receiver(404) as receiver:
        url = receiver.url + "?token=s3cr3t-path-token"
        task = sender.notify(_bound(url, "q", config={"configurable": {"run_id": "r1"}}), request_id="q", status="success")
        assert task is not None
        await task
    assert "webhook not delivered: 127.0.0.1: HTTP 404, not retried" in caplog.text
    assert "s3cr3t-path-token" not in caplog.text


# -- end to end ----------------------------------------------------------------------------------

@pytest.fixture
def webhook_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``langgraph dev`` on the repo's langgraph.json (the agent, its auth handler and routes)
    with langgraph-api's own URL policy opened to loopback, so the receiver here is allowed."""
    config = json.loads((REPO / "langgraph.json").read_text())
    config["webhooks"] = {"url": {"disable_loopback": False, "require_https": False}}
    (tmp_path / "langgraph.json").write_text(json.dumps(config))
    keys = ApiKeys(tmp_path / "data" / "api_keys.json")
    issued = {user: keys.create(tenant_id="acme", user_id=user, scopes=scopes)[1]
              for user, scopes in (("root", ("admin",)), ("bob", ()))}
    with running("langgraph dev", tmp_path, BULWARK_AUTH="keys", BULWARK_WEBHOOK_SECRET=SECRET,
                 BULWARK_WEBHOOK_ALLOW_PRIVATE="true") as server:
        yield server.url, issued


@pytest.mark.slow
async def test_a_served_agent_run_brings_one_signed_webhook(webhook_server) -> None:
    """The agent's last node (audit) sends it; the engine sends none of its own."""
    url, keys = webhook_server
    root, bob = (get_client(url=url, api_key=keys[user]) for user in ("root", "bob"))
    hi = {"messages": [{"role": "user", "content": "hi"}]}
    with Receiver() as receiver:
        thread = (await root.threads.create())["thread_id"]
        run = await root.runs.create(thread, "agent", input=hi, webhook=receiver.url)
        await root.runs.join(thread, run["run_id"])
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await root.runs.wait(thread, "agent", input=hi)  # the thread's next run asked for none
        assert await _status(bob.runs.create(thread, "agent", input=hi, webhook=receiver.url)) in (403, 404)
        bobs = (await bob.threads.create())["thread_id"]
        assert await _status(bob.runs.create(bobs, "agent", input=hi, webhook=receiver.url)) == 403
        assert await _status(root.runs.create(thread, "agent", input=hi, webhook="gopher://127.0.0.1/x")) == 422
        await asyncio.sleep(1.5)  # time for any call the engine would make on its own
    [(headers, body)] = receiver.requests
    assert verify_signature(SECRET, body, headers)
    sent = json.loads(body)
    assert set(sent) == {"run_id", "thread_id", "status", "finished_at"}
    assert (sent["run_id"], sent["thread_id"], sent["status"]) == (run["run_id"], thread, "success")
    stored = await root.runs.get(thread, run["run_id"])
    assert (stored.get("kwargs") or {}).get("webhook") is None, "the engine keeps no webhook to call"


async def _status(call: Any) -> int:
    try:
        await call
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return 200
