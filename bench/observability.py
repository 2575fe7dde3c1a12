"""Per-turn cost of observability: Bulwark with tracing exported, against Bulwark without,
and a bare LangGraph agent, in one process and one run.

Run from the repository root:

    .venv/bin/python bench/observability.py [--n 150]

Six agents take turns (the order rotating every round), after warm-up turns each, on one
SQLite checkpointer, one model object (the deterministic ``offline`` model, which calls the
calculator for "what is 17*23") and one tool set:

* **baseline**: ``langgraph.prebuilt.create_react_agent(model, tools, checkpointer=saver)``;
* **Bulwark, exports off**: ``build_agent`` with the defaults; the Prometheus series are
  recorded (they always are), nothing is exported;
* **OTLP on**: the same graph, its spans through a ``BatchSpanProcessor`` and OTLP/HTTP to a
  local receiver that accepts and drops them, the OTel metric instruments on;
* **LangSmith on**: the same graph traced to LangSmith (a ``langsmith.Client`` with Bulwark's
  anonymizer, sending to the LangSmith-protocol server of ``tests/langsmith_server.py``);
* **both**, and **both with LangSmith sampling 0.1** (``BULWARK_TRACE_SAMPLE_RATE``).

Both receivers run in a child process, so their work is not counted as the agent's.

Both exporters send from their own threads, so what tracing costs comes in two parts, and
the table gives both (target for each: at most 1.10x on the offline model):

* **latency**: p50 / p99 (nearest rank) of the ``ainvoke`` in milliseconds, what a client
  waits. After each traced turn, and outside its timing, both exporters are drained
  (``client.flush()``, ``force_flush()``), so their threads' work does not land in the
  next turn of another agent;
* **CPU**: the process's CPU time per turn (``time.process_time``, every thread), for a
  traced turn including the drain: building, anonymizing, serializing and sending its runs
  and spans. On a busy server that is the throughput it costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import langsmith
from overhead import ANSWER, QUESTION, WARMUP, _load, agents, percentile

from bulwark.graphs.state import RunContext  # noqa: E402
from bulwark.observability import telemetry  # noqa: E402
from bulwark.observability.langsmith import tracing_client  # noqa: E402
from bulwark.settings import load_settings  # noqa: E402

AGENTS = {
    "baseline": "baseline (`create_react_agent`)",
    "off": "Bulwark, exports off",
    "otel": "Bulwark, OTLP on",
    "langsmith": "Bulwark, LangSmith on",
    "both": "Bulwark, LangSmith + OTLP on",
    "sampled": "Bulwark, both, LangSmith sampling 0.1",
}
"""Who takes turns, in the table's order."""
OTEL = {"otel", "both", "sampled"}
LANGSMITH = {"langsmith", "both", "sampled"}


TESTS = Path(__file__).resolve().parent.parent / "tests"
RECEIVERS = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from langsmith_server import LangSmithServer

class Sink(BaseHTTPRequestHandler):  # OTLP/HTTP: accept and drop
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args):
        pass

otlp = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=otlp.serve_forever, daemon=True).start()
with LangSmithServer() as ls:
    print(ls.url, f"http://127.0.0.1:{otlp.server_address[1]}", flush=True)
    sys.stdin.read()  # until the benchmark closes it
    print(sum(run["name"] == "bulwark-agent" for run in ls.runs.values()), flush=True)
