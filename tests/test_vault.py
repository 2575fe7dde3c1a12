"""The PII vault: numbered placeholders per thread, sealed values in SQLite and Redis, a TTL,
erasure, restoration only for the owner, and the "done when" of issue 15 end to end:
``send_email`` to an address the user typed, approved, reaches the real address while the
model, the checkpoints, the journal, the audit and the logs only ever held ``<EMAIL_1>``."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from clocks import ManualClock
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.types import Command
from scripted_model import RuleModel

from bulwark.cli.main import main
from bulwark.graphs.agent import build_agent
from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import RailPolicy
from bulwark.guardrails.intake import IntakePolicy, prepare_input
from bulwark.guardrails.rails import Guardrails
from bulwark.guardrails.vault import PiiVault, StreamRestorer, VaultScope, load_or_create_key, vault_for
from bulwark.models.cache import reusable
from bulwark.nodes.agent import SYSTEM_PROMPT
from bulwark.persistence.checkpoints import open_checkpointer_for
from bulwark.persistence.vault import RedisVaultStore, SqliteVaultStore, VaultStore
from bulwark.settings import Settings, load_settings
from bulwark.tools.builtin import builtin_registry

POLICY = RailPolicy()
KEY = bytes(range(32))
ADA = VaultScope(tenant_id="acme", thread_id="t1", user_id="ada")
TTL_S = 3600


class Backend:
    """Where a vault store keeps its data, and every byte it stored, read around the store."""

    def __init__(self, kind: str, data_dir: Path, url: str = "") -> None:
        self.kind, self.data_dir, self.url = kind, data_dir, url

    def store(self, clock: ManualClock) -> VaultStore:
        if self.kind == "sqlite":
            return SqliteVaultStore(self.data_dir / "vault.db", ttl_s=TTL_S, clock=clock)
        return RedisVaultStore(self.url, ttl_s=TTL_S, clock=clock)

    def settings(self, **values: object) -> Settings:
        url = {"checkpointer_url": self.url} if self.url else {}
        return load_settings(data_dir=self.data_dir, **url, **values)

    def raw(self) -> bytes:
        if self.kind == "sqlite":
            return b"\n".join(p.read_bytes() for p in self.data_dir.rglob("*") if p.is_file())
        client = redis.Redis.from_url(self.url)
        try:
            chunks = []
            for key in client.keys("*"):
                kind = client.type(key)
                chunks.append(key)
                if kind == b"hash":
                    chunks += [b for pair in client.hgetall(key).items() for b in pair]
                elif kind == b"set":
                    chunks += list(client.smembers(key))
                elif kind == b"string":
                    chunks.append(client.get(key) or b"")
                elif kind == b"stream":
                    chunks += [repr(e).encode() for e in client.xrange(key)]
                elif kind == b"zset":
                    chunks += list(client.zrange(key, 0, -1))
                elif kind == b"list":
                    chunks += list(client.lrange(key, 0, -1))
                else:
                    chunks.append(client.dump(key) or b"")
            return b"\n".join(chunks)
        finally:
            client.close()


@pytest.fixture(params=["sqlite", pytest.param("valkey", marks=pytest.mark.slow), pytest.param("redis7", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "data")
    servers = request.getfixturevalue("redis_servers")
    if reason := servers.unavailable_reason(request.param):
        pytest.skip(f"{request.param}: {reason}")
    return Backend(request.param, tmp_path / "data", servers.fresh(request.param).url)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def vault(backend: Backend, clock: ManualClock) -> Iterator[PiiVault]:
    store = backend.store(clock)
    yield PiiVault(store, key=KEY)
    store.close()


def _hide(vault: PiiVault, text: str, scope: VaultScope = ADA) -> str:
    return vault.pseudonymize(text, policy=POLICY, scope=scope)[0]


# -- placeholders -----------------------------------------------------------------------------


def test_the_same_value_keeps_its_number_within_a_thread(vault: PiiVault) -> None:
    assert _hide(vault, "mail alice@example.com and bob@example.com") == "mail <EMAIL_1> and <EMAIL_2>"
    assert _hide(vault, "Alice@Example.com again, not carol@example.com") == "<EMAIL_1> again, not <EMAIL_3>"
    text, found = vault.pseudonymize("My name is John Smith, call +1 415 555 0132", policy=POLICY, scope=ADA)
    assert text == "My name is <PERSON_1>, call <PHONE_NUMBER_1>"
    assert [f.reason for f in found] == ["pii:PERSON", "pii:PHONE_NUMBER"]
    assert _hide(vault, "key sk-abcdefghijklmnopqrstuvwx for alice@example.com") == "key sk-abcdefghijklmnopqrstuvwx for <EMAIL_1>", (
        "secrets are not vaulted: the rail redacts them one way"
    )
    other = VaultScope(tenant_id="acme", thread_id="t2", user_id="ada")
    assert _hide(vault, "bob@example.com", other) == "<EMAIL_1>", "numbering is per thread"
    assert vault.restore("<EMAIL_1>, <EMAIL_2>, <EMAIL_3>, <EMAIL_9>", scope=ADA) == (
        "alice@example.com, bob@example.com, carol@example.com, <EMAIL_9>"
    )
    assert vault.restore("<EMAIL_1>", scope=other) == "bob@example.com"


async def test_async_twins_share_the_numbering(vault: PiiVault) -> None:
    assert _hide(vault, "alice@example.com") == "<EMAIL_1>"
    text, _ = await vault.apseudonymize("bob@example.com, alice@example.com", policy=POLICY, scope=ADA)
    assert text == "<EMAIL_2>, <EMAIL_1>"
    assert await vault.arestore(text, scope=ADA) == "bob@example.com, alice@example.com"
    assert await vault.arestore_args({"to": "<EMAIL_2>"}, ["to"], scope=ADA) == {"to": "bob@example.com"}


def test_racing_writers_never_share_a_number(vault: PiiVault) -> None:
    texts = [f"user{i}@example.com" for i in range(8)]
    results: list[str] = []
    threads = [threading.Thread(target=lambda t=t: results.append(_hide(vault, t))) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"<EMAIL_{n}>" for n in range(1, 9))
    assert sorted(vault.restore(" ".join(results), scope=ADA).split()) == sorted(texts)


# -- who gets values back ---------------------------------------------------------------------


def test_only_the_owner_in_its_tenant_gets_values_back(vault: PiiVault) -> None:
    _hide(vault, "alice@example.com")
    bob = VaultScope(tenant_id="acme", thread_id="t1", user_id="bob")
    carol = VaultScope(tenant_id="globex", thread_id="t1", user_id="ada")  # same thread id and user name
    assert vault.restore("<EMAIL_1>", scope=ADA) == "alice@example.com"
    assert vault.restore("<EMAIL_1>", scope=bob) == "<EMAIL_1>"
    assert vault.restore("<EMAIL_1>", scope=carol) == "<EMAIL_1>"
    assert _hide(vault, "mallory@example.com", bob) == "<EMAIL_2>", "bob writes to ada's thread (the server refuses his run)"
    assert vault.restore("<EMAIL_2>", scope=bob) == "<EMAIL_2>", "... but reads nothing back"


def test_a_value_under_another_key_or_moved_is_not_restored(backend: Backend, clock: ManualClock) -> None:
    store = backend.store(clock)
    _hide(PiiVault(store, key=KEY), "alice@example.com and bob@example.com")
    assert PiiVault(store, key=bytes(32)).restore("<EMAIL_1>", scope=ADA) == "<EMAIL_1>"
    store.close()


def test_a_sealed_value_moved_to_another_placeholder_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    store = SqliteVaultStore(tmp_path / "vault.db", ttl_s=TTL_S, clock=clock)
    vault = PiiVault(store, key=KEY)
    _hide(vault, "alice@example.com and bob@example.com")
    with sqlite3.connect(store.path) as db:  # someone with write access to the file swaps values
        (bobs,) = db.execute("SELECT sealed FROM vault_values WHERE placeholder = '<EMAIL_2>'").fetchone()
        db.execute("UPDATE vault_values SET sealed = ? WHERE placeholder = '<EMAIL_1>'", (bobs,))
    assert vault.restore("<EMAIL_1> <EMAIL_2>", scope=ADA) == "<EMAIL_1> bob@example.com"


def test_restore_args_touches_only_the_named_arguments(vault: PiiVault) -> None:
    _hide(vault, "alice@example.com")
    args = {"to": "<EMAIL_1>", "subject": "<EMAIL_1>", "body": "hi <EMAIL_1>", "cc": ["<EMAIL_1>"], "n": 3}
    assert vault.restore_args(args, ["to", "cc", "n"], scope=ADA) == {**args, "to": "alice@example.com", "cc": ["alice@example.com"]}
    assert args["to"] == "<EMAIL_1>", "a copy"


def test_a_stream_restorer_waits_for_a_split_placeholder() -> None:
    restorer = StreamRestorer({"<EMAIL_1>": "alice@example.com"})
    pieces = ["Sent to <EM", "AIL_", "1>. Done <", "3 <X"]
    out = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert out == "Sent to alice@example.com. Done <3 <X"
    assert restorer.unknown("<EMAIL_2> <EMAIL_1>") == {"<EMAIL_2>"}
    restorer.feed("to <EMA")
    assert restorer.unknown("IL_3>") == {"<EMAIL_3>"}, "with what is held back"


# -- at rest ----------------------------------------------------------------------------------


def test_values_are_never_stored_in_the_clear(vault: PiiVault, backend: Backend) -> None:
    _hide(vault, "mail alice.liddell@example.com, I am Alice Liddell of 12 Baker Street")
    raw = backend.raw()
    assert raw, "something was stored"
    for leak in (b"alice.liddell@example.com", b"Liddell", b"Baker", b"ada"):
        assert leak not in raw and leak.lower() not in raw.lower(), leak
    other = VaultScope(tenant_id="acme", thread_id="t2", user_id="ada")
    _hide(vault, "alice.liddell@example.com", other)
    digests = [v.digest for scope in (ADA, other) for v in vault.store.load(scope.tenant_id, scope.thread_id).values.values()]
    assert len(digests) == len(set(digests)), "digests do not link one value across threads"


def test_values_expire_after_the_ttl_without_sleeping(vault: PiiVault, clock: ManualClock) -> None:
    _hide(vault, "alice@example.com")
    clock.advance(TTL_S - 1)
    assert _hide(vault, "bob@example.com") == "<EMAIL_2>", "a write extends the thread's expiry"
    clock.advance(TTL_S - 1)
    assert vault.restore("<EMAIL_1>", scope=ADA) == "alice@example.com"
    clock.advance(2)
    assert vault.restore("<EMAIL_1>", scope=ADA) == "<EMAIL_1>", "expired"
    assert _hide(vault, "carol@example.com") == "<EMAIL_1>", "an expired thread starts again"
    assert vault.restore("<EMAIL_1> <EMAIL_2>", scope=ADA) == "carol@example.com <EMAIL_2>"


def test_values_are_erased_with_the_thread_and_the_user(vault: PiiVault) -> None:
    t2, t3 = (VaultScope(tenant_id="acme", thread_id=t, user_id="ada") for t in ("t2", "t3"))
    globex = VaultScope(tenant_id="globex", thread_id="t1", user_id="ada")
    bobs = VaultScope(tenant_id="acme", thread_id="b1", user_id="bob")
    for scope in (ADA, t2, t3, globex, bobs):
        _hide(vault, "alice@example.com", scope)
    assert vault.forget_thread("t1", tenant_id="acme", user_id="bob") == 0, "not bob's to erase"
    assert vault.forget_thread("t1", tenant_id="acme") == 1
    assert vault.restore("<EMAIL_1>", scope=ADA) == "<EMAIL_1>"
    assert vault.restore("<EMAIL_1>", scope=globex) == "alice@example.com", "another tenant's thread t1 stays"
    assert vault.forget_user(tenant_id="acme", user_id="ada") == 2
    assert [vault.restore("<EMAIL_1>", scope=s) for s in (t2, t3, globex, bobs)] == ["<EMAIL_1>", "<EMAIL_1>", "alice@example.com", "alice@example.com"]
    assert asyncio.run(vault.aforget_thread("t1")) == 1, "no tenant: every tenant's thread t1"
    assert vault.restore("<EMAIL_1>", scope=globex) == "<EMAIL_1>"


def test_the_embedded_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "data" / "vault.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["vault.key"], "no temporary file left"
    settings = load_settings(data_dir=tmp_path / "data")
    assert vault_for(settings)._key == key
    assert vault_for(load_settings(data_dir=tmp_path / "data", vault=False)) is None
    configured = load_settings(data_dir=tmp_path / "other", vault_key="11" * 32)
    assert vault_for(configured)._key == bytes([0x11]) * 32 and not (tmp_path / "other" / "vault.key").exists()


def test_numbered_placeholders_keep_requests_out_of_the_answer_cache() -> None:
    assert not reusable("write to <EMAIL_1> please") and not reusable("ask <PERSON_12>")
    assert reusable("what is 2+2?")


# -- end to end: the "done when" ------------------------------------------------------

EMAIL = "alice@example.com"


def _sends_to_the_placeholder(seen: list[str]) -> RuleModel:
    """A model that mails whatever address placeholder the user gave, then reports the tool's
    reply; it records every text it is shown."""

    def reply(messages: list[BaseMessage]) -> AIMessage:
        seen.extend(m.text for m in messages)
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(f"Done: {last.text}")
        to = re.search(r"<EMAIL_\d+>", last.text)
        assert to, "the model is given the placeholder"
        call = {"name": "send_email", "args": {"to": to.group(), "subject": "hi", "body": "hi"}, "id": "call-1"}
        return AIMessage("", tool_calls=[call])

    return RuleModel(reply=reply)


async def test_send_email_to_the_typed_address_after_approval(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = backend.settings()
    seen: list[str] = []
    vault = vault_for(settings)
    scope = VaultScope(tenant_id="acme", thread_id="mail", user_id="alice")
    config = {"configurable": {"thread_id": "mail"}}
    context = RunContext(user_id="alice", tenant_id="acme")
    rails = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
    async with open_checkpointer_for(settings) as saver:
        agent = build_agent(settings, checkpointer=saver, models={"offline": _sends_to_the_placeholder(seen)}, vault=vault)
        typed = await prepare_input(
            {"messages": [{"role": "user", "content": f"send an email to {EMAIL} saying hi"}]},
            rails=rails, policy=IntakePolicy(), vault=vault, scope=scope,
        )
        await agent.ainvoke(typed, config, context=context)
        (pending,) = (await agent.aget_state(config)).interrupts
        assert pending.value["args"]["to"] == "<EMAIL_1>", "the stored approval request keeps the placeholder"
        assert vault.restore_args(pending.value["args"], ["to"], scope=scope)["to"] == EMAIL, "the approver sees the address"
        result = await agent.ainvoke(Command(resume={pending.id: {"approved": True}}), config, context=context)

    sent = [json.loads(line) for line in (settings.data_dir / "outbox.jsonl").read_text().splitlines()]
    assert [m["to"] for m in sent] == [EMAIL], "sent to the real address"
    assert sent[0]["body"] == "hi"
    answer = result["messages"][-1].text
    assert answer.startswith("Done: email to <EMAIL_1> queued"), "the tool's reply maps back to the same placeholder"
    assert vault.restore(answer, scope=scope).startswith(f"Done: email to {EMAIL} queued"), "restored for the owner"
    tool = next(m for m in result["messages"] if isinstance(m, ToolMessage))
    assert tool.response_metadata["guardrails"]["reasons"] == ["pii:EMAIL"]
    assert seen and all(EMAIL not in text for text in seen), "the model never saw the address"
    assert "<EMAIL_1>" in " ".join(seen)
    stored = backend.raw()
    if backend.kind == "sqlite":  # checkpoints, vault, effect journal, audit log, outbox
        stored = b"\n".join(p.read_bytes() for p in settings.data_dir.rglob("*") if p.is_file() and p.name != "outbox.jsonl")
        assert {p.name for p in settings.data_dir.iterdir()} >= {"checkpoints.db", "vault.db", "effects.db", "audit.jsonl"}
    assert EMAIL.encode() not in stored and b"<EMAIL_1>" in stored
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert EMAIL not in logged


async def test_the_offline_model_mails_the_placeholder(settings: Settings) -> None:
    vault = vault_for(settings)
    config = {"configurable": {"thread_id": "offline"}}
    async with open_checkpointer_for(settings) as saver:
        agent = build_agent(settings, checkpointer=saver, vault=vault)
        await agent.ainvoke({"messages": [("user", f"send an email to {EMAIL} saying hi")]}, config, context=RunContext())
        (pending,) = (await agent.aget_state(config)).interrupts
        assert pending.value["args"]["to"] == "<EMAIL_1>"
        await agent.ainvoke(Command(resume={pending.id: True}), config, context=RunContext())
    assert json.loads((settings.data_dir / "outbox.jsonl").read_text())["to"] == EMAIL


def test_the_cli_shows_the_approver_and_the_user_their_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bulwark ask`` then ``bulwark resume``: the approval prompt and the answer show the
    address; the checkpoints hold the placeholder; ``threads delete`` and ``memory forget``
    erase the vault's values."""
    settings = load_settings(data_dir=tmp_path / "data")
    vault = vault_for(settings)
    seen: list[str] = []
    model = _sends_to_the_placeholder(seen)
    import bulwark.cli.main as cli

    real_open_agent = cli.open_agent
    monkeypatch.setattr(cli, "open_agent", lambda s, **kw: real_open_agent(s, models={"offline": model}, **kw))
    monkeypatch.setenv("BULWARK_DATA_DIR", str(tmp_path / "data"))
    assert main(["ask", f"send an email to {EMAIL} saying hi", "--thread", "cli", "--user", "alice"]) == 0
    out = capsys.readouterr().out
    assert f"send_email(to='{EMAIL}', subject='hi', body='hi')" in out, out
    assert main(["resume", "--thread", "cli", "--user", "alice", "--approve"]) == 0
    out = capsys.readouterr().out
    assert f"Done: email to {EMAIL} queued" in out, out
    assert all(EMAIL not in text for text in seen)
    with sqlite3.connect(tmp_path / "data" / "checkpoints.db") as db:
        rows = b"".join(bytes(r[0]) for r in db.execute("SELECT checkpoint FROM checkpoints"))
        rows += b"".join(bytes(r[0]) for r in db.execute("SELECT value FROM writes WHERE value IS NOT NULL"))
    assert EMAIL.encode() not in rows
    scope = VaultScope(tenant_id="default", thread_id="cli", user_id="alice")
    assert vault.restore("<EMAIL_1>", scope=scope) == EMAIL
    assert main(["ask", f"and to {EMAIL}", "--thread", "other", "--user", "alice"]) == 0
    assert main(["threads", "delete", "--thread", "cli"]) == 0
    assert vault.restore("<EMAIL_1>", scope=scope) == "<EMAIL_1>", "erased with the thread"
    other = VaultScope(tenant_id="default", thread_id="other", user_id="alice")
    assert vault.restore("<EMAIL_1>", scope=other) == EMAIL
    capsys.readouterr()
    assert main(["memory", "forget", "--user", "alice"]) == 0
    assert "PII vault values of 1 thread(s)" in capsys.readouterr().out
    assert vault.restore("<EMAIL_1>", scope=other) == "<EMAIL_1>", "erased with the user"


