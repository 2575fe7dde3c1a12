"""The agent on the real LangGraph server, driven with langgraph-sdk.

Both ways of starting it are covered: ``langgraph dev`` with the repo's langgraph.json
(what Studio and LangGraph Platform users run) and ``bulwark serve`` (the main job).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client

from agent_server import BIN, LAUNCHERS, PROD, running
from stored import stored_messages
from bulwark.persistence.checkpoints import open_checkpointer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=LAUNCHERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running server on a free port, on the embedded defaults (the agent emails the
    addresses users type through the PII vault: the model only sees ``<EMAIL_1>``)."""
    with running(request.param, tmp_path_factory.mktemp("server")) as server:
        yield server.url, server.data_dir


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
    assert nodes[0] == "guard_input"
    assert set(nodes[1:3]) == {"recall", "route"}, "recall and route run in one step"
    assert nodes[3] == "agent"
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


async def test_runs_land_in_the_bulwark_checkpointer(server: tuple[str, Path], request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["server"] == PROD:
        pytest.skip("the production engine keeps checkpoints in its own Postgres saver (README, Deployment)")
    url, data_dir = server
    client = get_client(url=url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "agent", input=_ask("my favourite colour is green"))

    async with open_checkpointer(f"sqlite:///{data_dir / 'checkpoints.db'}") as saver:
        saved = await stored_messages(saver, thread["thread_id"])
    assert saved, "the server's run was not checkpointed by Bulwark's checkpointer"
    assert saved[0].content == "my favourite colour is green"

    # The same thread continues from the CLI, in another process.
    result = subprocess.run(
        [str(BIN / "bulwark"), "ask", "what is my favourite colour?", "--thread", thread["thread_id"]],
        cwd=data_dir.parent, env={**os.environ, "BULWARK_DATA_DIR": str(data_dir)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "green" in result.stdout


async def test_memories_are_shared_with_the_store_api(server: tuple[str, Path]) -> None:
    """A memory the agent keeps shows in the server's /store API, and one put there is recalled.

    Without auth (the loopback default) every client is the local user of tenant default."""
    client = get_client(url=server[0])
    own = ["memories", "default", "anonymous"]
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "agent", input=_ask("Remember that my favourite colour is teal."))
    found = await client.store.search_items(own, query="favourite colour")
    assert [item["value"]["text"] for item in found["items"]][0] == "my favourite colour is teal"
    assert await client.store.list_namespaces(prefix=["memories"]) == {"namespaces": [own]}

    await client.store.put_item(own, "city", {"text": "I live in Lisbon", "importance": 0.7})
    other = await client.threads.create()
    result = await client.runs.wait(other["thread_id"], "agent", input=_ask("where do I live?"))
    assert "Lisbon" in result["messages"][-1]["content"]


async def test_langgraph_dev_runs_land_in_redis(redis_url: str, tmp_path: Path) -> None:
    with running("langgraph dev", tmp_path, BULWARK_CHECKPOINTER_URL=redis_url) as server:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "agent", input=_ask("what is 17*23"))
    async with open_checkpointer(redis_url) as saver:
        saved = await stored_messages(saver, thread["thread_id"])
    assert saved, "the run was not checkpointed in Redis"
    assert "391" in saved[-1].content
    assert not (server.data_dir / "checkpoints.db").exists()
