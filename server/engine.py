"""The production engine: the agent on the aegra Agent Server, on Postgres and Redis.

``bulwark serve --prod`` (the image's command) calls :func:`serve`. It runs aegra
(``aegra-api``, Apache-2.0, Python >= 3.12: ``make prod-install`` builds ``.venv-prod``)
with the same graph, auth handler and probes as ``langgraph dev`` and ``bulwark serve``:
``graphs/platform.py:graph``, ``server/auth.py:auth`` and ``server/routes.py``'s routes
(through :mod:`bulwark.server.engine_routes`, which also applies the auth handler's intake
that aegra would skip, and a FastAPI app as aegra requires). Its config (aegra reads
``aegra.json``, langgraph.json's format) is written under the data directory, the graph file
by absolute path as ``bulwark serve`` passes it to langgraph-api.

What the engine keeps where:

- **Postgres** (``DATABASE_URL``): assistants, threads, runs, crons (aegra's tables, migrated
  at start), the checkpoints (aegra's ``AsyncPostgresSaver``) and the store the graph's
  memories and knowledge go to (``AsyncPostgresStore``). aegra ignores langgraph.json's
  ``checkpointer.path`` and ``store.path``.
- **Redis** (``REDIS_URL``): the run queue, stream events, cancellation and the workers'
  done-signals (aegra's Redis mode), and Bulwark's own shared state: the effect journal
  and the rate-limit buckets follow ``BULWARK_CHECKPOINTER_URL``, which is set to
  ``REDIS_URL`` here, so a side effect runs once whichever replica runs the tool call.

Every replica is API and worker at once: it takes runs from the Redis queue, holds a lease
on each, renewed every ``HEARTBEAT_INTERVAL_SECONDS``; a replica that dies stops renewing,
and once the lease (``LEASE_DURATION_SECONDS``) has run out the reaper of any replica
(every ``REAPER_INTERVAL_SECONDS``) puts the run back on the queue for another to re-run
from its last checkpoint. :data:`ENGINE_DEFAULTS` shortens aegra's 30/10/15 s to 15/5/5 s
(failover measured at 20 s, against about 54 s); aegra's other settings can be set in the
environment.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from bulwark.memory.longterm import KNOWLEDGE, MEMORIES
from bulwark.persistence.checkpoints import PersistenceError
from bulwark.persistence.redis import mask_url, parse_redis_url, split_server_url
from bulwark.settings import ConfigError, Settings

ENGINE_APP = "aegra_api.main:app"
"""The ASGI app uvicorn serves."""
CONFIG_FILE = "aegra.json"
"""The engine's config, written in the server directory under the data directory."""

ENGINE_DEFAULTS = {
    "LEASE_DURATION_SECONDS": "15",
    "HEARTBEAT_INTERVAL_SECONDS": "5",
    "REAPER_INTERVAL_SECONDS": "5",
    "WORKER_COUNT": "1",
    # Off: its instrumentator's http_requests_total (labelled by handler) would clash with
    # Bulwark's in one scrape; HttpMetrics serves /metrics and records the HTTP series.
    "ENABLE_PROMETHEUS_METRICS": "false",
}
"""aegra settings Bulwark chooses; the environment wins over each (its ``LOG_LEVEL`` and
``ENV_MODE`` follow ``BULWARK_LOG_LEVEL`` and ``BULWARK_LOG_FORMAT``:
:func:`bulwark.observability.log_format.server_log_env`)."""
ENGINE_OTEL_OFF = {
    "OTEL_TARGETS": "",
    "OTEL_CONSOLE_EXPORT": "false",
    "OTEL_SDK_DISABLED": "true",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}
"""No trace, metric or log exporter (nothing leaves the machine), unless the environment
configures OpenTelemetry export (:data:`OTEL_EXPORT_VARIABLES`): then none of these is set
and :mod:`bulwark.observability.telemetry` exports as told. A value set in the environment
always wins."""
OTEL_EXPORT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER",
)
ENGINE_FIXED = {
    "REDIS_BROKER_ENABLED": "true",
    "FF_V2_EVENT_STREAMING": "false",
}
"""Always set: the Redis mode (shared queue, leases; without it a replica's runs die with
it), and no Agent Protocol v2 event streaming, whose ``/threads/{id}/commands`` would start
runs past the intake of :mod:`bulwark.server.engine_routes`."""

_DATABASE_HINT = "use postgresql://user:password@host:5432/database"
_REDIS_HINT = "use redis://[:password@]host[:port][/db] or rediss://... for TLS"
_NOT_INSTALLED = (
    "bulwark serve --prod needs the aegra engine (Python >= 3.12): run make prod-install, "
    "then .venv-prod/bin/bulwark serve --prod"
)


def database_url(value: str | None) -> str:
    """``DATABASE_URL`` checked: a ``postgresql://`` (or ``postgres://``) URL naming a host
    and a database. Raises :class:`~bulwark.settings.ConfigError` saying what is wrong."""
    if not value:
        raise ConfigError(f"DATABASE_URL is not set: {_DATABASE_HINT}")
    shown = mask_url(value)
    parts = split_server_url(
        value, schemes=("postgresql", "postgres"), name="DATABASE_URL", hint=_DATABASE_HINT, error=ConfigError
    )
    if not parts.path.strip("/"):
        raise ConfigError(f"invalid DATABASE_URL {shown!r}: no database name; {_DATABASE_HINT}")
    return value


