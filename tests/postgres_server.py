"""A throwaway PostgreSQL server for tests: Debian's binaries (``apt-get install postgresql``).

:class:`PostgresServer` runs ``initdb`` once in its directory, then ``postgres`` on a free
loopback port with trust authentication for the one role ``bulwark``, and ``url`` is the
``DATABASE_URL`` of its database ``bulwark``. Durability is switched off (``fsync``): the
data is thrown away with the test.

PostgreSQL refuses to run as root. As root (CI's case), both programs run in a user
namespace of their own (``unshare --user``) as an ordinary uid mapped to root: the server
believes it is not root, and the files it writes belong to root, so the data directory can
stay under a test's own (root-only) temporary directory.
"""

from __future__ import annotations

import os
import signal
import shutil
import socket
import subprocess
import time
from pathlib import Path

USER = DATABASE = "bulwark"
_BINARIES = ("initdb", "postgres", "psql")


def _bindir() -> Path | None:
    """The directory of Debian's newest PostgreSQL server binaries, or of those on PATH."""
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


def _as_non_root() -> list[str]:
    return ["unshare", "--user", "--map-user=1000", "--map-group=1000"] if os.geteuid() == 0 else []


def unavailable_reason() -> str | None:
    """Why no PostgreSQL server can run here, or None."""
    bindir = _bindir()
    if bindir is None or not all((bindir / name).exists() for name in _BINARIES):
        return "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        probe = subprocess.run([*_as_non_root(), "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            return f"running as root and cannot run PostgreSQL as another uid (unshare --user: {probe.stderr.strip()})"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One server in ``root`` (``root / "data"``, its log ``root / "postgres.log"``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.bindir = _bindir()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``postgresql://bulwark@127.0.0.1:<port>/bulwark``."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """initdb (first time), start, and create the database; returns self."""
        assert self.bindir is not None, unavailable_reason()
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            subprocess.run(
                [*_as_non_root(), str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                 "--auth=trust", "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True,
            )
        log = (self.root / "postgres.log").open("ab")
        self._process = subprocess.Popen(
            [*_as_non_root(), str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.data), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while self.psql("SELECT 1", database="postgres").returncode != 0:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"postgres did not start: {(self.root / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.1)
        if fresh:
            self.psql(f"CREATE DATABASE {DATABASE}", database="postgres", check=True)
        return self

    def psql(self, sql: str, *, database: str = DATABASE, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``sql`` with psql; the result's stdout is unaligned, tuples only."""
        assert self.bindir is not None
        return subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
             "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, check=check,
        )

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL if it has not exited within 15 s."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None
