"""A process for crash tests: runs (or resumes) agent threads on a checkpointer URL.

It is started by ``tests/test_crash_resume.py`` and killed with SIGKILL at random points.
Every thread runs the real Bulwark agent graph with a planned model that makes two rounds
of parallel tool calls (steps 1-3, then 4-5) before answering "done (record_effect)". The only tool,
``record_effect``, writes its side effect to a SQLite ledger outside the graph, keyed by
the idempotency key Bulwark gives each tool call; a second table counts every attempt.

Usage: ``crash_worker.py URL LEDGER DATA_DIR THREAD [THREAD ...]``; prints ``ready`` once
set up, then works through the threads, starting new ones and finishing cut-short ones.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from scripted_model import RuleModel

from bulwark.graphs.agent import build_agent, cut_short
from bulwark.persistence.checkpoints import open_checkpointer
from bulwark.settings import load_settings
from bulwark.tools.idempotency import idempotency_key

ROUNDS = ((1, 2, 3), (4, 5))
STEPS = [step for round_ in ROUNDS for step in round_]
_ROUND_STARTS = [sum(len(r) for r in ROUNDS[:i]) for i in range(len(ROUNDS))]  # results before each round


def plan(messages: list[BaseMessage]) -> AIMessage:
    """The next round of calls, from the results so far; "done (record_effect)" after the last round."""
    start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    done = sum(isinstance(m, ToolMessage) for m in messages[start:])
    for planned, round_ in zip(_ROUND_STARTS, ROUNDS, strict=True):
        if done == planned:
            calls = [{"name": "record_effect", "args": {"step": s}, "id": f"step-{s}"} for s in round_]
            return AIMessage("", tool_calls=calls)
    return AIMessage("done (record_effect)")


def make_tool(ledger: Path):
    @tool
    def record_effect(step: int, config: RunnableConfig) -> str:
        """Record one side effect in the external ledger."""
        key = idempotency_key(config)
        thread = config["configurable"]["thread_id"]
        with sqlite3.connect(ledger, timeout=30, isolation_level=None) as db:
            db.execute("INSERT INTO attempts(key, thread, step) VALUES (?, ?, ?)", (key, thread, step))
            time.sleep(0.01)  # the window a crash can fall into
            db.execute("INSERT OR IGNORE INTO effects(key, thread, step) VALUES (?, ?, ?)", (key, thread, step))
        return f"recorded step {step}"

    return record_effect


def init_ledger(ledger: Path) -> None:
    with sqlite3.connect(ledger, isolation_level=None) as db:
        db.execute("CREATE TABLE IF NOT EXISTS effects(key TEXT PRIMARY KEY, thread TEXT, step INT)")
        db.execute("CREATE TABLE IF NOT EXISTS attempts(key TEXT, thread TEXT, step INT)")


async def work(url: str, ledger: Path, data_dir: Path, threads: list[str]) -> None:
    # The rails are not what a crash tests; the direct engine skips NeMo's 2.5 s start-up.
    settings = load_settings(data_dir=data_dir, guardrails_engine="direct")
    async with open_checkpointer(url) as checkpointer:
        graph = build_agent(
            settings, checkpointer=checkpointer, models={"offline": RuleModel(reply=plan)}, tools=[make_tool(ledger)]
        )
        print("ready", flush=True)
        for thread in threads:
            config: RunnableConfig = {"configurable": {"thread_id": thread}}
            snapshot = await graph.aget_state(config)
            if snapshot.created_at is None:
                await graph.ainvoke({"messages": [{"role": "user", "content": "go"}]}, config)
            elif cut_short(snapshot):
                await graph.ainvoke(None, config)
    print("finished", flush=True)


if __name__ == "__main__":
    url, ledger_path, data, *thread_ids = sys.argv[1:]
    init_ledger(Path(ledger_path))
    asyncio.run(work(url, Path(ledger_path), Path(data), thread_ids))
