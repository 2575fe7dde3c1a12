"""Checkpoint encryption at rest (BULWARK_ENCRYPTION_KEY) on SQLite and Redis (Valkey).

What is stored must not contain the text of a message, what is read back must; reading
without the key or with another key fails with a clear error; plaintext checkpoints written
before a key was set stay readable; a malformed key is refused at start-up.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from redis_servers import RedisServers

from bulwark.graphs.agent import open_agent
from bulwark.persistence.checkpoints import PersistenceError, open_checkpointer
from bulwark.persistence.encryption import (
    CIPHER_NAME,
    AesGcmCipher,
    CheckpointEncryptionError,
    parse_key,
)
from bulwark.persistence.redis import CheckpointDecodeError
from bulwark.settings import ConfigError, load_settings

SECRET = "zanzibar-octopus-7731"
META = "metadata-marker-4417"
KEY = base64.b64encode(os.urandom(32)).decode()
OTHER_KEY = os.urandom(32).hex()


class Backend:
    """A checkpointer URL and a way to read every byte it stored, bypassing the saver."""

    def __init__(self, url: str, path: Path | None = None) -> None:
        self.url = url
        self.path = path

    def raw(self) -> bytes:
        """Everything stored: all SQLite rows and files, or every Redis key and value."""
        if self.path is not None:
            chunks = [p.read_bytes() for p in self.path.parent.glob(f"{self.path.name}*")]
            with sqlite3.connect(self.path) as db:
                for table in ("checkpoints", "writes"):
                    for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - fixed names
                        chunks += [c if isinstance(c, bytes) else str(c).encode() for c in row]
            return b"\n".join(chunks)
        client = redis.Redis.from_url(self.url)
        try:
            chunks = []
            for key in client.keys("*"):
                chunks.append(key)
                kind = client.type(key)
                if kind == b"string":
                    chunks.append(client.get(key) or b"")
                elif kind == b"hash":
                    for field, value in client.hgetall(key).items():
                        chunks += [field, value]
                elif kind == b"set":
                    chunks += list(client.smembers(key))
                elif kind == b"zset":
                    chunks += list(client.zrange(key, 0, -1))
                else:
                    raise AssertionError(f"unexpected Redis type {kind!r} of {key!r}")
            return b"\n".join(chunks)
        finally:
            client.close()


@pytest.fixture(params=["sqlite", pytest.param("valkey", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, redis_servers: RedisServers) -> Backend:
    """A fresh store on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "checkpoints.db"
        return Backend(f"sqlite:///{path}", path)
    reason = redis_servers.unavailable_reason(request.param)
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    return Backend(redis_servers.fresh(request.param).url)


async def _put_secret(saver: BaseCheckpointSaver, thread_id: str = "t") -> dict[str, Any]:
    """Store a checkpoint whose message, and a pending write, hold SECRET; its metadata META."""
    values = {"messages": [HumanMessage(f"my locker code is {SECRET}")]}
    checkpoint = generate_checkpoint(channel_values=values, channel_versions={"messages": 1})
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    metadata = generate_metadata(source="input", note=META)
    stored = await saver.aput(config, checkpoint, metadata, {"messages": 1})
    await saver.aput_writes(stored, [("messages", HumanMessage(f"and {SECRET} again"))], "task-1")
    return stored


async def _read_secret(saver: BaseCheckpointSaver, config: dict[str, Any]) -> list[str]:
    found = await saver.aget_tuple(config)
    assert found is not None
    texts = [m.content for m in found.checkpoint["channel_values"]["messages"]]
    return texts + [value.content for _, _, value in found.pending_writes]


def _encryption_error(exc: BaseException) -> CheckpointEncryptionError:
    """The CheckpointEncryptionError raised (SQLite) or wrapped in CheckpointDecodeError (Redis)."""
    if isinstance(exc, CheckpointDecodeError):
        assert "thread 't'" in str(exc)
        exc = exc.__cause__  # type: ignore[assignment]
    assert isinstance(exc, CheckpointEncryptionError), repr(exc)
    assert isinstance(exc, PersistenceError)
    return exc


# -- what is stored ------------------------------------------------------------------------------


async def test_stored_bytes_hide_the_text_and_the_saver_reads_it_back(backend: Backend) -> None:
    async with open_checkpointer(backend.url, encryption_key=KEY) as saver:
        stored = await _put_secret(saver)
        assert await _read_secret(saver, stored) == [
            f"my locker code is {SECRET}",
            f"and {SECRET} again",
        ]
        listed = [t async for t in saver.alist(stored)]
        assert listed[0].checkpoint["channel_values"]["messages"][0].content.endswith(SECRET)
        assert listed[0].metadata["note"] == META
    raw = backend.raw()
    assert SECRET.encode() not in raw
    assert f"+{CIPHER_NAME}".encode() in raw  # the values are there, encrypted
    # Metadata: the Redis saver serializes (so encrypts) it, SQLite keeps it as plain JSON.
    assert (META.encode() in raw) == (backend.path is not None)

    async with open_checkpointer(backend.url, encryption_key=KEY) as again:  # a second saver, nothing cached
        assert SECRET in (await _read_secret(again, stored))[0]


async def test_without_a_key_the_text_is_stored_in_clear(backend: Backend) -> None:
    """The control for the test above: the raw scan would see the text if it were there."""
    async with open_checkpointer(backend.url) as saver:
        await _put_secret(saver)
    raw = backend.raw()
    assert SECRET.encode() in raw and META.encode() in raw


