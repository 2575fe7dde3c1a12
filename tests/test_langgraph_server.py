"""The agent on the real LangGraph server, driven with langgraph-sdk.

Both ways of starting it are covered: ``langgraph dev`` with the repo's langgraph.json
(what Studio and LangGraph Platform users run) and ``bulwark serve`` (the main job).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from bulwark.persistence.checkpoints import open_checkpointer

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
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


@contextmanager
def _running(launcher: str, work: Path, **env_extra: str) -> Iterator[tuple[str, Path]]:
    """Start the server with ``launcher`` on a free port; yield its URL and data directory."""
    port = _free_port()
    data_dir = work / "data"
    if launcher == "langgraph dev":
        command = [str(BIN / "langgraph"), "dev", "--config", str(REPO / "langgraph.json"),
                   "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
        cwd = REPO
    else:
        command = [str(BIN / "bulwark"), "serve", "--port", str(port)]
        cwd = work
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")},
        "BULWARK_DATA_DIR": str(data_dir),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
        **env_extra,
    }
    log = work / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module", params=["langgraph dev", "bulwark serve"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running server on a free port, on the embedded defaults except one: the agent may
    email the addresses users type, so EMAIL is not redacted from requests."""
    keep_email = '["PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "PERSON", "STREET_ADDRESS"]'
    with _running(request.param, tmp_path_factory.mktemp("server"), BULWARK_PII_ENTITIES=keep_email) as running:
        yield running


def _ask(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def test_wait_returns_the_tool_answer(server: tuple[str, Path]) -> None:
    client = get_client(url=server[0])
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "agent", input=_ask("what is 17*23"))
    messages = result["messages"]
    assert any(m["type"] == "tool" and m["name"] == "calculator" for m in messages)
    assert "391" in messages[-1]["content"]


async def test_stream_yields_tokens_and_updates(server: tuple[str, Path]) -> None:
    client = get_client(url=server[0])
    thread = await client.threads.create()
    tokens, nodes = [], []
    async for part in client.runs.stream(
        thread["thread_id"], "agent", input=_ask("hello there"),
        stream_mode=["messages-tuple", "updates"],
    ):
        if part.event == "messages":
            chunk, meta = part.data
            if meta.get("langgraph_node") == "agent":
                tokens.append(chunk["content"])
        elif part.event == "updates":
            nodes.extend(part.data)
    assert len(tokens) > 1, "the answer should arrive in several chunks"
    assert nodes[:4] == ["guard_input", "recall", "route", "agent"]
    assert nodes[-1] == "audit"
    state = await client.threads.get_state(thread["thread_id"])
    assert "".join(tokens) == state["values"]["messages"][-1]["content"]


async def test_thread_keeps_the_conversation(server: tuple[str, Path]) -> None:
    client = get_client(url=server[0])
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "agent", input=_ask("my favourite colour is teal"))
    result = await client.runs.wait(thread["thread_id"], "agent", input=_ask("what is my favourite colour?"))
    assert "teal" in result["messages"][-1]["content"]


@pytest.mark.parametrize("approve", [True, False])
async def test_interrupt_then_resume(server: tuple[str, Path], approve: bool) -> None:
    url, data_dir = server
    client = get_client(url=url)
    thread = await client.threads.create()
    recipient = f"ada+{approve}@example.com"
    await client.runs.wait(
        thread["thread_id"], "agent", input=_ask(f"send an email to {recipient} saying 'hello'")
    )
    state = await client.threads.get_state(thread["thread_id"])
    interrupts = state["interrupts"]
    assert [i["value"]["tool"] for i in interrupts] == ["send_email"]
    outbox = data_dir / "outbox.jsonl"
    sent_before = outbox.read_text() if outbox.exists() else ""
    assert recipient not in sent_before, "nothing is sent before approval"

    result = await client.runs.wait(
        thread["thread_id"], "agent",
        command={"resume": {interrupts[0]["id"]: {"approved": approve, "reason": "not today"}}},
    )
    tool_result = next(m for m in result["messages"] if m["type"] == "tool")
    sent = [json.loads(line)["to"] for line in outbox.read_text().splitlines()] if outbox.exists() else []
    if approve:
        assert tool_result["status"] == "success"
        assert sent.count(recipient) == 1
    else:
        assert tool_result["status"] == "error" and "rejected" in tool_result["content"]
        assert recipient not in sent
    assert (await client.threads.get_state(thread["thread_id"]))["interrupts"] == []


async def test_runs_land_in_the_bulwark_checkpointer(server: tuple[str, Path]) -> None:
    url, data_dir = server
    client = get_client(url=url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "agent", input=_ask("my favourite colour is green"))

    async with open_checkpointer(f"sqlite:///{data_dir / 'checkpoints.db'}") as saver:
        saved = await saver.aget_tuple({"configurable": {"thread_id": thread["thread_id"]}})
    assert saved is not None, "the server's run was not checkpointed by Bulwark's checkpointer"
    assert saved.checkpoint["channel_values"]["messages"][0].content == "my favourite colour is green"

    # The same thread continues from the CLI, in another process.
    result = subprocess.run(
        [str(BIN / "bulwark"), "ask", "what is my favourite colour?", "--thread", thread["thread_id"]],
        cwd=data_dir.parent, env={**os.environ, "BULWARK_DATA_DIR": str(data_dir)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "green" in result.stdout


async def test_memories_are_shared_with_the_store_api(server: tuple[str, Path]) -> None:
    """A memory the agent keeps shows in the server's /store API, and one put there is recalled."""
    client = get_client(url=server[0])
    context = {"user_id": "ada", "tenant_id": "acme"}
    thread = await client.threads.create()
    await client.runs.wait(
        thread["thread_id"], "agent", input=_ask("Remember that my favourite colour is teal."), context=context
    )
    found = await client.store.search_items(["memories", "acme", "ada"], query="favourite colour")
    assert [item["value"]["text"] for item in found["items"]] == ["my favourite colour is teal"]
    assert await client.store.list_namespaces(prefix=["memories", "acme"]) == {"namespaces": [["memories", "acme", "ada"]]}

    await client.store.put_item(["memories", "acme", "ada"], "city", {"text": "I live in Lisbon", "importance": 0.7})
    other = await client.threads.create()
    result = await client.runs.wait(other["thread_id"], "agent", input=_ask("where do I live?"), context=context)
    assert "Lisbon" in result["messages"][-1]["content"]
    stranger = await client.runs.wait(
        (await client.threads.create())["thread_id"], "agent", input=_ask("where do I live?"),
        context={"user_id": "bob", "tenant_id": "acme"},
    )
    assert "Lisbon" not in stranger["messages"][-1]["content"]
    assert (await client.store.search_items(["memories", "acme", "bob"]))["items"] == []


async def test_langgraph_dev_runs_land_in_redis(redis_url: str, tmp_path: Path) -> None:
    with _running("langgraph dev", tmp_path, BULWARK_CHECKPOINTER_URL=redis_url) as (url, data_dir):
        client = get_client(url=url)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "agent", input=_ask("what is 17*23"))
    async with open_checkpointer(redis_url) as saver:
        saved = await saver.aget_tuple({"configurable": {"thread_id": thread["thread_id"]}})
    assert saved is not None, "the run was not checkpointed in Redis"
    assert "391" in saved.checkpoint["channel_values"]["messages"][-1].content
    assert not (data_dir / "checkpoints.db").exists()
