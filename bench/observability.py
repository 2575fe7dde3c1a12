"""Per-turn cost of observability: Bulwark with tracing exported, against Bulwark without,
and a bare LangGraph agent, in one process and one run.

Run from the repository root:

    .venv/bin/python bench/observability.py [--n 150]

Three agents take turns (A B C A B C ..., the order rotating every round), after warm-up
turns each, on one SQLite checkpointer, one model object (the deterministic ``offline``
model, which calls the calculator for "what is 17*23") and one tool set:

* **baseline**: ``langgraph.prebuilt.create_react_agent(model, tools, checkpointer=saver)``;
* **Bulwark, exports off**: ``build_agent`` with the defaults; the Prometheus series are
  recorded (they always are), nothing is exported;
* **Bulwark, exports on**: the same graph, each turn traced to LangSmith (a
  ``langsmith.Client`` with Bulwark's anonymizer, sending to the local LangSmith-protocol
  server of ``tests/langsmith_server.py``) and to OpenTelemetry (spans through a
  ``BatchSpanProcessor`` and OTLP/HTTP to a local receiver that accepts and drops them, and
  the metric instruments on).

The table gives p50 / p99 (nearest rank) in milliseconds and the ratios: exports on / off is
the overhead of tracing (target: at most 1.10 on the offline model), Bulwark / baseline the
framework's. Both exporters send from their own threads, so a turn pays for building and
queueing runs and spans, and the anonymizer, not for the network.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import langsmith

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from langsmith_server import LangSmithServer  # noqa: E402  (tests/ is not a package)
from overhead import ANSWER, QUESTION, WARMUP, _load, agents, percentile  # noqa: E402

from bulwark.graphs.state import RunContext  # noqa: E402
from bulwark.observability import telemetry  # noqa: E402
from bulwark.observability.langsmith import tracing_client  # noqa: E402
from bulwark.settings import load_settings  # noqa: E402

AGENTS = ("baseline", "off", "on")


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports (``POST /v1/traces``, ``/v1/metrics``) and drops them."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass


@contextmanager
def otlp_sink() -> Iterator[str]:
    """A local OTLP/HTTP endpoint, for the length of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def run(n: int) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory(prefix="bulwark-observability-") as tmp, LangSmithServer() as ls, otlp_sink() as otlp:
        workdir = Path(tmp)
        settings = load_settings(data_dir=workdir / "data", memory_url="memory://")
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp  # read by the exporters
        exporting = telemetry.from_env()
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        quiet = telemetry.from_env()
        client = tracing_client(settings, api_url=ls.url, api_key="bench")
        context = RunContext(user_id="bench")
        counter = 0
        try:
            async with agents(settings, f"sqlite:///{workdir / 'cp.db'}") as (bulwark, baseline, _):

                async def turn(name: str) -> int:
                    nonlocal counter
                    counter += 1
                    config = {"configurable": {"thread_id": f"{name}-{counter}"}}
                    inputs = {"messages": [("user", QUESTION)]}
                    telemetry.install(exporting if name == "on" else quiet)
                    t0 = time.perf_counter_ns()
                    if name == "baseline":
                        result = await baseline.ainvoke(inputs, config)
                    else:
                        with langsmith.tracing_context(enabled=name == "on", client=client, project_name="bench"):
                            result = await bulwark.ainvoke(inputs, config, context=context)
                    elapsed = time.perf_counter_ns() - t0
                    if ANSWER not in str(result["messages"][-1].content):
                        raise AssertionError(f"{name} answered {result['messages'][-1].content!r}")
                    return elapsed

                for _ in range(WARMUP):
                    for name in AGENTS:
                        await turn(name)
                gc.collect()
                samples: dict[str, list[int]] = {name: [] for name in AGENTS}
                for i in range(n):
                    for name in AGENTS[i % 3 :] + AGENTS[: i % 3]:
                        samples[name].append(await turn(name))
        finally:
            telemetry.install(None)
            exporting.shutdown()
            client.flush()
        if not any(run_["name"] == "bulwark-agent" for run_ in ls.runs.values()):
            raise AssertionError("no trace reached the LangSmith-protocol server: the 'on' agent traced nothing")
        return samples


def table(samples: dict[str, list[int]], n: int, load_before: str) -> str:
    s = {name: sorted(values) for name, values in samples.items()}
    p = {name: (percentile(values, 0.5), percentile(values, 0.99)) for name, values in s.items()}
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| baseline (`create_react_agent`) | {p['baseline'][0]:.1f} | {p['baseline'][1]:.1f} | | |",
        f"| Bulwark, exports off | {p['off'][0]:.1f} | {p['off'][1]:.1f} | | "
        f"{p['off'][0] / p['baseline'][0]:.2f}x / {p['off'][1] / p['baseline'][1]:.2f}x |",
        f"| Bulwark, LangSmith + OTLP on | {p['on'][0]:.1f} | {p['on'][1]:.1f} | "
        f"**{p['on'][0] / p['off'][0]:.2f}x / {p['on'][1] / p['off'][1]:.2f}x** | "
        f"{p['on'][0] / p['baseline'][0]:.2f}x / {p['on'][1] / p['baseline'][1]:.2f}x |",
    ]
    return "\n".join([
        f"Observability overhead, {date}, {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, langgraph {metadata.version('langgraph')}, langsmith "
        f"{metadata.version('langsmith')}, opentelemetry-sdk {metadata.version('opentelemetry-sdk')}; "
        f"load average {load_before} before, {_load()} after.",
        f'N = {n} turns per agent ("{QUESTION}": model -> calculator -> model), interleaved, after '
        f"{WARMUP} warm-up each; one `ainvoke` per turn on a fresh thread, SQLite checkpointer.",
        "",
        "| agent | p50 ms | p99 ms | on / off (p50 / p99) | / baseline (p50 / p99) |",
        "|---|---:|---:|---:|---:|",
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
    print(table(asyncio.run(run(args.n)), args.n, load_before), end="")


if __name__ == "__main__":
    main()