def test_the_registry_gives_send_email_the_to_argument_only(settings: Settings) -> None:
    registry = builtin_registry(settings)
    assert registry.policy("send_email").pii_args == ("to",)
    assert all(registry.policy(t.name).pii_args == () for t in registry.tools if t.name != "send_email")


# -- the server's responses -------------------------------------------------------------------


async def test_thread_responses_restore_only_the_owners_values(tmp_path: Path) -> None:
    """:class:`VaultRestore` around an app that answers what a thread holds: the owner reads
    the values (JSON-escaped, whole or streamed in pieces), anyone else the placeholders."""
    import httpx
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from bulwark.server.credentials import ApiKeyAuthenticator, ApiKeys
    from bulwark.server.routes import VaultRestore

    vault = PiiVault(SqliteVaultStore(tmp_path / "vault.db", ttl_s=TTL_S), key=KEY)
    hidden = _hide(vault, "mail ann@example.com and bob@example.com, says José García", VaultScope(tenant_id="acme", thread_id="t1", user_id="ann"))
    assert hidden == "mail <EMAIL_1> and <EMAIL_2>, says <PERSON_1>"
    keys = ApiKeys(tmp_path / "keys.json")
    ann, bob, eve = (keys.create(tenant_id=t, user_id=u)[1] for t, u in (("acme", "ann"), ("acme", "bob"), ("globex", "ann")))

    async def state(request):
        return JSONResponse({"values": {"messages": [{"content": hidden}]}})

    async def stream(request):
        async def pieces():
            for piece in ('data: {"content": "to <EM', 'AIL_2> ok"}\n\n'):
                yield piece.encode()
        return StreamingResponse(pieces(), media_type="text/event-stream")

    async def missing(request):
        return JSONResponse({"detail": "<EMAIL_1> not found"}, status_code=404)

    app = Starlette(
        routes=[Route("/threads/{tid}/state", state), Route("/threads/{tid}/runs/stream", stream, methods=["POST"]),
                Route("/threads/{tid}/history", missing), Route("/other/{tid}/state", state)],
        middleware=[Middleware(VaultRestore, vault=vault, authenticator=ApiKeyAuthenticator(keys))],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        def get(path: str, key: str | None):
            return http.get(path, headers={"authorization": f"Bearer {key}"} if key else {})

        owned = await get("/threads/t1/state", ann)
        assert owned.json()["values"]["messages"][0]["content"] == "mail ann@example.com and bob@example.com, says José García"
        assert int(owned.headers.get("content-length", len(owned.content))) == len(owned.content)
        streamed = await http.post("/threads/t1/runs/stream", headers={"authorization": f"Bearer {ann}"})
        assert streamed.text == 'data: {"content": "to bob@example.com ok"}\n\n'
        for key in (bob, eve, None):  # another user, another tenant, no credential
            assert "<EMAIL_1> and <EMAIL_2>" in (await get("/threads/t1/state", key)).text
        assert (await get("/threads/t2/state", ann)).json()["values"]["messages"][0]["content"] == hidden, "another thread"
        assert "<EMAIL_1>" in (await get("/threads/t1/history", ann)).text, "only successful responses"
        assert "<EMAIL_1>" in (await get("/other/t1/state", ann)).text, "only thread paths"


def test_memories_keep_placeholders_without_their_thread_number() -> None:
    # A memory outlives its thread: <EMAIL_1> would name whatever <EMAIL_1> is in the next one.
    from bulwark.memory.longterm import Fact, memory_item

    _, value = memory_item(Fact(text="my email is <EMAIL_1>, my manager is <PERSON_12>", kind="explicit", importance=1.0), source="t")
    assert value["text"] == "my email is <EMAIL>, my manager is <PERSON>"
