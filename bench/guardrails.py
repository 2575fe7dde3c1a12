"""Latency of one input check and one output check, per guardrails engine.

Texts are the bundled eval sets, in three groups timed apart: ordinary-length requests
(benign, tricky benign, short injections, PII sentences), long jailbreak prompts (up to
12 KB), and answers (PII sentences and benign texts through the output rail). Each
engine's rails are built once and warmed up; then every text is checked ``--rounds``
times by every engine in turn (the engines alternate text by text, so background load
hits them alike). The table gives p50, p99 and max wall time per check and the p50 of
the thread's CPU time, in milliseconds, and with both engines a row of NeMo's own cost:
the NeMo check minus the direct check of the same text in the same round.

    .venv/bin/python bench/guardrails.py [--rounds 3] [--engines nemo,direct]

``nemo`` runs the checks as NeMo Guardrails rails (the default engine); ``direct`` calls
the same detectors without the Colang runtime. The header line gives the 1-minute load
average before and after: on a shared 2-core machine the p99 columns follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib.metadata import version

from bulwark.evals.guardrails import DATASETS, PII_SET, read_jsonl
from bulwark.guardrails.rails import Guardrails
from bulwark.nodes.agent import SYSTEM_PROMPT
from bulwark.settings import load_settings


def texts() -> dict[str, tuple[str, list[str]]]:
    """Label -> (rail, texts): short requests, long jailbreak prompts, answers."""
    short = ("benign_dev", "benign_tricky_dev", "injection_short_dev")
    requests = [row["text"] for name in short for row in read_jsonl(DATASETS / f"{name}.jsonl")]
    with PII_SET.open(encoding="utf-8") as data:
        pii = [row["full_text"] for row in json.load(data)][:500]
    jailbreaks = [row["text"] for row in read_jsonl(DATASETS / "jailbreak_dev.jsonl")]
    return {
        "requests (benign, short injections, PII sentences)": ("input", requests + pii),
        "long jailbreak prompts (mean 1.9 KB, max 12 KB)": ("input", jailbreaks),
        "answers (PII sentences, benign texts)": ("output", pii + requests[:440]),
    }


Samples = list[tuple[float, float]]


def timings(checks: dict[str, Callable[[str], object]], items: Sequence[str], rounds: int) -> dict[str, Samples]:
    """Engine -> (wall ms, CPU ms) per check, the engines alternating on each text."""
    for check in checks.values():
        for text in items[:50]:  # warm-up
            check(text)
    samples: dict[str, Samples] = {engine: [] for engine in checks}
    for _ in range(rounds):
        for text in items:
            for engine, check in checks.items():
                start, cpu = time.perf_counter(), time.thread_time()
                check(text)
                samples[engine].append(((time.perf_counter() - start) * 1000, (time.thread_time() - cpu) * 1000))
    return samples


def row(engine: str, label: str, samples: Samples) -> str:
    wall = [w for w, _ in samples]
    q = statistics.quantiles(wall, n=100)
    cpu = statistics.median(c for _, c in samples)
    return f"| {engine} | {label} | {len(wall)} | {q[49]:.2f} | {q[98]:.2f} | {max(wall):.1f} | {cpu:.2f} |"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="nemo,direct")
    args = parser.parse_args(argv)
    engines = args.engines.split(",")
    sets = texts()
    load = os.getloadavg()[0]
    print(
        f"Guardrail latency, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, nemoguardrails {version('nemoguardrails')}; "
        f"load average {load:.2f} before",
        flush=True,
    )
    built, build_ms = {}, {}
    for engine in engines:
        settings = load_settings(guardrails_engine=engine, max_input_chars=10**9)
        start = time.perf_counter()
        built[engine] = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
        build_ms[engine] = (time.perf_counter() - start) * 1000
    print("\n| engine | texts | n | p50 ms | p99 ms | max ms | CPU p50 ms |\n|---|---|---|---|---|---|---|")
    for label, (rail, items) in sets.items():
        checks = {e: (r.check_input if rail == "input" else r.check_output) for e, r in built.items()}
        samples = timings(checks, items, args.rounds)
        for engine in engines:
            print(row(engine, f"{rail}: {label}", samples[engine]), flush=True)
        if {"nemo", "direct"} <= set(samples):
            own = [(n[0] - d[0], n[1] - d[1]) for n, d in zip(samples["nemo"], samples["direct"])]
            print(row("nemo − direct", f"{rail}: {label}", own), flush=True)
    for engine in engines:
        print(f"| {engine} | building the rails (once per process) | 1 | {build_ms[engine]:.0f} | | | |")
    print(f"\nLoad average {os.getloadavg()[0]:.2f} after (1 minute).")


if __name__ == "__main__":
    main()