"""


@contextmanager
def receivers() -> Iterator[tuple[str, str, list[int]]]:
    """``(LangSmith URL, OTLP endpoint, traces)`` of the receivers' child process;
    ``traces`` gets the number of turns LangSmith received when the block ends."""
    child = subprocess.Popen([sys.executable, "-c", RECEIVERS], cwd=TESTS, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    traces: list[int] = []
    try:
        langsmith_url, otlp_url = child.stdout.readline().split()
        yield langsmith_url, otlp_url, traces
    finally:
        child.stdin.close()
        traces.append(int(child.stdout.readline() or 0))
        child.wait(timeout=30)


async def run(n: int) -> tuple[dict[str, list[int]], dict[str, list[float]], int]:
    """Latency samples (ns) and CPU per turn (ms) by agent, and the turns LangSmith got."""
    with tempfile.TemporaryDirectory(prefix="bulwark-observability-") as tmp, receivers() as (ls_url, otlp, traces):
        workdir = Path(tmp)
        settings = load_settings(data_dir=workdir / "data", memory_url="memory://")
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp  # read by the exporters
        exporting = telemetry.from_env()
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        quiet = telemetry.from_env()
        clients = {
            "full": tracing_client(settings, api_url=ls_url, api_key="bench"),
            "sampled": tracing_client(settings.model_copy(update={"trace_sample_rate": 0.1}), api_url=ls_url, api_key="bench"),
        }
        context = RunContext(user_id="bench")
        counter = 0
        samples: dict[str, list[int]] = {name: [] for name in AGENTS}
        cpu_ms: dict[str, list[float]] = {name: [] for name in AGENTS}

        def drain() -> None:
            for client in clients.values():
                client.flush()
            assert exporting.tracer_provider is not None
            exporting.tracer_provider.force_flush()

        try:
            async with agents(settings, f"sqlite:///{workdir / 'cp.db'}") as (bulwark, baseline, _):

                async def turn(name: str) -> None:
                    nonlocal counter
                    counter += 1
                    config = {"configurable": {"thread_id": f"{name}-{counter}"}}
                    inputs = {"messages": [("user", QUESTION)]}
                    telemetry.install(exporting if name in OTEL else quiet)
                    client = clients["sampled" if name == "sampled" else "full"]
                    cpu = time.process_time()
                    t0 = time.perf_counter_ns()
                    if name == "baseline":
                        result = await baseline.ainvoke(inputs, config)
                    else:
                        with langsmith.tracing_context(enabled=name in LANGSMITH, client=client, project_name="bench"):
                            result = await bulwark.ainvoke(inputs, config, context=context)
                    samples[name].append(time.perf_counter_ns() - t0)
                    if name in OTEL | LANGSMITH:
                        await asyncio.to_thread(drain)
                    cpu_ms[name].append((time.process_time() - cpu) * 1000)
                    if ANSWER not in str(result["messages"][-1].content):
                        raise AssertionError(f"{name} answered {result['messages'][-1].content!r}")

                order = list(AGENTS)
                for _ in range(WARMUP):
                    for name in order:
                        await turn(name)
                gc.collect()
                for values in (*samples.values(), *cpu_ms.values()):
                    values.clear()
                for i in range(n):
                    for name in order[i % len(order):] + order[: i % len(order)]:
                        await turn(name)
        finally:
            telemetry.install(None)
            exporting.shutdown()
            for client in clients.values():
                client.flush()
    if not traces or traces[0] < WARMUP + n:
        raise AssertionError(f"the LangSmith-protocol server got {traces} turns; at least {WARMUP + n} were traced")
    return samples, cpu_ms, traces[0]


def table(samples: dict[str, list[int]], cpu_ms: dict[str, list[float]], n: int, load_before: str, traced: int) -> str:
    """The Markdown report."""
    p = {name: (percentile(sorted(v), 0.5), percentile(sorted(v), 0.99)) for name, v in samples.items()}
    cpu = {name: sum(values) / len(values) for name, values in cpu_ms.items()}
    rows = []
    for name, label in AGENTS.items():
        vs_off = "" if name in {"baseline", "off"} else (
            f"**{p[name][0] / p['off'][0]:.2f}x / {p[name][1] / p['off'][1]:.2f}x / {cpu[name] / cpu['off']:.2f}x**"
        )
        vs_base = "" if name == "baseline" else f"{p[name][0] / p['baseline'][0]:.2f}x / {p[name][1] / p['baseline'][1]:.2f}x"
        rows.append(f"| {label} | {p[name][0]:.1f} | {p[name][1]:.1f} | {cpu[name]:.1f} | {vs_off} | {vs_base} |")
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"Observability overhead, {date}, {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, langgraph {metadata.version('langgraph')}, langsmith "
        f"{metadata.version('langsmith')}, opentelemetry-sdk {metadata.version('opentelemetry-sdk')}; "
        f"load average {load_before} before, {_load()} after.",
        f'N = {n} turns per agent ("{QUESTION}": model -> calculator -> model), interleaved, after '
        f"{WARMUP} warm-up each; one `ainvoke` per turn on a fresh thread, SQLite checkpointer; "
        f"{traced} turns reached the LangSmith-protocol server.",
        "",
        "| agent | p50 ms | p99 ms | CPU ms / turn | / exports off (p50 / p99 / CPU) | / baseline (p50 / p99) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=150, help="timed turns per agent (default 150)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    load_before = _load()
    print(f"{WARMUP} warm-up + {args.n} turns for each of {', '.join(AGENTS)} ...", file=sys.stderr)
    samples, cpu_ms, traced = asyncio.run(run(args.n))
    print(table(samples, cpu_ms, args.n, load_before, traced), end="")


if __name__ == "__main__":
    main()
