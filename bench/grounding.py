"""Latency of one fact check (``check_grounding``) on the grounding dev set's answers.

Every row of ``evals/datasets/grounding_dev.jsonl`` is checked against its sources
``--rounds`` times (after one warm-up pass); the table gives p50, p99 and max per check
in milliseconds, with the machine's load average.

    .venv/bin/python bench/grounding.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bulwark.evals.grounding import load_rows
from bulwark.guardrails.checks import check_grounding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    rows = load_rows()
    for row in rows:  # warm-up: regex caches, imports
        check_grounding(row["answer"], row["sources"])
    timings = []
    for _ in range(rounds):
        for row in rows:
            start = time.perf_counter()
            check_grounding(row["answer"], row["sources"])
            timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"checks: {len(timings)} ({len(rows)} rows x {rounds}); load average: {load}")
    print("| check | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    print(f"| check_grounding | {statistics.median(timings):.3f} | {p99:.3f} | {timings[-1]:.3f} |")


if __name__ == "__main__":
    main()
