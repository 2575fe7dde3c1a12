"""Latency of one harmful-request check, and the model's cross-validated figures.

Every row of the harmful and benign eval sets is scored ``--rounds`` times with
:func:`~bulwark.guardrails.detectors.harmful.harm_score` after a warm-up (the first call
loads the weights: timed apart, as "load"); the table gives p50, p99 and max per check in
milliseconds, by text length, and the machine's load average. Then the 5-fold CV, the
generalisation and the held-out figures the training script stored with the shipped weights.

    .venv/bin/python bench/harmful.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from bulwark.evals.guardrails import DATASETS, read_jsonl
from bulwark.guardrails.detectors import harmful

SETS = ("harmful_dev", "harmful_written_dev", "harmful_heldout_dev", "benign_heldout_dev", "benign_dev", "benign_tricky_dev", "benign_harmlike_dev",
        "benign_harmlike_written_dev", "jailbreak_dev")


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49]:.3f}  p99 {q[98]:.3f}  max {max(samples):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    texts = [row["text"] for name in SETS for row in read_jsonl(DATASETS / f"{name}.jsonl")]
    t0 = time.perf_counter()
    harmful.harm_score("warm up")
    print(f"load (weights + lexicon): {(time.perf_counter() - t0) * 1e3:.1f} ms")
    groups: dict[str, list[float]] = {"< 200 chars": [], "200-2000 chars": [], "> 2000 chars": []}
    for _ in range(args.rounds):
        for text in texts:
            start = time.perf_counter()
            harmful.harm_score(text)
            ms = (time.perf_counter() - start) * 1e3
            key = "< 200 chars" if len(text) < 200 else "200-2000 chars" if len(text) <= 2000 else "> 2000 chars"
            groups[key].append(ms)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.rounds} rounds")
    for key, samples in groups.items():
        if len(samples) > 1:
            print(f"  {key:16} n={len(samples):5d}  {_ms(samples)} ms")
    print(f"  {'all':16} n={sum(map(len, groups.values())):5d}  {_ms([s for v in groups.values() for s in v])} ms")
    with np.load(harmful._WEIGHTS) as data:
        validation = json.loads(str(data["validation"]))
    for part, rows in validation.items():
        print(f"\n{part} at threshold {harmful.BLOCK_THRESHOLD} (model / rail = model OR toxicity rules):")
        for name, row in rows.items():
            print(f"  {name:30} rows {row['rows']:4d}  model {row['model']:.3f}  rail {row['rail']:.3f}  "
                  f"uncertain {row['uncertain']:.3f}  category acc {row.get('category_accuracy', float('nan')):.3f}")


if __name__ == "__main__":
    main()
