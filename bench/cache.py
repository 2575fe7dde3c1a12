"""Answer cache benchmark: hit rate, false hits and latency of each level on the cache data sets.

Run from the repository root:

    .venv/bin/python bench/cache.py [--n 5] [--json]

The workload comes from ``evals/datasets/cache_paraphrases.jsonl`` and
``cache_near_miss.jsonl``. Every distinct question of the two files gets an answer of its own;
each replay (``--n`` of them, after one untimed warm-up replay) runs as a new tenant, so every
level starts empty, through ``AnswerCache(mode="semantic")`` with ``l2`` on a Valkey the script
starts (``tests/redis_servers.py``, on a free loopback port, in a temporary directory) and the
semantic level on an embedded ``QdrantStore`` (Qdrant Edge, the default hash embedder at 384
dims):

1. ``store``: replica A stores every question's answer (``astore``: L1, Redis, the store);
2. ``repeat``: replica A looks every question up again, typed differently (case, spaces,
   trailing punctuation): served by L1;
3. ``replica``: replica B (its own empty L1, the same Redis and store) looks every question
   up: served by Redis;
4. ``paraphrase``: replica C looks up every paraphrase: served by the semantic level or a
   miss;
5. ``near miss``: replica D looks up every near miss, which must miss everywhere.

A false hit is an answer served for another question than the one asked (any hit in the
near-miss phase). Latency is one ``await cache.alookup(...)`` (the server's path) timed with
``time.perf_counter_ns``, one lookup at a time; p50 / p99 are nearest-rank, in microseconds,
by the level that answered (``miss``: every level consulted, nothing found). A second table
gives, for the pairs alone (no store), how many reach the 0.95 threshold with the request
text as typed and as embedded (:func:`bulwark.models.cache.embedding_text`), and how many of
those the false-hit guard passes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from redis_servers import ValkeyTestServer, free_port  # noqa: E402  (tests/ is not a package)

from bulwark.memory.backends import EdgeCollection  # noqa: E402
from bulwark.memory.embeddings import HashingEmbeddings  # noqa: E402
from bulwark.memory.store import QdrantStore  # noqa: E402
from bulwark.models.cache import (  # noqa: E402
    AnswerCache,
    CacheKey,
    context_digest,
    embedding_text,
    normalise_request,
)
from bulwark.models.false_hits import same_specifics  # noqa: E402

DATA = REPO / "evals" / "datasets"
PHASES = ("repeat", "replica", "paraphrase", "near miss")
SERVED = ("l1", "l2", "semantic", "miss")
THRESHOLD = 0.95
CONTEXT = context_digest("You are Bulwark, a careful assistant.", [])


def rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanosecond samples, in microseconds."""
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1e3


def retyped(text: str) -> str:
    """``text`` as typed by someone else: other case, spaces, trailing punctuation."""
    return "  " + " ".join(text.swapcase().split()).rstrip(".?!") + " ?"


class Workload:
    """The questions (each with an answer of its own) and the lookups of each phase, each
    with the question whose answer it may be served (``None``: none)."""

    def __init__(self) -> None:
        paraphrases, near = rows("cache_paraphrases.jsonl"), rows("cache_near_miss.jsonl")
        self.questions: dict[str, str] = {}
        for row in paraphrases + near:
            self.questions.setdefault(normalise_request(row["question"]), row["question"])
        ids = {q: f"answer {n}" for n, q in enumerate(self.questions)}
        self.answers = {text: ids[q] for q, text in self.questions.items()}
        self.lookups: dict[str, list[tuple[str, str | None]]] = {
            "repeat": [(retyped(t), a) for t, a in self.answers.items()],
            "replica": list(self.answers.items()),
            "paraphrase": [(r["paraphrase"], ids[normalise_request(r["question"])]) for r in paraphrases],
            "near miss": [(r["near_miss"], None) for r in near],
        }
        self.pairs = paraphrases
        self.near = near
        asked = {normalise_request(t) for t, _ in self.lookups["paraphrase"] + self.lookups["near miss"]}
        if asked & self.questions.keys():
            raise SystemExit("bench/cache.py: a paraphrase or near miss is also a stored question")


Samples = dict[str, list[tuple[int, str, bool]]]
"""``{phase: [(latency ns, served by, false hit)]}``."""


async def replay(workload: Workload, memory: QdrantStore, redis_url: str, tenant: str) -> Samples:
    """One replay of every phase, as ``tenant``."""
    def key(text: str) -> CacheKey:
        return CacheKey(tenant=tenant, model="offline", context=CONTEXT, request=text)

    def replica() -> AnswerCache:
        return AnswerCache(mode="semantic", redis_url=redis_url)

    caches = {"repeat": replica(), "replica": replica(), "paraphrase": replica(), "near miss": replica()}
    for text, answer in workload.answers.items():
        await caches["repeat"].astore(key(text), answer, memory=memory)
    samples: Samples = {}
    for phase in PHASES:
        gc.collect()
        cache, out = caches[phase], []
        for text, expected in workload.lookups[phase]:
            started = time.perf_counter_ns()
            found = await cache.alookup(key(text), memory=memory)
            elapsed = time.perf_counter_ns() - started
            out.append((elapsed, found.level or "miss", found.hit and found.answer != expected))
        samples[phase] = out
    for cache in caches.values():
        await cache.aclose()
    return samples


