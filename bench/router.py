"""Cost and correctness of routing by complexity, against always using the best model.

Run from the repository root:

    .venv/bin/python bench/router.py [--repeat 1] [--json]

The workload is ``evals/datasets/complexity_labels.jsonl``: requests labelled ``simple``,
``medium`` or ``complex`` (35 / 30 / 25). One local OpenAI-protocol server
(``tests/openai_server.py``) plays three scripted models, priced like today's models:

| model | quality | USD per 1k input / output | answers correctly |
|---|---:|---|---|
| big   | 0.95 | 0.0025 / 0.01    | every request |
| mid   | 0.85 | 0.0006 / 0.0024  | simple and medium |
| small | 0.60 | 0.00015 / 0.0006 | simple |

Each reply reports its prompt tokens (the request's characters / 4) and an answer length by
the request's true label (150 / 500 / 1000 tokens), so a cheap model is cheap only when the
router's estimate is right, and wrong when it under-estimates. Three agents answer every
request, each on a fresh thread:

* **baseline** -- ``create_react_agent`` on ``big`` (no routing, LangGraph alone);
* **Bulwark, best only** -- a catalogue of ``big`` alone;
* **Bulwark, routed** -- the three-model catalogue with the default rules.

The table gives, per agent, correct answers, total and per-request cost (the seed's target:
under $0.01 a request), p50 latency, and cost and latency against the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import yaml
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from langgraph.warnings import LangGraphDeprecatedSinceV10

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from openai_server import Reply, ScriptedOpenAIServer  # noqa: E402  (tests/ is not a package)

from bulwark.graphs.agent import build_agent  # noqa: E402
from bulwark.graphs.state import RunContext  # noqa: E402
from bulwark.settings import load_settings  # noqa: E402
from bulwark.tools.builtin import builtin_registry  # noqa: E402

LABELS = REPO / "evals" / "datasets" / "complexity_labels.jsonl"
MODELS = {
    "big": {"quality": 0.95, "cost_per_1k_input": 0.0025, "cost_per_1k_output": 0.01, "solves": {"simple", "medium", "complex"}},
    "mid": {"quality": 0.85, "cost_per_1k_input": 0.0006, "cost_per_1k_output": 0.0024, "solves": {"simple", "medium"}},
    "small": {"quality": 0.6, "cost_per_1k_input": 0.00015, "cost_per_1k_output": 0.0006, "solves": {"simple"}},
}
ANSWER_TOKENS = {"simple": 150, "medium": 500, "complex": 1000}


def _workload() -> list[dict[str, str]]:
    return [json.loads(line) for line in LABELS.read_text().splitlines()]


def _responder(labels: dict[str, str]):
    def respond(body: dict[str, Any]) -> Reply:
        request = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        label = labels[request]
        prompt = sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4
        verdict = "CORRECT" if label in MODELS[body["model"]]["solves"] else "WRONG"
        return Reply(content=f"{verdict} ({body['model']})", prompt_tokens=prompt, completion_tokens=ANSWER_TOKENS[label])

    return respond


def _cost(model: str, usage: dict[str, int]) -> float:
    price = MODELS[model]
    return (usage["input_tokens"] * price["cost_per_1k_input"] + usage["output_tokens"] * price["cost_per_1k_output"]) / 1000


def _catalogue(path: Path, server: ScriptedOpenAIServer, names: list[str]) -> Path:
    models = [{"name": n, "spec": f"openai:{n}", "base_url": server.base_url,
               **{k: v for k, v in MODELS[n].items() if k != "solves"}} for n in names]
    path.write_text(yaml.safe_dump({"models": models}))
    return path


async def _run(agent: Any, rows: list[dict[str, str]], *, bulwark: bool) -> dict[str, Any]:
    correct, cost, times = 0, 0.0, []
    for i, row in enumerate(rows):
        config = {"configurable": {"thread_id": f"t{i}"}}
        started = time.perf_counter()
        if bulwark:
            state = await agent.ainvoke({"messages": [("user", row["text"])]}, config, context=RunContext(tenant_id="bench"))
            cost += state["usage"]["cost_usd"]
        else:
            state = await agent.ainvoke({"messages": [("user", row["text"])]}, config)
            cost += _cost("big", state["messages"][-1].usage_metadata)
        times.append(time.perf_counter() - started)
        correct += state["messages"][-1].text.startswith("CORRECT")
    times.sort()
    return {"correct": correct, "n": len(rows), "cost_usd": cost, "per_request_usd": cost / len(rows),
            "p50_ms": times[math.ceil(0.5 * len(times)) - 1] * 1000}


async def main_async(repeat: int) -> dict[str, Any]:
    rows = _workload() * repeat
    labels = {row["text"]: row["label"] for row in rows}
    results: dict[str, Any] = {}
    with ScriptedOpenAIServer(respond=_responder(labels)) as server, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # No LLM judge: the bench compares the models routing picks, call for call.
        common = {"guardrails_engine": "direct", "guardrails_judge": "off", "approval_tools": ()}
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)  # the baseline is this very function
        baseline = create_react_agent(
            ChatOpenAI(model="big", base_url=server.base_url, api_key="not-needed", max_retries=0),
            builtin_registry(load_settings(data_dir=base / "b", **common)).tools,
        )
        results["baseline"] = await _run(baseline, rows, bulwark=False)
        for name, models in (("best_only", ["big"]), ("routed", ["big", "mid", "small"])):
            settings = load_settings(data_dir=base / name, models=_catalogue(base / f"{name}.yaml", server, models), **common)
            results[name] = await _run(build_agent(settings), rows, bulwark=True)
        results["routed"]["models"] = {m: sum(r["model"] == m for r in server.requests[-len(rows):]) for m in MODELS}
    return results


def table(results: dict[str, Any]) -> str:
    base = results["baseline"]
    lines = [
        "| agent | correct | cost | per request | p50 ms | cost / baseline | p50 / baseline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("baseline", "create_react_agent, big"), ("best_only", "Bulwark, big only"), ("routed", "Bulwark, routed")):
        r = results[name]
        lines.append(f"| {label} | {r['correct']}/{r['n']} | ${r['cost_usd']:.4f} | ${r['per_request_usd']:.5f} | "
                     f"{r['p50_ms']:.0f} | {r['cost_usd'] / base['cost_usd']:.2f}x | {r['p50_ms'] / base['p50_ms']:.2f}x |")
    lines.append("")
    lines.append("Routed calls by model: " + ", ".join(f"{m} {n}" for m, n in results["routed"]["models"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="times the 90-request workload is replayed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    results = asyncio.run(main_async(args.repeat))
    print(json.dumps(results, indent=2) if args.json else table(results), end="" if not args.json else "\n")


if __name__ == "__main__":
    main()