async def test_encrypted_savers_pass_langgraph_conformance(backend: Backend) -> None:
    @checkpointer_test(name="encrypted")
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with open_checkpointer(backend.url, encryption_key=KEY) as saver:
            yield saver

    report = await validate(factory)
    assert report.passed_all(), report.results
    assert report.conformance_level() == "FULL"


# -- reading with the wrong key ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [(None, "set BULWARK_ENCRYPTION_KEY"), (OTHER_KEY, "different key than BULWARK_ENCRYPTION_KEY")],
    ids=["no-key", "other-key"],
)
async def test_reading_without_the_key_or_with_another_fails_clearly(
    backend: Backend, key: str | None, expected: str
) -> None:
    async with open_checkpointer(backend.url, encryption_key=KEY) as saver:
        stored = await _put_secret(saver)

    async with open_checkpointer(backend.url, encryption_key=key) as reader:
        with pytest.raises((CheckpointEncryptionError, CheckpointDecodeError)) as caught:
            await reader.aget_tuple(stored)
        error = _encryption_error(caught.value)
        assert expected in str(error)
        for secret in (KEY, OTHER_KEY, SECRET):
            assert secret not in str(caught.value)
        with pytest.raises((CheckpointEncryptionError, CheckpointDecodeError)):
            [t async for t in reader.alist(stored)]


async def test_plaintext_checkpoints_stay_readable_once_a_key_is_set(backend: Backend) -> None:
    """Migration: turning encryption on keeps old threads; new checkpoints are encrypted."""
    async with open_checkpointer(backend.url) as plain:
        old = await _put_secret(plain, "old")
    async with open_checkpointer(backend.url, encryption_key=KEY) as saver:
        assert SECRET in (await _read_secret(saver, old))[0]
        new = await _put_secret(saver, "new")
        assert SECRET in (await _read_secret(saver, new))[0]
    async with open_checkpointer(backend.url) as plain:
        assert SECRET in (await _read_secret(plain, old))[0]
        with pytest.raises((CheckpointEncryptionError, CheckpointDecodeError)):
            await plain.aget_tuple(new)


def test_an_altered_or_foreign_value_is_refused() -> None:
    cipher = AesGcmCipher(parse_key(KEY))
    name, data = cipher.encrypt(b"hello")
    assert name == CIPHER_NAME and b"hello" not in data
    assert cipher.encrypt(b"hello")[1] != data, "a fresh nonce per value"
    assert cipher.decrypt(name, data) == b"hello"
    altered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(CheckpointEncryptionError, match="altered"):
        cipher.decrypt(name, altered)
    with pytest.raises(CheckpointEncryptionError, match="truncated"):
        cipher.decrypt(name, data[:20])
    with pytest.raises(CheckpointEncryptionError, match="'aes'"):
        cipher.decrypt("aes", data)  # pycryptodome's EncryptedSerializer format


# -- the key setting -----------------------------------------------------------------------------

RAW = bytes(range(32))


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        RAW.hex(),
        f"  {RAW.hex().upper()}\n",
    ],
    ids=["base64", "urlsafe-unpadded", "hex", "HEX-with-spaces"],
)
def test_key_formats_accepted(text: str) -> None:
    assert parse_key(text) == RAW
    assert load_settings(encryption_key=text).encryption_key is not None


@pytest.mark.parametrize(
    "bad",
    [
        "correct-horse-battery-staple",
        base64.b64encode(os.urandom(16)).decode(),  # AES-128 sized
        os.urandom(32).hex()[:-1],
        "g" * 64,
        "",
    ],
    ids=["passphrase", "16-bytes", "63-hex-digits", "64-non-hex", "empty"],
)
def test_a_malformed_key_is_refused_in_one_line_without_echoing_it(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as direct:
        load_settings(encryption_key=bad)
    monkeypatch.setenv("BULWARK_ENCRYPTION_KEY", bad)
    with pytest.raises(ConfigError) as from_env:
        load_settings()
    for caught in (direct, from_env):
        message = str(caught.value)
        assert message.startswith("BULWARK_ENCRYPTION_KEY: ")
        assert "32 bytes" in message and "base64" in message
        assert "\n" not in message
        assert not bad or bad not in message


async def test_open_checkpointer_refuses_a_malformed_key(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match="32 bytes") as caught:
        async with open_checkpointer(f"sqlite:///{tmp_path / 'c.db'}", encryption_key="hunter2"):
            pass
    assert "hunter2" not in str(caught.value)


# -- the agent end to end ------------------------------------------------------------------------


async def test_agent_run_with_encryption_keeps_the_conversation_out_of_the_file(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", encryption_key=KEY)
    config = {"configurable": {"thread_id": "t"}}
    async with open_agent(settings) as agent:
        result = await agent.ainvoke(
            {"messages": [{"role": "user", "content": "my favourite colour is teal"}]}, config
        )
        assert result["messages"][0].content == "my favourite colour is teal"
        state = await agent.aget_state(config)
        assert state.values["messages"][0].content == "my favourite colour is teal"

    files = sorted((tmp_path / "data").glob("checkpoints.db*"))
    assert files, "the run wrote checkpoints"
    for path in files:
        assert b"teal" not in path.read_bytes(), path.name

    async with open_agent(load_settings(data_dir=tmp_path / "data")) as keyless:
        with pytest.raises(CheckpointEncryptionError, match="BULWARK_ENCRYPTION_KEY"):
            await keyless.aget_state(config)
