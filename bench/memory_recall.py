"""Recall latency of the embedded memory store at 1k, 10k and 50k memories.

For each size a fresh embedded store (Qdrant Edge, in a temporary directory, the offline
hashing embedder at 384 dims) is filled with synthetic first-person facts spread over
``--users`` users of one tenant, then timed on what the recall node does per request:

- ``semantic``: one vector search in one user's namespace;
- ``recall``: the recall node's three store routes (semantic, recent, important);

with queries from random users, ``--queries`` times, first as written (new points are
searched exhaustively), then after ``optimize()`` builds the HNSW index (what ``bulwark
ingest`` does; a Qdrant server does it in the background). Embedding the query is included
(it is part of every recall). The table gives p50 and p99 in milliseconds.

    .venv/bin/python bench/memory_recall.py [--sizes 1000,10000,50000] [--users 100]
    .venv/bin/python bench/memory_recall.py --engine local --sizes 5000   # the alternative

``--engine local`` runs the same store on qdrant-client's pure-Python local mode
(``QdrantClient(path=...)``), the embedded engine the default was chosen against.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from langgraph.store.base import PutOp

from bulwark.guardrails.rails import Guardrails
from bulwark.memory.backends import VECTOR, Collection, EdgeCollection, ServerCollection
from bulwark.memory.embeddings import HashingEmbeddings
from bulwark.memory.longterm import IMPORTANCE
from bulwark.memory.store import QdrantStore
from bulwark.nodes.agent import SYSTEM_PROMPT
from bulwark.nodes.recall import Recall
from bulwark.settings import load_settings
from bulwark.tools.policy import CircuitBreaker

SUBJECTS = ["colour", "food", "city", "sport", "band", "book", "drink", "language", "editor", "airline"]
VALUES = ["teal", "sushi", "Lisbon", "tennis", "Radiohead", "Dune", "green tea", "Portuguese", "vim", "KLM"]
TEMPLATES = [
    ("preference", "my favourite {s} is {v}"),
    ("preference", "I really like {v} when it comes to {s}"),
    ("personal", "my {s} at work is {v}"),
    ("statement", "I talked about {v} and {s} on day {n}"),
]
QUERIES = ["what is my favourite {s}?", "do you remember my {s}", "recommend a {s} for me"]


def fact(rng: random.Random, n: int) -> dict[str, object]:
    kind, template = rng.choice(TEMPLATES)
    text = template.format(s=rng.choice(SUBJECTS), v=rng.choice(VALUES), n=n)
    return {"text": f"{text} (#{n})", "kind": kind, "importance": IMPORTANCE[kind]}  # type: ignore[index]


def open_collection(engine: str, path: Path) -> Collection:
    """A 384-dim collection in ``path`` on the embedded engine named."""
    if engine == "edge":
        return EdgeCollection.open(path, dims=384)
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(path))
    client.create_collection("bulwark", {VECTOR: models.VectorParams(size=384, distance=models.Distance.COSINE)})
    breaker = CircuitBreaker(failure_threshold=3, recovery_s=30, clock=time.monotonic)
    return ServerCollection(client, "bulwark", f"local mode at {path}", 384, breaker)


def fill(store: QdrantStore, *, size: int, users: int, rng: random.Random, batch: int = 500) -> float:
    """Put ``size`` facts; returns the seconds it took."""
    started = time.perf_counter()
    for first in range(0, size, batch):
        store.batch([
            PutOp(("memories", "acme", f"user{n % users}"), f"m{n}", fact(rng, n), index=["text"])
            for n in range(first, min(first + batch, size))
        ])
    return time.perf_counter() - started


def timed(call: Callable[[], object], *, times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engine", choices=("edge", "local"), default="edge")
    args = parser.parse_args()

    embed = HashingEmbeddings(dims=384)
    recall = Recall(rails=Guardrails.from_settings(load_settings(guardrails_engine="direct"), system_prompt=SYSTEM_PROMPT), max_tokens=600)
    print("| memories | users | index | semantic p50 | semantic p99 | recall p50 | recall p99 |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        rng = random.Random(args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            collection = open_collection(args.engine, Path(tmp) / "memory")
            store = QdrantStore(collection, index={"dims": 384, "embed": embed, "fields": ["text"]})
            seconds = fill(store, size=size, users=args.users, rng=rng)

            def namespace() -> tuple[str, ...]:
                return ("memories", "acme", f"user{rng.randrange(args.users)}")

            def query() -> str:
                return rng.choice(QUERIES).format(s=rng.choice(SUBJECTS))

            for label in (f"as written ({size / seconds:,.0f}/s)", "optimized"):
                if label == "optimized":
                    started = time.perf_counter()
                    store.optimize()
                    label += f" ({time.perf_counter() - started:.1f} s)"
                timed(lambda: store.search(namespace(), query=query(), limit=8), times=20)  # warm up
                semantic = timed(lambda: store.search(namespace(), query=query(), limit=8), times=args.queries)
                full = timed(lambda: recall.from_store(store, namespace(), query()), times=args.queries)
                print(
                    f"| {size:,} | {args.users} | {label} "
                    f"| {statistics.median(semantic):.2f} | {percentile(semantic, 0.99):.2f} "
                    f"| {statistics.median(full):.2f} | {percentile(full, 0.99):.2f} |",
                    flush=True,
                )
            store.close()

if __name__ == "__main__":
    main()