def redis_url(value: str | None) -> str:
    """``REDIS_URL`` checked: a ``redis://`` or ``rediss://`` URL without Bulwark's ``ttl``
    option (the engine's queue must not expire). Raises :class:`~bulwark.settings.ConfigError`."""
    if not value:
        raise ConfigError(f"REDIS_URL is not set: {_REDIS_HINT}")
    try:
        _, ttl = parse_redis_url(value)
    except PersistenceError as exc:
        raise ConfigError(str(exc).replace("Redis URL", "REDIS_URL", 1)) from None
    if ttl is not None:
        raise ConfigError(f"invalid REDIS_URL {mask_url(value)!r}: ?ttl= is not for the engine's queue; {_REDIS_HINT}")
    return value


def shared_state_url(settings: Settings, redis: str) -> str:
    """The ``BULWARK_CHECKPOINTER_URL`` the replicas run with: ``REDIS_URL`` unless set.

    It decides where the effect journal and the rate limits live; on anything but Redis each
    replica would keep its own, and a re-run tool call could repeat its side effect.
    """
    chosen = settings.checkpointer_url
    if chosen is None:
        return redis
    if not chosen.startswith(("redis://", "rediss://")):
        raise ConfigError(
            f"BULWARK_CHECKPOINTER_URL {mask_url(chosen)!r} is not Redis: the replicas share the effect "
            "journal and rate limits through it; unset it (REDIS_URL is used) or set a redis:// URL"
        )
    return chosen


def engine_config() -> dict[str, object]:
    """The engine's config (langgraph.json's format): the graph file by absolute path, the
    auth handler and the app by module. aegra serves no generative UI, MCP or A2A routes, so
    there is nothing to switch off."""
    graph = find_spec("bulwark.graphs.platform").origin  # type: ignore[union-attr]
    return {
        "graphs": {"agent": f"{graph}:graph"},
        # Modules, not files: the intake (engine_routes) and aegra share one auth module.
        "auth": {"path": "bulwark.server.auth:auth", "disable_studio_auth": True},
        "http": {"app": "bulwark.server.engine_routes:app"},
        # The store API keeps a namespace of Bulwark's as the graph names it, for the users
        # of its tenant (and user); aegra would bury it under ("users", identity) instead.
        "store": {"scopes": {MEMORIES: ["tenant_id", "user_id"], KNOWLEDGE: ["tenant_id"]}},
    }


def engine_env(
    *, environ: Mapping[str, str], database: str, redis: str, shared_state: str, config: Path,
    host: str, port: int, jobs: int,
) -> dict[str, str]:
    """The environment variables to set for the engine, on top of ``environ``."""
    otel = {} if any(environ.get(name) for name in OTEL_EXPORT_VARIABLES) else ENGINE_OTEL_OFF
    chosen = {**ENGINE_DEFAULTS, **otel, "N_JOBS_PER_WORKER": str(jobs)}
    return {
        **{key: value for key, value in chosen.items() if key not in environ},
        **ENGINE_FIXED,
        "DATABASE_URL": database,
        "REDIS_URL": redis,
        "BULWARK_CHECKPOINTER_URL": shared_state,
        "AEGRA_CONFIG": str(config),
        "HOST": host,
        "PORT": str(port),
    }


def check_reachable(*, database: str, redis: str) -> None:
    """Connect to Postgres and ping Redis once, so a wrong address or password is one line
    here rather than a traceback from the engine's start."""
    import psycopg
    import redis as redis_client

    try:
        psycopg.connect(database, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot reach Postgres at {mask_url(database)!r}: {reason}") from None
    try:
        with redis_client.Redis.from_url(redis, socket_timeout=5, socket_connect_timeout=5) as client:
            client.ping()
    except redis_client.RedisError as exc:
        raise ConfigError(f"cannot reach Redis at {mask_url(redis)!r}: {exc}") from None


@dataclass(frozen=True)
class Backends:
    """Where the engine keeps its state, checked (see :func:`backends`)."""

    database: str
    """``DATABASE_URL``: Postgres."""
    redis: str
    """``REDIS_URL``: the engine's queue and events."""
    shared_state: str
    """``BULWARK_CHECKPOINTER_URL`` for the replicas: the effect journal and rate limits."""


def backends(settings: Settings, environ: Mapping[str, str]) -> Backends:
    """The engine's backends from ``environ``, validated and reached once.

    Raises :class:`~bulwark.settings.ConfigError` (one line) when the engine is not installed,
    or ``DATABASE_URL`` or ``REDIS_URL`` is missing, malformed or unreachable.
    """
    database = database_url(environ.get("DATABASE_URL"))
    redis = redis_url(environ.get("REDIS_URL"))
    shared_state = shared_state_url(settings, redis)
    if find_spec("aegra_api") is None:
        raise ConfigError(_NOT_INSTALLED)
    check_reachable(database=database, redis=redis)
    return Backends(database=database, redis=redis, shared_state=shared_state)


def serve(settings: Settings, found: Backends, *, host: str, port: int, workdir: Path) -> None:
    """Run the engine on ``host:port`` on ``found`` until it is stopped; its config goes in
    ``workdir``."""
    config = workdir / CONFIG_FILE
    config.write_text(json.dumps(engine_config(), indent=2) + "\n")
    # aegra reads its settings from the environment when its modules load, below.
    os.environ.update(
        engine_env(
            environ=os.environ, database=found.database, redis=found.redis, shared_state=found.shared_state,
            config=config, host=host, port=port, jobs=settings.server_jobs,
        )
    )
    import uvicorn

    from bulwark.observability.log_format import server_log_env

    # aegra logs as Bulwark does until server/auth.py, imported with the routes, takes over.
    log_env = server_log_env(settings, stream=sys.stdout)
    os.environ.update({key: value for key, value in log_env.items() if key not in os.environ})
    uvicorn.run(ENGINE_APP, host=host, port=port, log_level="warning", lifespan="on")
