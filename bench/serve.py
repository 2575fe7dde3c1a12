"""Served throughput and latency: Bulwark against a bare ``create_react_agent`` on the same engine.

Run from the repository root (about 3 minutes with the defaults on 2 cores):

    .venv/bin/python bench/serve.py [--concurrency 1,8,32,64] [--seconds 10] [--api wait]
                                    [--delay-ms 200] [--jobs 32] [--engine dev] [--out FILE]
    .venv/bin/python bench/serve.py --api wait,stream          # runs.stream too (twice as long)
    .venv/bin/python bench/serve.py --bulwark-env BULWARK_GUARDRAILS_ENGINE=direct

What runs:

* **model** -- a local OpenAI-protocol server in this process (``tests/openai_server.py``'s
  ``ScriptedOpenAIServer``), answering every chat completion with the same short text after
  ``--delay-ms`` (200 ms): one model call per turn for both agents, no tool call. It counts the
  completions it is answering at once; the table gives the peak at each level.
* **bare** -- ``langgraph.prebuilt.create_react_agent(ChatOpenAI(...), [echo])`` (one trivial
  tool, never called), ``ChatOpenAI`` built as Bulwark's ``models/factory.py`` builds it, served by
  ``langgraph_api.cli.run_server`` -- the engine ``bulwark serve`` runs -- from a module generated
  in a temporary directory, with the same ``n_jobs_per_worker`` (``--jobs``) and the engine's own
  checkpointer; no auth, no custom routes.
* **Bulwark** -- ``bulwark serve`` with ``BULWARK_MODEL=openai:gpt-bench`` and
  ``BULWARK_OPENAI_BASE_URL`` at the local model, ``BULWARK_SERVER_JOBS=--jobs``, a fresh
  ``BULWARK_DATA_DIR`` (so its defaults: SQLite checkpoints, the embedded Qdrant memory store,
  NeMo rails, the audit log), ``BULWARK_AUTH=none`` on loopback, and the rate limits off
  (``BULWARK_RATE_LIMIT_*=0``: with the defaults one credential may start 120 runs a minute).

``--engine dev`` (the default) is the in-memory runtime ``bulwark serve`` runs today.
``--engine prod`` is the self-hosted engine (aegra, from ``.venv-prod``: ``make prod-install``):
``.venv-prod/bin/bulwark serve --prod`` for Bulwark, and aegra's app with an ``aegra.json`` naming
only the bare graph, with the same engine settings, for the bare agent; the script starts a
throwaway PostgreSQL (one database per graph) and a Valkey per graph for them
(``tests/postgres_server.py``, ``tests/redis_servers.py``; see :func:`prod_specs`). Server CPU
there is the server process alone, not PostgreSQL's or Valkey's.

Both servers are started at once (offline: no analytics, no version check, no tracing), each is
warmed up with a few turns, then the levels run alternately on the two servers (bare, Bulwark,
bare, Bulwark, ...) so that machine noise hits both alike. At a level of N, N clients (one
``langgraph_sdk`` client each) each create one thread and do turns on it back to back --
``client.runs.wait(...)`` or, for ``--api stream``, ``client.runs.stream(...,
stream_mode="values")`` consumed to its end -- for ``--ramp`` seconds (not measured) and then
``--seconds`` seconds. Throughput is the turns done inside the measured window divided by its
length, a turn that straddles an edge counted by the share of it inside (the in-memory queue
releases runs in batches, so whole turns end in bursts); p50 / p99 (nearest rank, milliseconds)
are the latencies, from the SDK call to the answer, of the turns whose midpoint is inside the
window. "p50 - model delay" subtracts the model's delay from the p50 at one client: the time a
turn spends outside the model. Server CPU per turn is the server process's user + system time
over the window (``/proc``) divided by the turns done in it. Each answer is checked. Both
engines poll their run queue (the in-memory runtime sleeps 0.5 s when a poll found no run, and
that poll takes only runs created before its sleep began: a new run waits 0.5-1 s; aegra's
``runs.wait`` looks for the run's end every 2 s), which both pay alike; the 1-client rows show
it most.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from openai_server import Reply, ScriptedOpenAIServer  # noqa: E402  (tests/ is not a package)

BIN = Path(sys.executable).parent
PROD_BIN = REPO / ".venv-prod" / "bin"
"""The self-hosted engine's environment (``make prod-install``), for ``--engine prod``."""
GRAPHS = ("bare", "bulwark")
LABELS = {"bare": "bare", "bulwark": "Bulwark"}
APIS = ("wait", "stream")
ANSWER = "Here is a short answer to your question."
MODEL_NAME = "gpt-bench"
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "NEMO_GUARDRAILS_NO_USAGE_STATS": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
WARMUP_TURNS = 5

