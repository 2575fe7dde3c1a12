"""The hash-chained audit log on both backends (a JSON-lines file and a real Valkey): the chain
and its tampering, one record per run, concurrent appends, retention prunes behind an
anchor, exports, and ``bulwark audit`` (in-process: ``main([...])``)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from bulwark.cli.main import main
from bulwark.persistence.audit import (
    ANCHOR,
    GENESIS,
    AuditChain,
    AuditError,
    AuditLog,
    RedisAuditLog,
    audit_log_for,
)
from bulwark.settings import ConfigError, load_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Clock:
    """A datetime clock that moves only when set."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Backend:
    """One backend under test, with raw access to what it stores (to tamper with it)."""

    kind: str
    path: Path
    url: str

    def log(self, **kwargs: Any) -> AuditChain:
        return AuditLog(self.path, **kwargs) if self.kind == "file" else RedisAuditLog(self.url, **kwargs)

    @property
    def where(self) -> list[str]:
        """``where`` of each stored record, as error messages name them."""
        if self.kind == "file":
            lines = self.path.read_text().splitlines()
            return [f"line {n}" for n, line in enumerate(lines, 1) if json.loads(line)["event"] != ANCHOR]
        return [f"entry {i.decode()}" for i, _ in self._client().xrange("{bulwark:audit}:stream")]

    def records(self) -> list[dict[str, Any]]:
        """The stored records in order, the anchor left out."""
        if self.kind == "file":
            rows = [json.loads(line) for line in self.path.read_text().splitlines()]
            return [r for r in rows if r["event"] != ANCHOR]
        return [json.loads(f[b"record"]) for _, f in self._client().xrange("{bulwark:audit}:stream")]

    def anchor(self) -> dict[str, Any] | None:
        if self.kind == "file":
            first = json.loads(self.path.read_text().splitlines()[0])
            return first if first["event"] == ANCHOR else None
        stored = self._client().get("{bulwark:audit}:anchor")
        return json.loads(stored) if stored else None

    def rewrite(self, records: list[dict[str, Any]], anchor: dict[str, Any] | None = None, *, keep_anchor: bool = True) -> None:
        """Store ``records`` in place of the old ones (Redis: on the old stream ids, in order)."""
        anchor = self.anchor() if keep_anchor and anchor is None else anchor
        if self.kind == "file":
            rows = ([anchor] if anchor else []) + records
            self.path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
            return
        client = self._client()
        ids = [i for i, _ in client.xrange("{bulwark:audit}:stream")]
        client.delete("{bulwark:audit}:stream", "{bulwark:audit}:anchor")
        ids += ["*"] * (len(records) - len(ids))  # records added: new ids after the old ones
        for stream_id, record in zip(ids, records, strict=False):
            client.xadd("{bulwark:audit}:stream", {"record": json.dumps(record, sort_keys=True)}, id=stream_id)
        if anchor:
            client.set("{bulwark:audit}:anchor", json.dumps(anchor, sort_keys=True))

    def cli(self) -> list[str]:
        return ["--path", str(self.path)] if self.kind == "file" else ["--url", self.url]

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    return Backend(request.param, tmp_path / "audit.jsonl", url)


def _fill(log: AuditChain, clock: Clock, rows: list[tuple[int, str, str]]) -> None:
    """Append one record per (days ago, policy, tenant), oldest first."""
    for n, (days_ago, policy, tenant) in enumerate(rows):
        clock.now = NOW - timedelta(days=days_ago)
        log.retention = policy
        log.append({"event": "turn", "tenant_id": tenant, "n": n}, run_id=f"run-{n}")
    clock.now = NOW


# -- the chain ----------------------------------------------------------------------------------


