"""Two replicas of the production engine (``bulwark serve --prod``) on one Postgres and Redis.

Everything runs here: a PostgreSQL and a Valkey (:func:`agent_server.prod_backends`), a
scripted OpenAI-compatible model server (``tests/openai_server.py``) whose answers can be
held back, and two server processes, A and B, each with its own data directory. The tests,
in order:

- a run created on one replica is streamed and joined from the other (the Redis broker
  carries its events, Postgres its record), and a thread's state reads the same on both;
- the p50 of a streamed run through either replica (printed);
- one replica is SIGKILLed while it runs a turn whose tool call (``send_email``, a side
  effect through the effect journal on Redis) has already gone out and whose answer is still
  being written, with more acknowledged runs in flight or queued: every run completes on the
  other replica once the victim's lease lapses, the e-mail is in an outbox exactly once, and
  the failover time is printed. The leases are short here (6 s, heartbeat 2 s, reaper 1 s);
  ``bulwark serve --prod`` defaults to 15/5/5 s.

Skipped, with the reason, where ``.venv-prod`` (``make prod-install``, Python 3.12) or
PostgreSQL is missing. First, ``bulwark serve --prod``'s one-line refusals of a missing,
malformed or unsafe configuration (in this process: they come before the engine loads).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest
import redis
from langgraph_sdk import get_client

from agent_server import PROD_BIN, Backends, Server, free_port, prod_backends, prod_unavailable_reason, server_env, serving_prod
from bulwark.cli.main import main
from openai_server import Reply, ScriptedOpenAIServer, ToolCall

pytestmark = pytest.mark.slow

LEASE = {
    "LEASE_DURATION_SECONDS": "6",
    "HEARTBEAT_INTERVAL_SECONDS": "2",
    "REAPER_INTERVAL_SECONDS": "1",
    "STUCK_PENDING_THRESHOLD_SECONDS": "10",
}
EMAIL = ToolCall("send_email", {"to": "ops@example.org", "subject": "report", "body": "all systems nominal"}, id="call_mail")
WORKER = re.compile(r"-(\d+)-worker-\d+$")


GOOD = {"DATABASE_URL": "postgresql://bulwark:secret@127.0.0.1:5432/bulwark", "REDIS_URL": "redis://127.0.0.1:6379/0"}


@pytest.mark.parametrize(
    ("env", "args", "error"),
    [
        ({"REDIS_URL": GOOD["REDIS_URL"]}, [], "DATABASE_URL is not set: use postgresql://"),
        ({**GOOD, "DATABASE_URL": "mysql://u:hunter2@db/app"}, [], "invalid DATABASE_URL 'mysql://u:***@db/app'"),
        ({**GOOD, "DATABASE_URL": "postgresql://u:hunter2@db:5432/"}, [], "no database name"),
        ({"DATABASE_URL": GOOD["DATABASE_URL"]}, [], "REDIS_URL is not set: use redis://"),
        ({**GOOD, "REDIS_URL": "redis://:hunter2@cache:6379/0?ttl=60"}, [], "?ttl= is not for the engine's queue"),
        ({**GOOD, "REDIS_URL": "http://cache:6379"}, [], "invalid REDIS_URL 'http://cache:6379'"),
        ({**GOOD, "BULWARK_CHECKPOINTER_URL": "sqlite:///c.db"}, [], "BULWARK_CHECKPOINTER_URL 'sqlite:///c.db' is not Redis"),
        (GOOD, ["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0 without authentication"),
    ],
    ids=["no-database", "not-postgres", "no-dbname", "no-redis", "redis-ttl", "not-redis", "sqlite-journal", "public-no-auth"],
)
def test_serve_prod_refuses_a_bad_configuration_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], args: list[str], error: str
) -> None:
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--prod", "--port", str(free_port()), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bulwark: error: ") and error in err and len(err.strip().splitlines()) == 1, err
    assert "hunter2" not in err


def test_serve_prod_without_the_engine_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if find_spec("aegra_api") is not None:
        pytest.skip("this environment has the engine (the suite runs in .venv, Python 3.11, without it)")
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--prod", "--port", str(free_port())]) == 2
    assert capsys.readouterr().err == (
        "bulwark: error: bulwark serve --prod needs the aegra engine (Python >= 3.12): run make prod-install, "
        "then .venv-prod/bin/bulwark serve --prod\n"
    )


def test_serve_prod_says_which_backend_it_cannot_reach(tmp_path: Path) -> None:
    if (reason := prod_unavailable_reason()) is not None:
        pytest.skip(reason)
    database = f"postgresql://bulwark:hunter2@127.0.0.1:{free_port()}/bulwark"  # nothing listens there
    result = subprocess.run(
        [str(PROD_BIN / "bulwark"), "serve", "--prod", "--port", str(free_port())], cwd=tmp_path,
        env=server_env(tmp_path / "data", **{**GOOD, "DATABASE_URL": database}), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("bulwark: error: cannot reach Postgres at 'postgresql://bulwark:***@127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr


@dataclass(frozen=True)
class Cluster:
    """The backends, the model server and the two replicas."""

    backends: Backends
    model: ScriptedOpenAIServer
    a: Server
    b: Server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("scaleout")
    with ExitStack() as stack:
        backends = stack.enter_context(prod_backends(root))
        model = stack.enter_context(ScriptedOpenAIServer())
        env = {
            **LEASE,
            "BULWARK_MODEL": "openai:gpt-test",
            "BULWARK_OPENAI_BASE_URL": model.base_url,
            "BULWARK_OPENAI_API_KEY": "sk-test",
            "BULWARK_APPROVAL_TOOLS": "[]",  # send_email runs at once: the side effect under test
        }
        replicas = []
        for name in ("a", "b"):  # one after the other: the first migrates the database
            (root / name).mkdir()
            replicas.append(stack.enter_context(serving_prod(root / name, backends, **env)))
        yield Cluster(backends=backends, model=model, a=replicas[0], b=replicas[1])


def _ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def _answer(content: str, delay_s: float = 0.0) -> Reply:
    return Reply(content=content, delay_s=delay_s)


async def test_a_run_started_on_one_replica_is_streamed_and_joined_on_the_other(cluster: Cluster) -> None:
    a, b = get_client(url=cluster.a.url), get_client(url=cluster.b.url)
    cluster.model.add(_answer("Streamed across replicas.", delay_s=2.0))
    thread = (await a.threads.create())["thread_id"]
    run = await a.runs.create(thread, "agent", input=_ask("say something"), stream_mode=["values", "messages-tuple"])
    events = [part async for part in b.runs.join_stream(thread, run["run_id"], stream_mode=["values", "messages-tuple"])]
    assert any(part.event == "values" for part in events), [part.event for part in events]
    final = await b.runs.join(thread, run["run_id"])
    assert final["messages"][-1]["content"].startswith("Streamed across replicas.")
    assert (await b.runs.get(thread, run["run_id"]))["status"] == "success"
    states = [(await client.threads.get_state(thread))["values"]["messages"] for client in (a, b)]
    assert states[0] == states[1] and len(states[0]) == 2


async def test_streamed_run_p50(cluster: Cluster) -> None:
    clients = [get_client(url=cluster.a.url), get_client(url=cluster.b.url)]
    n = 10
    cluster.model.add(*[_answer("Quick answer.") for _ in range(n)])
    took = []
    for i in range(n):
        client = clients[i % 2]
        thread = (await client.threads.create())["thread_id"]
        start = time.perf_counter()
        values = [
            p.data async for p in client.runs.stream(thread, "agent", input=_ask("hello"), stream_mode="values")
            if p.event == "values"
        ]
        took.append(time.perf_counter() - start)
        assert values[-1]["messages"][-1]["content"].startswith("Quick answer.")
    p50 = statistics.median(took)
    print(f"\nstreamed run through either replica: p50 {p50 * 1000:.0f} ms, max {max(took) * 1000:.0f} ms (n={n})")
    assert p50 < 5.0


async def test_a_run_is_cancelled_from_the_other_replica(cluster: Cluster) -> None:
    a, b = get_client(url=cluster.a.url), get_client(url=cluster.b.url)
    asked = len(cluster.model.requests)
    cluster.model.add(_answer("never sent", delay_s=20.0))
    thread = (await a.threads.create())["thread_id"]
    run = await a.runs.create(thread, "agent", input=_ask("take your time"))
    await _until(lambda: len(cluster.model.requests) > asked, timeout=30, what="the model call")
    await b.runs.cancel(thread, run["run_id"], wait=True)
    assert (await a.runs.get(thread, run["run_id"]))["status"] == "interrupted"


def _outbox_lines(*servers: Server) -> list[dict]:
    lines = []
    for server in servers:
        outbox = server.data_dir / "outbox.jsonl"
        if outbox.exists():
            lines += [json.loads(line) for line in outbox.read_text().splitlines() if line.strip()]
    return lines


def _executor_pid(backends: Backends, run_id: str) -> int | None:
    claimed = backends.postgres.psql(f"SELECT claimed_by FROM runs WHERE run_id = '{run_id}'", check=True).stdout.strip()
    match = WORKER.search(claimed)
    return int(match.group(1)) if match else None


async def test_a_killed_replicas_runs_complete_on_the_other_and_the_effect_fires_once(cluster: Cluster) -> None:
    """Last in the module: it leaves one replica."""
    servers = {server.process.pid: server for server in (cluster.a, cluster.b)}
    a = get_client(url=cluster.a.url)
    asked = len(cluster.model.requests)
    # The turn: the model calls send_email, then takes 30 s to answer (the victim dies meanwhile).
    cluster.model.add(Reply(tool_calls=[EMAIL]), _answer("slow", delay_s=30.0))
    thread = (await a.threads.create())["thread_id"]
    run = await a.runs.create(thread, "agent", input=_ask("mail the status report to ops"))
    await _until(lambda: len(cluster.model.requests) >= asked + 2, timeout=60, what="the second model call")
    assert len(_outbox_lines(cluster.a, cluster.b)) == 1, "the e-mail went out before the kill"
    victim_pid = _executor_pid(cluster.backends, run["run_id"])
    assert victim_pid in servers, victim_pid
    victim = servers.pop(victim_pid)
    survivor = next(iter(servers.values()))
    # More acknowledged runs, in flight on either replica or queued, when the victim dies.
    # Every answer from here on is the same, so which run gets which does not matter.
    cluster.model.add(*[_answer("done", delay_s=1.0) for _ in range(12)])
    others = []
    for _ in range(4):
        other = (await a.threads.create())["thread_id"]
        others.append((other, (await a.runs.create(other, "agent", input=_ask("hello")))["run_id"]))
    await asyncio.sleep(0.5)

    os.kill(victim_pid, signal.SIGKILL)
    killed = time.monotonic()
    victim.process.wait(timeout=10)
    client = get_client(url=survivor.url)
    final = await client.runs.join(thread, run["run_id"])
    failover = time.monotonic() - killed
    print(f"\nfailover: the killed replica's run finished on the other {failover:.1f} s after SIGKILL (lease 6 s)")

    assert (await client.runs.get(thread, run["run_id"]))["status"] == "success"
    assert final["messages"][-1]["content"].startswith("done")
    tool_messages = [m for m in final["messages"] if m["type"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_mail"]
    assert len(_outbox_lines(cluster.a, cluster.b)) == 1, "the side effect fired exactly once"
    journal = redis.Redis.from_url(cluster.backends.redis_url)
    records = [json.loads(journal.get(key)) for key in journal.scan_iter("bulwark:effects:*")]
    assert [r["status"] for r in records] == ["success"]
    for other, run_id in others:
        await client.runs.join(other, run_id)
        assert (await client.runs.get(other, run_id))["status"] == "success", "no acknowledged run is lost"
    assert failover < 30, "well within one lease and the slow answer"


def test_ready_checks_postgres_and_names_it_when_it_stops(cluster: Cluster) -> None:
    """Last in this module: the replicas' connections do not all survive a Postgres restart."""
    alive = next(server for server in (cluster.a, cluster.b) if server.process.poll() is None)

    def ready() -> httpx.Response:
        return httpx.get(f"{alive.url}/ready", timeout=10)

    response = ready()
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"checkpointer": "ok", "database": "ok", "rails": "ok"}
    postgres = cluster.backends.postgres
    postgres.stop()
    try:
        deadline = time.monotonic() + 15
        while (response := ready()).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert response.status_code == 503, response.text
        checks = response.json()["checks"]
        assert checks["database"] != "ok" and checks["checkpointer"] == "ok", checks
    finally:
        postgres.start()
    deadline = time.monotonic() + 15
    while (response := ready()).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert response.status_code == 200, response.text


async def _until(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
