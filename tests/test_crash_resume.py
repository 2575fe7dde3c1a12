"""Runs survive SIGKILL: resumed from another process, every side effect exactly once.

Each trial starts ``crash_worker.py`` on fresh threads and kills it with SIGKILL at a
random (seeded) moment; one more process then resumes every thread. The ledger the tool
writes to lives outside the graph, so it shows what really happened.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_worker import STEPS
from stored import stored_messages
from langchain_core.messages import AIMessage, ToolMessage

from bulwark.persistence.checkpoints import open_checkpointer

WORKER = Path(__file__).with_name("crash_worker.py")
TRIALS, THREADS_PER_TRIAL = 12, 3  # 36 kills a backend; each trial is a fresh worker (~4 s), and CI has 30 min
pytestmark = pytest.mark.slow


def _start(url: str, ledger: Path, data_dir: Path, threads: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(ledger), str(data_dir), *threads],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


@pytest.fixture(params=["sqlite", "redis"])
def checkpointer_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checkpoints.db'}"
    return request.getfixturevalue("redis_url")


async def test_sigkill_at_random_points_then_resume(checkpointer_url: str, tmp_path: Path) -> None:
    ledger, data_dir = tmp_path / "ledger.db", tmp_path / "data"
    rng = random.Random(20261123)
    threads: list[str] = []
    killed_mid_run = 0
    for trial in range(TRIALS):
        batch = [f"trial{trial}-t{i}" for i in range(THREADS_PER_TRIAL)]
        threads += batch
        proc = _start(checkpointer_url, ledger, data_dir, batch)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_mid_run += proc.returncode == -signal.SIGKILL

    resumer = subprocess.run(
        [sys.executable, str(WORKER), checkpointer_url, str(ledger), str(data_dir), *threads],
        capture_output=True, text=True, timeout=600,
    )
    assert resumer.returncode == 0, resumer.stderr[-3000:]

    with sqlite3.connect(ledger) as db:
        effects = db.execute("SELECT thread, step, COUNT(*) FROM effects GROUP BY thread, step").fetchall()
        attempts = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    counts = {(thread, step): n for thread, step, n in effects}
    expected = {(thread, step) for thread in threads for step in STEPS}
    assert set(counts) == expected, f"lost side effects: {sorted(expected - set(counts))[:5]}"
    assert max(counts.values()) == 1, "a side effect happened twice"
    assert killed_mid_run >= TRIALS // 2, "too few kills landed while the worker ran"
    assert attempts >= len(expected)  # re-executions after a crash are allowed, effects are not

    async with open_checkpointer(checkpointer_url) as saver:
        for thread in threads:
            messages = await stored_messages(saver, thread)
            assert messages, f"{thread} was not checkpointed"
            assert messages[-1].content == "done (record_effect)", f"{thread} did not complete"
            answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
            calls = [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
            assert set(calls) <= answered, f"{thread} has a tool call without a result"