def test_records_form_a_chain_and_verify_counts_them(backend: Backend) -> None:
    log = backend.log(clock=Clock())
    first = log.append({"event": "turn"}, run_id="a")
    second = log.append({"event": "turn", "text": "x" * 10_000}, run_id="b")  # longer than any read block
    assert first is not None and second is not None
    assert first["prev"] == GENESIS and second["prev"] == first["hash"]
    assert (first["run_id"], first["retention"], first["ts"]) == ("a", "LONG_TERM", NOW.isoformat())
    status = log.check()
    assert (status.records, status.pruned, status.head) == (2, 0, second["hash"])
    assert backend.log().verify() == 2  # a second instance (another process, another replica) agrees


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap", "insert"])
def test_tampering_names_the_first_bad_record(backend: Backend, tamper: str) -> None:
    log = backend.log(clock=Clock())
    for i in range(4):
        log.append({"event": "turn", "i": i}, run_id=f"r{i}")
    records, where = backend.records(), backend.where
    if tamper == "edit":
        records[1]["i"] = 99
    elif tamper == "delete":
        del records[1]
    elif tamper == "swap":
        records[1], records[2] = records[2], records[1]
    else:
        records.insert(4, dict(records[3]))  # a replayed copy of the last record
    backend.rewrite(records)
    bad = backend.where[4] if tamper == "insert" else where[1]
    with pytest.raises(AuditError, match=f"broken at {bad}: "):
        backend.log().verify()


def test_same_run_twice_keeps_one_record(backend: Backend) -> None:
    log = backend.log()
    assert log.append({"event": "turn", "try": 1}, run_id="run-1") is not None
    assert log.append({"event": "turn", "try": 2}, run_id="run-1") is None
    assert backend.log().append({"event": "turn", "try": 3}, run_id="run-1") is None  # another process
    assert [r["try"] for r in backend.records()] == [1]


def test_concurrent_appends_from_several_writers_keep_one_chain(backend: Backend) -> None:
    writers = [backend.log() for _ in range(4)]  # separate instances: as separate processes or replicas
    barrier = threading.Barrier(len(writers))

    def write(index: int) -> None:
        barrier.wait()
        for n in range(25):
            writers[index].append({"event": "turn"}, run_id=f"w{index}-{n}")
            writers[index].append({"event": "turn"}, run_id=f"shared-{n}")  # every writer tries it

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.log().verify() == 4 * 25 + 25
    assert len({r["run_id"] for r in backend.records()}) == 125


async def test_async_appends_chain_like_sync_ones(backend: Backend) -> None:
    log = backend.log()
    results = await asyncio.gather(*(log.aappend({"event": "turn"}, run_id=f"r{n % 10}") for n in range(20)))
    assert sum(r is not None for r in results) == 10
    log.append({"event": "turn"}, run_id="sync")
    assert log.verify() == 11


# -- retention -----------------------------------------------------------------------------------


ROWS = [  # (days ago, policy, tenant), oldest first
    (400, "SHORT_TERM", "acme"),
    (300, "PERMANENT", "acme"),
    (200, "SHORT_TERM", "globex"),
    (100, "LONG_TERM", "acme"),
    (40, "SHORT_TERM", "acme"),
    (10, "SHORT_TERM", "acme"),  # newer than its 30 days: kept
    (5, "SHORT_TERM", "globex"),
]


def test_prune_removes_what_retention_lets_go_and_the_rest_still_verifies(backend: Backend) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, ROWS)
    report = log.prune(before=NOW)
    # Gone: the SHORT_TERM records past 30 days. Kept in the pruned span: PERMANENT, LONG_TERM.
    assert (report.removed, report.kept) == (3, 2)
    assert [r["n"] for r in backend.records()] == [1, 3, 5, 6]
    anchor = backend.anchor()
    assert anchor is not None and anchor["hash"] == report.anchor and anchor["pruned"] == 3
    status = backend.log().check()
    assert (status.records, status.pruned) == (4, 3)

    clock.now = NOW + timedelta(days=1)
    log.append({"event": "turn", "n": 7}, run_id="run-7")  # the chain goes on after a prune
    assert backend.log().verify() == 5
    assert log.append({"event": "turn"}, run_id="run-6") is None  # kept records still count as written

    # A later prune: the anchor chains to the earlier one and still covers the kept records.
    clock.now = NOW + timedelta(days=60)
    second = log.prune(before=clock.now)
    assert (second.removed, second.kept) == (3, 2)  # 5, 6 and 7 have expired meanwhile
    assert [r["n"] for r in backend.records()] == [1, 3]
    assert backend.anchor()["prev"] == report.anchor  # type: ignore[index]
    assert backend.log().check().pruned == 6
    log.append({"event": "turn", "n": 8}, run_id="run-8")
    assert backend.log().verify() == 3


