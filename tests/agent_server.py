"""Start the real LangGraph server with Bulwark's langgraph.json, as users do.

``running("langgraph dev", work)`` runs the LangGraph CLI on the repo's langgraph.json
(linked into ``work`` with the code it names);
``running("bulwark serve", work)`` runs the main job. Either way the working directory is
``work`` (so the server's own files land there, where tests can grep them), the data
directory is ``work / "data"`` and the log is ``work / "server.log"``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LAUNCHERS = ("langgraph dev", "bulwark serve")


@dataclass(frozen=True)
class Server:
    """A running server: its URL, data directory, working directory and log file."""

    url: str
    data_dir: Path
    work: Path
    log: Path


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a server (or a CLI next to it) runs with: offline, no BULWARK_* but ours."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")},
        "BULWARK_DATA_DIR": str(data_dir),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
        **extra,
    }


@contextmanager
def running(launcher: str, work: Path, **env_extra: str) -> Iterator[Server]:
    """Start the server with ``launcher`` on a free port; stop it on exit."""
    port = free_port()
    data_dir = work / "data"
    if launcher == "langgraph dev":
        # langgraph dev reads auth.path from the working directory and keeps its own state
        # there: give it a project directory of its own that links to the repo's code.
        for name in ("langgraph.json", "graphs", "server"):
            if not (work / name).exists():
                (work / name).symlink_to(REPO / name)
        command = [str(BIN / "langgraph"), "dev", "--config", "langgraph.json",
                   "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
    else:
        command = [str(BIN / "bulwark"), "serve", "--port", str(port)]
    log = work / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=work, env=server_env(data_dir, **env_extra), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Server(url=url, data_dir=data_dir, work=work, log=log)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Stop a server: SIGTERM, then SIGKILL if it has not exited within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
