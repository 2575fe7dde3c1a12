"""Idempotency keys for side-effecting tools.

LangGraph re-runs a task that was cut short by a crash, so a tool can run twice for the
same tool call. Bulwark gives every execution an idempotency key, ``<thread>:<call id>``,
stable across retries and resumes: a side-effecting tool passes it to whatever it
changes (an API's ``Idempotency-Key`` header, a unique column) so the effect happens
once. Tools read it by declaring a ``config: RunnableConfig`` parameter.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig

CONFIG_KEY = "idempotency_key"


def make_key(thread_id: str | None, tool_call_id: str) -> str:
    """The idempotency key of one tool call in one thread."""
    return f"{thread_id or '-'}:{tool_call_id}"


def idempotency_key(config: RunnableConfig | None) -> str | None:
    """The key Bulwark attached to the running tool call, if any."""
    return ((config or {}).get("configurable") or {}).get(CONFIG_KEY)


def append_once(path: Path, key: str | None, record: Mapping[str, Any]) -> bool:
    """Append ``record`` to a JSON-lines file unless a record with ``key`` is there.

    The check and the append happen under an exclusive file lock, so concurrent or
    repeated executions of the same call write one line. Returns whether it wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if key is not None:
                f.seek(0)
                if any(json.loads(line).get("key") == key for line in f if line.strip()):
                    return False
            f.write(json.dumps({**record, "key": key}) + "\n")
            f.flush()
            return True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