def test_prune_keeps_what_is_newer_than_before(backend: Backend) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, ROWS)
    assert log.prune(before=NOW - timedelta(days=250)).removed == 1  # only the 400-day-old record
    assert [r["n"] for r in backend.records()] == [1, 2, 3, 4, 5, 6]
    assert backend.log().verify() == 6


def test_prune_with_nothing_to_remove_leaves_the_log_alone(backend: Backend) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, [(5, "SHORT_TERM", "acme"), (900, "PERMANENT", "acme")])
    report = log.prune(before=NOW)
    assert (report.removed, report.anchor) == (0, None)
    assert backend.anchor() is None and backend.log().verify() == 2


def test_prune_of_every_record_leaves_an_anchor_to_chain_on(backend: Backend) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, [(100, "SHORT_TERM", "acme"), (90, "SHORT_TERM", "acme")])
    assert log.prune(before=NOW).removed == 2
    assert backend.records() == []
    fresh = backend.log(clock=clock)  # a process that never saw the records
    assert fresh.append({"event": "turn"}, run_id="after")["prev"] == backend.anchor()["last_hash"]  # type: ignore[index]
    assert backend.log().check().records == 1


@pytest.mark.parametrize("tamper", ["delete_kept", "edit_anchor", "drop_anchor"])
def test_tampering_after_a_prune_is_detected(backend: Backend, tamper: str) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, ROWS)
    log.prune(before=NOW)
    records, anchor = backend.records(), backend.anchor()
    assert anchor is not None
    if tamper == "delete_kept":
        del records[0]
        backend.rewrite(records)
        expected = "it is not the record the anchor kept here"
    elif tamper == "edit_anchor":
        anchor["pruned"] = 1
        backend.rewrite(records, anchor)
        expected = "(line 1|the anchor): its content does not match"
    else:
        backend.rewrite(records, keep_anchor=False)
        expected = "it does not follow the record before it"
    with pytest.raises(AuditError, match=expected):
        backend.log().verify()


def test_prune_refuses_a_broken_chain(backend: Backend) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, ROWS)
    records = backend.records()
    del records[2]
    backend.rewrite(records)
    with pytest.raises(AuditError):
        log.prune(before=NOW)
    assert backend.anchor() is None and len(backend.records()) == 6  # nothing laundered