def similarity_table(workload: Workload) -> dict[str, dict[str, float]]:
    """For the pairs alone: the share at or above the threshold, as typed and as embedded,
    and the share of those the guard passes."""
    embed = HashingEmbeddings()
    figures: dict[str, dict[str, float]] = {}
    for name, rows_, other in (("paraphrases", workload.pairs, "paraphrase"),
                               ("near misses", workload.near, "near_miss")):
        guard = [same_specifics(r["question"], r[other]) for r in rows_]
        for how, text in (("as typed", normalise_request), ("as embedded", embedding_text)):
            vectors = [embed.embed_documents([text(r["question"]), text(r[other])]) for r in rows_]
            near = [float(np.dot(a, b)) >= THRESHOLD for a, b in vectors]
            figures[f"{name}, {how}"] = {
                "pairs": len(rows_),
                "at_threshold": sum(near) / len(rows_),
                "at_threshold_and_guard": sum(n and g for n, g in zip(near, guard, strict=True)) / len(rows_),
            }
    return figures


async def run(n: int, workdir: Path) -> dict[str, Any]:
    workload = Workload()
    embed = HashingEmbeddings()
    dims = len(embed.embed_query("probe"))
    server = ValkeyTestServer(free_port(), workdir / "valkey")
    server.start()
    memory = QdrantStore(EdgeCollection.open(workdir / "memory", dims=dims),
                         index={"dims": dims, "embed": embed, "fields": ["text"]})
    try:
        with server.client() as client:
            version = client.info("server").get("valkey_version", "")
        await replay(workload, memory, server.url, "warm-up")
        pooled: Samples = defaultdict(list)
        for round_ in range(n):
            for phase, samples in (await replay(workload, memory, server.url, f"bench-{round_}")).items():
                pooled[phase] += samples
    finally:
        memory.close()
        server.stop()
    phases = {}
    for phase in PHASES:
        samples = pooled[phase]
        served = {level: sum(s == level for _, s, _ in samples) / len(samples) for level in SERVED}
        latencies = sorted(ns for ns, _, _ in samples)
        phases[phase] = {"lookups": len(samples), "served": served, "false_hits": sum(f for _, _, f in samples),
                         "p50_us": percentile(latencies, 0.5), "p99_us": percentile(latencies, 0.99)}
    by_level = defaultdict(list)
    for samples in pooled.values():
        for ns, level, _ in samples:
            by_level[level].append(ns)
    levels = {level: {"lookups": len(v), "p50_us": percentile(sorted(v), 0.5), "p99_us": percentile(sorted(v), 0.99)}
              for level, v in ((lv, by_level[lv]) for lv in SERVED) if v}
    return {
        "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "machine": f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
                   f"Valkey {version}",
        "replays": n, "questions": len(workload.questions), "threshold": THRESHOLD,
        "phases": phases, "levels": levels, "similarity": similarity_table(workload),
    }


def table(results: dict[str, Any], load: str) -> str:
    lines = [
        f"Answer cache, {results['when']}, {results['machine']}; load average {load}.",
        f"{results['replays']} replays of the workload after one warm-up, each a new tenant: "
        f"{results['questions']} questions stored; similarity threshold {results['threshold']}.",
        "",
        "| phase | lookups | l1 | l2 | semantic | miss | false hits | p50 µs | p99 µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase, row in results["phases"].items():
        served = " | ".join(f"{row['served'][level]:.1%}" for level in SERVED)
        lines.append(f"| {phase} | {row['lookups']} | {served} | {row['false_hits']} | {row['p50_us']:.1f} "
                     f"| {row['p99_us']:.1f} |")
    lines += ["", "| served by | lookups | p50 µs | p99 µs |", "|---|---:|---:|---:|"]
    lines += [f"| {level} | {row['lookups']} | {row['p50_us']:.1f} | {row['p99_us']:.1f} |"
              for level, row in results["levels"].items()]
    lines += ["", f"| pairs alone | pairs | cosine >= {results['threshold']} | and the guard passes |",
              "|---|---:|---:|---:|"]
    lines += [f"| {name} | {row['pairs']} | {row['at_threshold']:.1%} | {row['at_threshold_and_guard']:.1%} |"
              for name, row in results["similarity"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5, help="timed replays of the workload (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as workdir:
        results = asyncio.run(run(args.n, Path(workdir)))
    load = f"{before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(json.dumps(results | {"load_average": load}, indent=2) if args.json else table(results, load), end="")
    if args.json:
        print()


if __name__ == "__main__":
    main()