BARE_MODULE = '''\
"""The bare agent: create_react_agent with ChatOpenAI at the local model, one trivial tool."""

import os

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent


@tool
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


model = ChatOpenAI(  # as bulwark.models.factory builds an openai: model
    model=os.environ["BENCH_MODEL"],
    base_url=os.environ["BENCH_OPENAI_BASE_URL"],
    api_key="sk-bench",
    timeout=60.0,
    max_retries=2,
    stream_usage=True,
)
graph = create_react_agent(model, [echo], name="bare-agent")
'''

BARE_LAUNCHER = '''\
import json, sys
from langgraph_api.cli import run_server

port, module, jobs, env = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
run_server("127.0.0.1", port, False, {"agent": f"{module}:graph"}, open_browser=False, env=env,
           server_level="WARNING", n_jobs_per_worker=jobs)
'''


class ModelServer(ScriptedOpenAIServer):
    """The scripted server with an endless script: every completion gets the same reply.

    Overrides ``_record`` so that nothing is kept per request (a run makes thousands).
    """

    def __init__(self, reply: Reply, *, delay_s: float) -> None:
        super().__init__((), delay_s=delay_s)
        self.reply = reply
        self.calls = 0

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Reply | None]:
        with self._lock:
            self.calls += 1
            return self.calls, self.reply

    def reset_peak(self) -> None:
        with self._lock:
            self.max_in_flight = self.in_flight