def test_prune_while_others_append_loses_no_record(backend: Backend) -> None:
    old = Clock(NOW - timedelta(days=90))  # appenders write records that are already prunable
    writers = [backend.log(clock=old, retention="SHORT_TERM") for _ in range(3)]
    pruner = backend.log()

    def write(index: int) -> None:
        for n in range(40):
            writers[index].append({"event": "turn"}, run_id=f"w{index}-{n}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        pruner.prune(before=NOW)
    for thread in threads:
        thread.join()
    pruner.prune(before=NOW)
    status = backend.log().check()
    assert (status.records, status.pruned) == (0, 3 * 40), "every appended record was pruned, none lost"


def test_retention_policies_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown retention policy 'FOREVER'"):
        AuditLog(Path("x"), retention="FOREVER")
    with pytest.raises(ValueError, match="days must be a whole number"):
        AuditLog(Path("x"), retention_days={"LONG_TERM": -1})
    with pytest.raises(ConfigError, match=r"^BULWARK_AUDIT_RETENTION_DAYS: invalid retention policy name 'short'"):
        load_settings(audit_retention_days={"short": 3})
    with pytest.raises(ConfigError, match=r"^BULWARK_AUDIT_RETENTION: unknown retention policy 'WEEK'"):
        load_settings(audit_retention="WEEK")
    settings = load_settings(audit_retention="WEEK", audit_retention_days={"WEEK": 7})
    assert audit_log_for(settings).retention_days == {"WEEK": 7}


def test_export_selects_a_tenant_and_a_date(backend: Backend) -> None:
    clock = Clock()
    log = backend.log(clock=clock)
    _fill(log, clock, ROWS)
    assert [r["n"] for r in log.export(tenant="globex")] == [2, 6]
    assert [r["n"] for r in log.export(tenant="acme", since=NOW - timedelta(days=50))] == [4, 5]
    assert list(log.export(tenant="initech")) == []


# -- the command ---------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["audit", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_prune_export(backend: Backend, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clock = Clock(datetime.now(UTC))  # the command prunes against the real date
    log = backend.log(clock=clock)
    for n, days_ago in enumerate((100, 50, 1)):
        clock.now = datetime.now(UTC) - timedelta(days=days_ago)
        log.retention = "SHORT_TERM"
        log.append({"event": "turn", "tenant_id": "acme", "n": n}, run_id=f"run-{n}")

    assert _cli(capsys, "verify", *backend.cli())[:2] == (0, f"audit log {log.name}: 3 records intact; head {log.check().head}\n")
    code, out, _ = _cli(capsys, "prune", "--before", datetime.now(UTC).date().isoformat(), *backend.cli())
    assert code == 0 and out.startswith("pruned 2 record(s) older than ")
    assert _cli(capsys, "verify", *backend.cli())[1].startswith(f"audit log {log.name}: 1 records intact, 2 pruned")

    code, out, err = _cli(capsys, "export", "--tenant", "acme", *backend.cli())
    assert code == 0 and [json.loads(line)["n"] for line in out.splitlines()] == [2]
    assert err == "exported 1 record(s) of tenant 'acme'\n"
    target = tmp_path / "export.jsonl"
    assert _cli(capsys, "export", "--tenant", "acme", "--since", "2000-01-01", "--out", str(target), *backend.cli())[0] == 0
    assert [json.loads(line)["n"] for line in target.read_text().splitlines()] == [2]

    records = backend.records()
    records[0]["tenant_id"] = "globex"
    backend.rewrite(records)
    code, out, err = _cli(capsys, "verify", *backend.cli())
    assert (code, out) == (1, "")
    assert err == f"bulwark: error: audit log {log.name} is broken at {backend.where[0]}: its content does not match its hash (edited)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--before", "last tuesday"], "argument --before: invalid date 'last tuesday': use YYYY-MM-DD"),
        (["prune"], "the following arguments are required: --before"),
        (["export", "--tenant", "acme corp"], "argument --tenant: invalid tenant id 'acme corp'"),
        (["export", "--tenant", "acme", "--since", "2026-13-01"], "argument --since: invalid date '2026-13-01'"),
        (["verify", "--url", "http://127.0.0.1:6379"], "argument --url: invalid Redis URL"),
        (["verify", "--url", "redis://127.0.0.1:6379/0?ttl=60"], "argument --url: the audit log never expires"),
        (["verify", "--path", "missing.jsonl"], "no audit log at 'missing.jsonl'"),
        (["verify", "--path", "a", "--url", "redis://h"], "argument --url: not allowed with argument --path"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = _cli(capsys, *args)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1, err


def test_cli_uses_the_deployments_log(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULWARK_DATA_DIR", str(tmp_path / "data"))
    AuditLog(tmp_path / "data" / "audit.jsonl").append({"event": "turn"}, run_id="r")
    code, out, _ = _cli(capsys, "verify")
    assert code == 0 and " 1 records intact" in out

