"""The /health and /ready probes (``server/routes.py``), on the real server and in process.

On both launchers with ``BULWARK_AUTH=keys`` and no credential sent: /health answers, /ready
answers 200 with its three checks, and 503 naming the checkpointer while its Redis is
stopped, or the memory store while its Qdrant server is, then 200 again once they are back.
(A memory server that is down when the server starts stops the server from starting at
all: ``store.path`` must open, so that outage is tested once the server runs.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_server import LAUNCHERS, PROD, running
from bulwark.memory.backends import EdgeCollection
from bulwark.memory.store import open_memory_store
from bulwark.persistence.checkpoints import open_checkpointer_for
from bulwark.settings import Settings, load_settings
from qdrant_server import QdrantTestServer

ALL_OK = {"checkpointer": "ok", "memory": "ok", "rails": "ok"}
PROD_OK = {"checkpointer": "ok", "database": "ok", "rails": "ok"}
"""The production engine checks Postgres, where it keeps the memories, instead of the
embedded store (tests/test_scaleout.py stops it)."""


def _all_ok(launcher: str) -> dict[str, str]:
    return PROD_OK if launcher == PROD else ALL_OK


def _wait_for(url: str, status: int, timeout: float = 20) -> httpx.Response:
    """GET ``url``/ready, without a credential, until it answers ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/ready", timeout=10)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


@pytest.fixture(scope="module", params=LAUNCHERS)
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server with keys auth on the embedded defaults (SQLite, Qdrant Edge), and its launcher."""
    with running(request.param, tmp_path_factory.mktemp("routes"), BULWARK_AUTH="keys") as server:
        yield server.url, request.param


@pytest.mark.slow
def test_health_answers_without_a_credential(server_url: tuple[str, str]) -> None:
    response = httpx.get(f"{server_url[0]}/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.slow
def test_ready_checks_each_dependency(server_url: tuple[str, str]) -> None:
    url, launcher = server_url
    response = httpx.get(f"{url}/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "checks": _all_ok(launcher)})
    assert response.headers["cache-control"] == "no-store"
    assert httpx.post(f"{url}/threads/search", json={}).status_code == 401, "the API still needs a key"


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_ready_names_a_stopped_redis_checkpointer(launcher: str, redis_server, tmp_path: Path) -> None:
    with running(launcher, tmp_path, BULWARK_AUTH="keys", BULWARK_CHECKPOINTER_URL=redis_server.url) as server:
        assert _wait_for(server.url, 200).json()["checks"] == _all_ok(launcher)
        redis_server.stop()
        try:
            down = _wait_for(server.url, 503)
        finally:
            redis_server.start()
        assert down.status_code == 503
        assert down.json() == {
            "status": "unavailable",
            "checks": {**_all_ok(launcher), "checkpointer": "failed (RedisUnavailableError)"},
        }
        back = _wait_for(server.url, 200)
        assert (back.status_code, back.json()["checks"]) == (200, _all_ok(launcher))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_ready_names_a_memory_server_that_went_away(launcher: str, tmp_path: Path) -> None:
    if launcher == PROD:
        pytest.skip("the production engine keeps memories in Postgres: tests/test_scaleout.py stops that")
    with QdrantTestServer() as qdrant, running(launcher, tmp_path, BULWARK_AUTH="keys", BULWARK_MEMORY_URL=qdrant.url) as server:
        assert _wait_for(server.url, 200).json()["checks"] == ALL_OK
        qdrant.stop()
        try:
            down = _wait_for(server.url, 503)
        finally:
            qdrant.start()
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable", "checks": {**ALL_OK, "memory": "failed (MemoryStoreError)"}}
        assert qdrant.url not in down.text and "127.0.0.1" not in down.text, "no address leaves the server"
        back = _wait_for(server.url, 200)
        assert (back.status_code, back.json()["checks"]) == (200, ALL_OK)


# -- in process ----------------------------------------------------------------------------------


@pytest.fixture
def edge_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


async def test_sqlite_check_reads_the_servers_file_and_creates_nothing(edge_settings: Settings) -> None:
    from bulwark.server.routes import Readiness

    database = edge_settings.data_dir / "checkpoints.db"
    database.parent.mkdir(parents=True)
    before, after = Readiness(edge_settings), Readiness(edge_settings)
    try:
        assert (await before.run())["checkpointer"] == "failed (OperationalError)"
        assert not database.exists(), "the probe opens read-only: no file is created"
        async with open_checkpointer_for(edge_settings):  # as the server does at start
            assert await after.run() == ALL_OK
    finally:
        await before.aclose()
        await after.aclose()


async def test_memory_check_shares_the_servers_embedded_shard(edge_settings: Settings) -> None:
    from bulwark.server.routes import Readiness

    server_store = open_memory_store(edge_settings)  # what store.path opened
    shard = EdgeCollection._open[Path(edge_settings.resolved_memory_url).resolve()]
    readiness = Readiness(edge_settings)
    try:
        assert (await readiness.run())["memory"] == "ok", "a second open in the process reuses the shard"
        assert shard._users == 2
        await readiness.aclose()
        assert shard._users == 1, "closing the probe's store leaves the server's open"
    finally:
        server_store.close()