@dataclass
class Level:
    """One measured level on one server: every turn as (start, end) in ``perf_counter`` seconds."""

    graph: str
    api: str
    concurrency: int
    window: tuple[float, float]
    turns: list[tuple[float, float]] = field(default_factory=list)
    peak_in_flight: int = 0
    cpu_s: float = math.nan

    @property
    def seconds(self) -> float:
        return self.window[1] - self.window[0]

    @property
    def throughput(self) -> float:
        """Turns per second inside the window, each turn counted by the share of it inside.

        Runs leave the in-memory queue in batches (it polls every 0.5 s), so turns end in bursts;
        counting only whole turns that end inside the window would jump by a batch at a time.
        """
        w0, w1 = self.window
        done = sum((min(e, w1) - max(s, w0)) / (e - s) for s, e in self.turns if e > w0 and s < w1)
        return done / self.seconds

    @property
    def latencies_ms(self) -> list[float]:
        """Latencies of the turns whose midpoint falls inside the window, sorted."""
        w0, w1 = self.window
        return sorted(1000 * (e - s) for s, e in self.turns if w0 <= (s + e) / 2 <= w1)

    @property
    def cpu_ms_per_turn(self) -> float:
        turns = self.throughput * self.seconds
        return 1000 * self.cpu_s / turns if turns else math.nan

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds (NaN without samples)."""
        s = self.latencies_ms
        if not s:
            return math.nan
        return s[max(1, math.ceil(q * len(s))) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    return env | OFFLINE_ENV | extra


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: command, environment, working directory, port, readiness path."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready: str = "/ok"


def _bulwark_env(workdir: Path, model_url: str, jobs: int, extra: dict[str, str]) -> dict[str, str]:
    return _base_env(
        BULWARK_DATA_DIR=str(workdir / "data"),
        BULWARK_MODEL=f"openai:{MODEL_NAME}",
        BULWARK_OPENAI_BASE_URL=model_url,
        BULWARK_OPENAI_API_KEY="sk-bench",
        BULWARK_AUTH="none",
        BULWARK_SERVER_JOBS=str(jobs),
        BULWARK_RATE_LIMIT_REQUESTS_PER_MINUTE="0",
        BULWARK_RATE_LIMIT_TENANT_REQUESTS_PER_MINUTE="0",
        BULWARK_RATE_LIMIT_RUNS_PER_MINUTE="0",
    ) | extra


def _bare_dir(workdir: Path) -> Path:
    bare_dir = workdir / "bare"
    bare_dir.mkdir()
    (bare_dir / "bare_agent.py").write_text(BARE_MODULE)
    return bare_dir


def dev_specs(workdir: Path, model_url: str, jobs: int, bulwark_env: dict[str, str]) -> dict[str, ServerSpec]:
    """The in-memory runtime: ``bulwark serve``, and ``run_server`` for the bare agent."""
    bare_dir = _bare_dir(workdir)
    (bare_dir / "launch.py").write_text(BARE_LAUNCHER)
    bare_port, bulwark_port = free_port(), free_port()
    bulwark_dir = workdir / "bulwark"
    bulwark_dir.mkdir()
    return {
        "bare": ServerSpec(
            [sys.executable, "launch.py", str(bare_port), str(bare_dir / "bare_agent.py"), str(jobs),
             json.dumps(OFFLINE_ENV)],
            _base_env(BENCH_MODEL=MODEL_NAME, BENCH_OPENAI_BASE_URL=model_url),
            bare_dir, bare_port,
        ),
        "bulwark": ServerSpec(
            [str(BIN / "bulwark"), "serve", "--port", str(bulwark_port)],
            _bulwark_env(bulwark_dir, model_url, jobs, bulwark_env), bulwark_dir, bulwark_port,
        ),
    }


@contextlib.contextmanager
def prod_specs(workdir: Path, model_url: str, jobs: int, bulwark_env: dict[str, str]) -> Iterator[dict[str, ServerSpec]]:
    """The self-hosted engine (aegra, from ``.venv-prod``) for both graphs.

    One throwaway PostgreSQL (``tests/postgres_server.py``) with a database per graph, and a
    Valkey per graph (``tests/redis_servers.py``; Redis pub/sub channels are not per database).
    Bulwark: ``.venv-prod/bin/bulwark serve --prod`` with ``DATABASE_URL`` and ``REDIS_URL``. The
    bare agent: aegra's app under uvicorn, with an ``aegra.json`` naming only the graph (no auth,
    no routes) and the engine settings ``bulwark serve --prod`` uses (``bulwark.server.engine``).
    """
    if not (PROD_BIN / "bulwark").exists():
        raise SystemExit(f"bench/serve.py: --engine prod needs {PROD_BIN.parent} (make prod-install)")
    usage = subprocess.run([str(PROD_BIN / "bulwark"), "serve", "--help"], capture_output=True, text=True,
                           env=_base_env()).stdout
    if "--prod" not in usage:
        raise SystemExit("bench/serve.py: --engine prod needs `bulwark serve --prod`, which this CLI lacks")
    import postgres_server
    from redis_servers import ValkeyTestServer

    from bulwark.server.engine import ENGINE_APP, ENGINE_DEFAULTS, ENGINE_FIXED, ENGINE_OTEL_OFF

    reason = postgres_server.unavailable_reason()
    if reason:
        raise SystemExit(f"bench/serve.py: --engine prod: {reason}")
    postgres = postgres_server.PostgresServer(workdir / "postgres").start()
    valkeys = {g: ValkeyTestServer(free_port(), workdir / f"redis-{g}") for g in GRAPHS}
    try:
        postgres.psql("CREATE DATABASE bare", database="postgres", check=True)
        for server in valkeys.values():
            server.start()
        database = {"bare": postgres.url.rsplit("/", 1)[0] + "/bare", "bulwark": postgres.url}
        bare_dir = _bare_dir(workdir)
        config = bare_dir / "aegra.json"
        config.write_text(json.dumps({"graphs": {"agent": f"{bare_dir / 'bare_agent.py'}:graph"}}) + "\n")
        bare_port, bulwark_port = free_port(), free_port()
        bulwark_dir = workdir / "bulwark"
        bulwark_dir.mkdir()
        launch = ("import sys, uvicorn; uvicorn.run(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]), "
                  "log_level='warning', lifespan='on')")
        yield {
            "bare": ServerSpec(
                [str(PROD_BIN / "python"), "-c", launch, ENGINE_APP, str(bare_port)],
                _base_env(**ENGINE_DEFAULTS) | ENGINE_FIXED | ENGINE_OTEL_OFF | {
                    "BENCH_MODEL": MODEL_NAME, "BENCH_OPENAI_BASE_URL": model_url,
                    "DATABASE_URL": database["bare"], "REDIS_URL": valkeys["bare"].url,
                    "AEGRA_CONFIG": str(config), "N_JOBS_PER_WORKER": str(jobs),
                    "HOST": "127.0.0.1", "PORT": str(bare_port),
                },
                bare_dir, bare_port, ready="/health",
            ),
            "bulwark": ServerSpec(
                [str(PROD_BIN / "bulwark"), "serve", "--prod", "--port", str(bulwark_port)],
                _bulwark_env(bulwark_dir, model_url, jobs, bulwark_env)
                | {"DATABASE_URL": database["bulwark"], "REDIS_URL": valkeys["bulwark"].url},
                bulwark_dir, bulwark_port,
            ),
        }
    finally:
        for server in valkeys.values():
            server.stop()
        postgres.stop()


@contextlib.contextmanager
def engine_specs(engine: str, workdir: Path, model_url: str, jobs: int,
                 bulwark_env: dict[str, str]) -> Iterator[dict[str, ServerSpec]]:
    """``{graph: ServerSpec}`` for ``engine`` (``dev`` or ``prod``), with its backends running."""
    if engine == "prod":
        with prod_specs(workdir, model_url, jobs, bulwark_env) as specs:
            yield specs
    else:
        yield dev_specs(workdir, model_url, jobs, bulwark_env)


@contextlib.contextmanager
def servers(specs: dict[str, ServerSpec]) -> Iterator[dict[str, tuple[str, int]]]:
    """Start every server at once; yield ``{graph: (url, pid)}`` when all are ready; stop them."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, spec in specs.items():
            with (spec.cwd / "server.log").open("wb") as out:
                procs[name] = subprocess.Popen(spec.command, cwd=spec.cwd, env=spec.env, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        urls = {name: f"http://127.0.0.1:{spec.port}" for name, spec in specs.items()}
        deadline = time.monotonic() + 180
        pending = set(urls)
        while pending:
            for name in sorted(pending):
                if procs[name].poll() is not None:
                    log = (specs[name].cwd / "server.log").read_text()[-3000:]
                    raise SystemExit(f"{name} server exited with {procs[name].returncode}:\n{log}")
                try:
                    with urllib.request.urlopen(urls[name] + specs[name].ready, timeout=2) as response:
                        if response.status == 200:
                            pending.discard(name)
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise SystemExit(f"servers not ready after 180 s: {sorted(pending)}")
            if pending:
                time.sleep(0.3)
        yield {name: (urls[name], procs[name].pid) for name in urls}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _question(client_no: int, turn: int) -> dict[str, Any]:
    text = f"Client {client_no} asks, turn {turn}: what is a good name for a small boat?"
    return {"messages": [{"role": "user", "content": text}]}


def _check(values: Any, graph: str) -> None:
    messages = values.get("messages") if isinstance(values, dict) else None
    content = str(messages[-1].get("content")) if messages else repr(values)
    if ANSWER not in content:
        raise AssertionError(f"{graph} answered {content[:300]!r}")


async def _turn(client: Any, thread_id: str, api: str, inputs: dict[str, Any]) -> Any:
    if api == "wait":
        return await client.runs.wait(thread_id, "agent", input=inputs)
    last: Any = None
    async for part in client.runs.stream(thread_id, "agent", input=inputs, stream_mode="values"):
        if part.event == "values":
            last = part.data
        elif part.event == "error":
            raise AssertionError(f"stream error: {part.data}")
    return last


async def warm_up(url: str, graph: str) -> None:
    async with get_client(url=url, api_key=None) as client:
        thread = await client.threads.create()
        for i in range(WARMUP_TURNS):
            _check(await _turn(client, thread["thread_id"], APIS[i % 2], _question(0, i)), graph)


async def run_level(url: str, pid: int, graph: str, api: str, n: int, ramp: float, seconds: float,
                    model: ModelServer) -> Level:
    clients = [get_client(url=url, api_key=None) for _ in range(n)]
    threads = await asyncio.gather(*(c.threads.create() for c in clients))
    start = time.perf_counter()
    level = Level(graph=graph, api=api, concurrency=n, window=(start + ramp, start + ramp + seconds))

    async def user(i: int) -> None:
        turn = 0
        while time.perf_counter() < level.window[1]:
            t0 = time.perf_counter()
            values = await _turn(clients[i], threads[i]["thread_id"], api, _question(i, turn))
            level.turns.append((t0, time.perf_counter()))
            _check(values, graph)
            turn += 1

    async def peak() -> None:
        await asyncio.sleep(ramp)
        model.reset_peak()
        cpu = cpu_seconds(pid)
        await asyncio.sleep(seconds)
        level.peak_in_flight = model.max_in_flight
        level.cpu_s = cpu_seconds(pid) - cpu

    try:
        await asyncio.gather(peak(), *(user(i) for i in range(n)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return level


async def main_async(args: argparse.Namespace) -> str:
    load_before = _load()
    graphs = [g for g in GRAPHS if g in args.graphs]
    results: list[Level] = []
    reply = Reply(content=ANSWER, prompt_tokens=40, completion_tokens=9)
    with tempfile.TemporaryDirectory(prefix="bulwark-serve-bench-") as tmp, \
            ModelServer(reply, delay_s=args.delay_ms / 1000) as model, contextlib.ExitStack() as stack:
        specs = stack.enter_context(
            engine_specs(args.engine, Path(tmp), model.base_url, args.jobs, args.bulwark_env))
        specs = {g: specs[g] for g in graphs}
        print(f"starting {', '.join(graphs)} ({args.engine} engine) ...", file=sys.stderr)
        t_start = time.monotonic()
        with servers(specs) as running:
            print(f"  ready after {time.monotonic() - t_start:.0f} s; warming up", file=sys.stderr)
            for g in graphs:
                await warm_up(running[g][0], g)
            for api in args.api:
                for n in args.concurrency:
                    for g in graphs:
                        level = await run_level(*running[g], g, api, n, args.ramp, args.seconds, model)
                        results.append(level)
                        print(
                            f"  {api:6} c={n:<3} {g:8} {level.throughput:6.2f} turns/s "
                            f"({len(level.latencies_ms)} timed)  "
                            f"p50 {level.percentile(0.5):7.0f}  p99 {level.percentile(0.99):7.0f} ms  "
                            f"model in flight <= {level.peak_in_flight}  "
                            f"server CPU {level.cpu_ms_per_turn:.0f} ms/turn",
                            file=sys.stderr,
                        )
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for g in graphs:
                    shutil.copy(specs[g].cwd / "server.log", args.keep_logs / f"{g}-server.log")
    return report(args, results, graphs, load_before)


def engine_versions(engine: str) -> str:
    """The serving packages' versions (``.venv-prod``'s for ``prod``)."""
    if engine == "dev":
        return (f"langgraph {metadata.version('langgraph')}, langgraph-api {metadata.version('langgraph-api')}, "
                f"langgraph-runtime-inmem {metadata.version('langgraph-runtime-inmem')}")
    code = ("import importlib.metadata as m, platform; "
            "print(f\"aegra-api {m.version('aegra-api')}, langgraph {m.version('langgraph')} "
            "on Python {platform.python_version()}\")")
    return subprocess.run([str(PROD_BIN / "python"), "-c", code], capture_output=True, text=True).stdout.strip()


def report(args: argparse.Namespace, results: list[Level], graphs: list[str], load_before: str) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Served throughput, {date}, {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, {engine_versions(args.engine)}; "
        f"load average {load_before} before, {_load()} after.",
        f"Engine `{args.engine}`, n_jobs_per_worker {args.jobs}; model: local OpenAI-protocol server, "
        f"{args.delay_ms:g} ms per call, one call per turn; each client does turns back to back on its "
        f"own thread, {args.ramp:g} s ramp then {args.seconds:g} s measured per level"
        + ("; Bulwark with " + ", ".join(f"`{k}={v}`" for k, v in args.bulwark_env.items())
           if args.bulwark_env else "") + ".",
        "",
    ]
    by = {(r.graph, r.api, r.concurrency): r for r in results}
    both = graphs == list(GRAPHS)
    for api in args.api:
        call = "runs.wait" if api == "wait" else 'runs.stream(stream_mode="values")'
        lines.append(f"`client.{call}`:")
        lines.append("")
        head = ["clients"]
        for g in graphs:
            head += [f"{LABELS[g]} turns/s", f"{LABELS[g]} p50", f"{LABELS[g]} p99"]
        if both:
            head += ["throughput Bulwark/bare"]
        head += ["model calls in flight (" + " / ".join(LABELS[g] for g in graphs) + ")"]
        head += ["server CPU ms/turn (" + " / ".join(LABELS[g] for g in graphs) + ")"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for n in args.concurrency:
            row = [str(n)]
            for g in graphs:
                r = by[(g, api, n)]
                row += [f"{r.throughput:.2f}", f"{r.percentile(0.5):.0f}", f"{r.percentile(0.99):.0f}"]
            if both:
                bare, bul = by[("bare", api, n)], by[("bulwark", api, n)]
                ratio = bul.throughput / bare.throughput if bare.throughput else math.nan
                row += [f"**{ratio:.2f}x**"]
            row += [" / ".join(str(by[(g, api, n)].peak_in_flight) for g in graphs)]
            row += [" / ".join(f"{by[(g, api, n)].cpu_ms_per_turn:.0f}" for g in graphs)]
            lines.append("| " + " | ".join(row) + " |")
        if 1 in args.concurrency:
            parts = [
                f"{LABELS[g]} {by[(g, api, 1)].percentile(0.5) - args.delay_ms:.0f} ms"
                for g in graphs
            ]
            lines += ["", f"p50 - model delay at 1 client: {', '.join(parts)}."]
        lines.append("")
    lines.append("Latencies in milliseconds per turn (nearest rank), from the SDK call to the answer.")
    return "\n".join(lines) + "\n"


def _levels(value: str) -> list[int]:
    levels = [int(v) for v in value.split(",") if v.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return levels


def _apis(value: str) -> list[str]:
    apis = [v.strip() for v in value.split(",") if v.strip()]
    if not apis or set(apis) - set(APIS):
        raise argparse.ArgumentTypeError(f"a comma-separated subset of {','.join(APIS)}")
    return apis


def _assignment(value: str) -> tuple[str, str]:
    name, sep, text = value.partition("=")
    if not sep or not name.startswith("BULWARK_"):
        raise argparse.ArgumentTypeError("NAME=VALUE with a BULWARK_ name")
    return name, text


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__.split("\n\n")[0]))
    parser.add_argument("--concurrency", type=_levels, default=[1, 8, 32, 64],
                        help="client counts, comma-separated (default 1,8,32,64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per level (default 10)")
    parser.add_argument("--ramp", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    parser.add_argument("--api", type=_apis, default=["wait"],
                        help="runs.wait and/or runs.stream, comma-separated (default wait)")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="model delay per call (default 200)")
    parser.add_argument("--jobs", type=int, default=32,
                        help="runs a server executes at once: n_jobs_per_worker / BULWARK_SERVER_JOBS (32)")
    parser.add_argument("--engine", choices=("dev", "prod"), default="dev",
                        help="dev: the in-memory runtime (default); prod: bulwark serve --prod")
    parser.add_argument("--graphs", type=lambda v: [g.strip() for g in v.split(",")],
                        default=list(GRAPHS), help="subset of bare,bulwark (default both)")
    parser.add_argument("--bulwark-env", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for bulwark serve, e.g. BULWARK_GUARDRAILS_ENGINE=direct (repeatable)")
    parser.add_argument("--keep-logs", type=Path, help="copy the server logs into this directory")
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args()
    args.bulwark_env = dict(args.bulwark_env)
    if args.seconds <= 0 or args.ramp < 0 or args.jobs < 1:
        parser.error("--seconds must be positive, --ramp not negative, --jobs at least 1")
    if not set(args.graphs) <= set(GRAPHS):
        parser.error("--graphs: a subset of bare,bulwark")
    table = asyncio.run(main_async(args))
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
