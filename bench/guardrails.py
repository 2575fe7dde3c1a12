"""Latency of one input check and one output check, per guardrails engine.

Texts are the bundled eval sets, in three groups timed apart: ordinary-length requests
(benign, tricky benign, short injections, PII sentences), long jailbreak prompts (up to
12 KB), and answers (PII sentences and benign texts through the output rail). Each
engine's rails are built once and warmed up, then every text is checked ``--rounds``
times; the table gives p50, p99 and max per check in milliseconds.

    .venv/bin/python bench/guardrails.py [--rounds 3] [--engines nemo,direct]

``nemo`` runs the checks as NeMo Guardrails rails (the default engine); ``direct`` calls
the same detectors without the Colang runtime.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence

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


def timings(check: Callable[[str], object], items: Sequence[str], rounds: int) -> list[float]:
    for text in items[:50]:  # warm-up
        check(text)
    samples = []
    for _ in range(rounds):
        for text in items:
            start = time.perf_counter()
            check(text)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def row(engine: str, label: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"| {engine} | {label} | {len(samples)} | {q[49]:.2f} | {q[98]:.2f} | {max(samples):.1f} |"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="nemo,direct")
    args = parser.parse_args(argv)
    sets = texts()
    print("| engine | texts | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    for engine in args.engines.split(","):
        settings = load_settings(guardrails_engine=engine, max_input_chars=10**9)
        start = time.perf_counter()
        rails = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
        build_ms = (time.perf_counter() - start) * 1000
        for label, (rail, items) in sets.items():
            check = rails.check_input if rail == "input" else rails.check_output
            print(row(engine, f"{rail}: {label}", timings(check, items, args.rounds)), flush=True)
        print(f"| {engine} | building the rails (once per process) | 1 | {build_ms:.0f} | | |", flush=True)


if __name__ == "__main__":
    main()
