"""The usage ledger on both backends (SQLite and a real Valkey and Redis 7): reservations
against daily and monthly budgets, settling and releasing, windows rolling over at UTC
midnight and month start (injected clock, nobody sleeps), expiry and retention, reports,
threads, processes and coroutines racing for a budget without overspending it, no raw user
id at rest, budgets from the settings, and ``bulwark usage`` (in-process: ``main([...])``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from clocks import ManualClock

from bulwark.cli.main import main
from bulwark.persistence.usage import (
    Budget,
    Charge,
    RedisUsageLedger,
    SqliteUsageLedger,
    UsageLedger,
    budget_for,
    check_budgets,
    usage_ledger_for,
)
from bulwark.settings import ConfigError, load_settings

NOON = datetime(2026, 6, 10, 12, tzinfo=UTC)
USER = "ada.lovelace@example.com"


def at(when: datetime) -> float:
    return when.timestamp()


def charge(**fields: Any) -> Charge:
    """A charge of tenant acme by USER, with ``fields`` changed."""
    values: dict[str, Any] = {
        "tenant": "acme", "user_id": USER, "model": "small", "input_tokens": 100, "output_tokens": 20,
        "cost_usd": 0.01, "thread_id": "t1", "run_id": "r1",
    }
    return Charge(**{**values, **fields})


@dataclass
class Backend:
    """One backend under test, with raw access to what it stores."""

    kind: str
    data_dir: Path
    url: str

    def ledger(self, clock: ManualClock | None = None) -> UsageLedger:
        options: dict[str, Any] = {"clock": clock} if clock else {}
        if self.kind == "sqlite":
            return SqliteUsageLedger(self.data_dir / "usage.db", **options)
        return RedisUsageLedger(self.url, **options)

    def env(self) -> dict[str, str]:
        """The settings that make the deployment's ledger this one."""
        env = {"BULWARK_DATA_DIR": str(self.data_dir)}
        return env if self.kind == "sqlite" else {**env, "BULWARK_CHECKPOINTER_URL": self.url}

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stored(self) -> bytes:
        """Everything stored: the SQLite files' bytes, or every Redis key with its value."""
        if self.kind == "sqlite":
            return b"".join(path.read_bytes() for path in sorted(self.data_dir.glob("usage.db*")))
        client, parts = self.client(), []
        for key in client.scan_iter():
            parts.append(key)
            if client.type(key) == "stream":
                parts += [json.dumps(fields) for _, fields in client.xrange(key)]
            else:
                parts.append(client.get(key) or "")
        return "\n".join(parts).encode()


@pytest.fixture(params=["sqlite", pytest.param("valkey", marks=pytest.mark.slow), pytest.param("redis7", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path / "data", "")
    servers = request.getfixturevalue("redis_servers")
    if reason := servers.unavailable_reason(request.param):
        pytest.skip(f"{request.param}: {reason}")
    return Backend(request.param, tmp_path / "data", servers.fresh(request.param).url)


# -- reservations --------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["daily_usd", "monthly_usd"])
def test_reserve_charges_only_what_fits_the_window(backend: Backend, window: str) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    budget = Budget(**{window: 1.0})
    assert ledger.reserve("acme", 0.6, budget) is not None
    assert ledger.reserve("acme", 0.5, budget) is None
    assert ledger.spent("acme") == {"day": 0.6, "month": 0.6}  # the refused one charged nothing
    assert ledger.remaining("acme", budget) == 0.4
    held = ledger.reserve("acme", 0.4, budget)  # exactly up to the cap
    assert held is not None and (held.tenant, held.amount_usd, held.day, held.month) == ("acme", 0.4, "2026-06-10", "2026-06")
    assert ledger.remaining("acme", budget) == 0.0
    assert ledger.reserve("acme", 0.000001, budget) is None
    assert ledger.reserve("globex", 1.0, budget) is not None  # each tenant has its own windows


def test_the_tightest_window_decides(backend: Backend) -> None:
    clock = ManualClock(at(NOON))
    ledger = backend.ledger(clock)
    budget = Budget(daily_usd=2.0, monthly_usd=3.0)
    assert ledger.remaining("acme", budget) == 2.0
    assert ledger.reserve("acme", 1.5, budget) is not None
    assert ledger.remaining("acme", budget) == 0.5  # the day's cap
    clock.advance(86_400)
    assert ledger.remaining("acme", budget) == 1.5  # a new day: now the month's cap
    assert ledger.reserve("acme", 1.6, budget) is None
    assert ledger.reserve("acme", 1.5, budget) is not None
    assert ledger.spent("acme") == {"day": 1.5, "month": 3.0}
    assert ledger.remaining("acme", Budget()) is None
    assert ledger.reserve("acme", 1000.0, Budget()) is not None  # no cap: always fits, still charged
    assert ledger.spent("acme") == {"day": 1001.5, "month": 1003.0}


def test_settle_replaces_the_reservation_by_the_real_cost(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    budget = Budget(daily_usd=1.0)
    held = ledger.reserve("acme", 0.5, budget)
    assert held is not None
    assert ledger.settle(held, charge(cost_usd=0.2)) is True
    assert ledger.spent("acme")["day"] == 0.2
    assert ledger.settle(held, charge(cost_usd=0.2)) is False  # a retried settle charges nothing
    assert ledger.release(held) is False
    assert ledger.spent("acme")["day"] == 0.2

    over = ledger.reserve("acme", 0.1, budget)
    assert ledger.settle(over, charge(cost_usd=0.9)) is True  # the call happened: over the cap
    assert ledger.spent("acme")["day"] == 1.1
    assert ledger.remaining("acme", budget) == 0.0
    assert ledger.reserve("acme", 0.01, budget) is None
    assert ledger.settle(None, charge(cost_usd=0.05)) is True  # no reservation: added
    assert ledger.spent("acme")["day"] == 1.15
    assert [(row["calls"], row["cost_usd"]) for row in ledger.report()] == [(3, 1.15)]

    with pytest.raises(ValueError, match="reservation of tenant 'acme' settled with a charge of tenant 'globex'"):
        ledger.settle(ledger.reserve("acme", 0.0, Budget()), charge(tenant="globex"))


def test_release_gives_the_reservation_back_and_records_nothing(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    held = ledger.reserve("acme", 0.3, Budget(daily_usd=1.0))
    assert held is not None and ledger.spent("acme")["day"] == 0.3
    assert ledger.release(held) is True
    assert ledger.spent("acme") == {"day": 0.0, "month": 0.0}
    assert ledger.release(held) is False
    assert ledger.settle(held, charge()) is False
    assert ledger.report() == []


def test_amounts_are_checked(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    with pytest.raises(ValueError, match="amount_usd must be a number of USD >= 0, got -1"):
        ledger.reserve("acme", -1, Budget())
    with pytest.raises(ValueError, match="cost_usd must be a number of USD >= 0, got nan"):
        charge(cost_usd=float("nan"))
    with pytest.raises(ValueError, match="token counts must be >= 0"):
        charge(output_tokens=-1)
    with pytest.raises(ValueError, match="budget daily_usd must be a number of USD >= 0 or null"):
        Budget(daily_usd=-0.01)


# -- windows -------------------------------------------------------------------------------------


def test_windows_roll_over_at_utc_midnight_and_month_start(backend: Backend) -> None:
    clock = ManualClock(at(datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)))
    ledger = backend.ledger(clock)
    budget = Budget(daily_usd=1.0, monthly_usd=1.5)
    assert ledger.reserve("acme", 1.0, budget) is not None
    assert ledger.reserve("acme", 0.1, budget) is None
    clock.advance(0.999)
    assert ledger.reserve("acme", 0.1, budget) is None  # 23:59:59.999: still June 30
    clock.advance(0.001)  # 2026-07-01T00:00:00Z: a new day and a new month
    assert ledger.spent("acme") == {"day": 0.0, "month": 0.0}
    assert ledger.reserve("acme", 1.0, budget) is not None
    clock.advance(86_400)  # July 2: a new day, the same month
    assert ledger.spent("acme") == {"day": 0.0, "month": 1.0}
    assert ledger.reserve("acme", 0.6, budget) is None  # fits the day, not the month
    assert ledger.reserve("acme", 0.5, budget) is not None
    assert ledger.spent("acme") == {"day": 0.5, "month": 1.5}


def test_a_call_across_midnight_counts_on_the_day_it_ended(backend: Backend) -> None:
    clock = ManualClock(at(datetime(2026, 6, 10, 23, 59, 59, tzinfo=UTC)))
    ledger = backend.ledger(clock)
    held = ledger.reserve("acme", 0.5, Budget(daily_usd=1.0))
    clock.advance(2)
    assert ledger.settle(held, charge(cost_usd=0.2)) is True
    assert ledger.spent("acme") == {"day": 0.2, "month": 0.2}
    ledger.settle(None, charge(cost_usd=0.3, at=at(datetime(2026, 6, 11, 8, tzinfo=UTC))))  # a time of its own
    assert ledger.spent("acme") == {"day": 0.5, "month": 0.5}
    assert [(row["day"], row["cost_usd"]) for row in ledger.report(by=("day",))] == [("2026-06-11", 0.5)]


def test_counters_and_lost_reservations_expire(backend: Backend) -> None:
    clock = ManualClock(at(NOON))
    ledger = backend.ledger(clock)
    ledger.reserve("acme", 0.5, Budget(daily_usd=1.0))  # never settled: its process "crashed"
    if backend.kind == "sqlite":
        clock.advance(40 * 86_400)  # past June's end and its margin
        ledger.settle(None, charge())
        with sqlite3.connect(backend.data_dir / "usage.db") as db:
            assert db.execute("SELECT window FROM windows ORDER BY window").fetchall() == [("day:2026-07-20",), ("month:2026-07",)]
            assert db.execute("SELECT COUNT(*) FROM reservations").fetchone() == (0,)
        return
    client = backend.client()
    day_ttl = 12 * 3600 + 3600  # to midnight, and an hour's margin
    month_ttl = int(at(datetime(2026, 7, 1, tzinfo=UTC)) - at(NOON)) + 3600
    (reservation,) = client.keys("{bulwark:usage}:reservation:*")
    for key, expected in (("day:2026-06-10:acme", day_ttl), ("month:2026-06:acme", month_ttl), (reservation.split(":", 2)[2], month_ttl)):
        assert expected - 60 < client.ttl("{bulwark:usage}:" + key) <= expected, key


def test_the_ledger_keeps_400_days(backend: Backend) -> None:
    clock = ManualClock(at(NOON))
    ledger = backend.ledger(clock)
    for n in range(300):
        ledger.settle(None, charge(run_id=f"old-{n}"))
    clock.advance(401 * 86_400)
    ledger.settle(None, charge(model="new"))
    kept = {row["model"]: row["calls"] for row in ledger.report(by=("model",))}
    assert kept["new"] == 1
    # SQLite deletes exactly; Redis trims whole stream nodes (MINID ~): at most one node is left.
    assert kept.get("small", 0) == 0 if backend.kind == "sqlite" else kept.get("small", 0) < 100


# -- reports -------------------------------------------------------------------------------------

DAY1, DAY2, DAY3 = (NOON + timedelta(days=n) for n in range(3))
CALLS = [
    charge(at=at(DAY1), model="small", thread_id="t1", cost_usd=0.01, input_tokens=100, output_tokens=10),
    charge(at=at(DAY1), model="large", thread_id="t2", cost_usd=0.25, input_tokens=300, output_tokens=40, estimated=True),
    charge(at=at(DAY2), model="small", user_id="bob", thread_id="t1", cost_usd=0.02, input_tokens=200, output_tokens=20),
    charge(at=at(DAY3), tenant="globex", model="small", user_id="carol", thread_id=None, run_id=None, cost_usd=0.1,
           input_tokens=50, output_tokens=5),
]


def totals(calls: int, inputs: int, outputs: int, cost: float, estimated: int = 0) -> dict[str, Any]:
    return {"calls": calls, "input_tokens": inputs, "output_tokens": outputs, "cost_usd": cost, "estimated_calls": estimated}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_report_groups_and_selects(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(DAY3)))
    for call in CALLS:
        ledger.settle(None, call)
    assert ledger.report() == [
        {"tenant": "acme", "model": "large", **totals(1, 300, 40, 0.25, 1)},
        {"tenant": "acme", "model": "small", **totals(2, 300, 30, 0.03)},
        {"tenant": "globex", "model": "small", **totals(1, 50, 5, 0.1)},
    ]
    assert ledger.report(by=["user"]) == sorted(
        [{"user": sha(USER), **totals(2, 400, 50, 0.26, 1)}, {"user": sha("bob"), **totals(1, 200, 20, 0.02)},
         {"user": sha("carol"), **totals(1, 50, 5, 0.1)}],
        key=lambda row: row["user"],
    )
    assert ledger.report(by=("thread", "day")) == [  # a call without a thread first
        {"thread": None, "day": "2026-06-12", **totals(1, 50, 5, 0.1)},
        {"thread": "t1", "day": "2026-06-10", **totals(1, 100, 10, 0.01)},
        {"thread": "t1", "day": "2026-06-11", **totals(1, 200, 20, 0.02)},
        {"thread": "t2", "day": "2026-06-10", **totals(1, 300, 40, 0.25, 1)},
    ]
    assert ledger.report(tenant="acme", by=("tenant",)) == [{"tenant": "acme", **totals(3, 600, 70, 0.28, 1)}]
    assert ledger.report(tenant="initech") == []
    day2 = datetime(2026, 6, 11, tzinfo=UTC)
    assert ledger.report(since=day2, until=day2 + timedelta(days=1), by=("day",)) == [{"day": "2026-06-11", **totals(1, 200, 20, 0.02)}]
    assert ledger.report(since=DAY2, by=("day",)) == ledger.report(since=DAY2.replace(tzinfo=None), by=("day",))  # naive: UTC
    assert [row["day"] for row in ledger.report(until=DAY2, by=("day",))] == ["2026-06-10"]  # until: exclusive
    for by, message in (((), "group by at least one"), (("tenant", "colour"), "cannot group by 'colour'"), (("day", "day"), "at most once")):
        with pytest.raises(ValueError, match=message):
            ledger.report(by=by)


async def test_async_twins_agree_with_the_sync_methods(backend: Backend) -> None:
    clock = ManualClock(at(DAY3))
    ledger = backend.ledger(clock)
    try:
        await _async_twins_agree(ledger)
    finally:
        await ledger.aclose()


async def _async_twins_agree(ledger: UsageLedger) -> None:
    budget = Budget(daily_usd=1.0)
    held = await ledger.areserve("acme", 0.7, budget)
    assert held is not None and await ledger.areserve("acme", 0.4, budget) is None
    assert await ledger.aremaining("acme", budget) == ledger.remaining("acme", budget) == 0.3
    assert await ledger.asettle(held, charge(at=None, cost_usd=0.1)) is True
    assert await ledger.asettle(held, charge(at=None, cost_usd=0.1)) is False
    released = await ledger.areserve("acme", 0.2, budget)
    assert released is not None and await ledger.arelease(released) is True and await ledger.arelease(released) is False
    assert await ledger.aspent("acme") == ledger.spent("acme") == {"day": 0.1, "month": 0.1}
    for call in CALLS:
        await ledger.asettle(None, call)
    for by in (("tenant", "model"), ("user", "thread", "day")):
        assert await ledger.areport(by=by, since=DAY2) == ledger.report(by=by, since=DAY2)


# -- races ---------------------------------------------------------------------------------------

# 300 reservations of $0.01 fit a $3 day; whoever races for them, never one more.
RACE_CAP, RACE_AMOUNT, RACE_FITS = 3.0, 0.01, 300


def test_threads_racing_for_a_budget_never_overspend(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    start, won = threading.Barrier(8), []

    def race() -> None:
        start.wait()
        while ledger.reserve("acme", RACE_AMOUNT, Budget(daily_usd=RACE_CAP)) is not None:
            won.append(1)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == RACE_FITS
    assert ledger.spent("acme")["day"] == RACE_CAP


RACER = """
import sys, threading
from pathlib import Path
from bulwark.persistence.usage import Budget, RedisUsageLedger, SqliteUsageLedger

kind, where, now, cap, amount = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
options = {"clock": lambda: now}
ledger = SqliteUsageLedger(Path(where), **options) if kind == "sqlite" else RedisUsageLedger(where, **options)
won = []

def race():
    while ledger.reserve("acme", amount, Budget(daily_usd=cap)) is not None:
        won.append(1)

threads = [threading.Thread(target=race) for _ in range(4)]
print("ready", flush=True)
sys.stdin.readline()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(won))
"""


@pytest.mark.slow
def test_processes_racing_for_a_budget_never_overspend(backend: Backend, tmp_path: Path) -> None:
    where = str(backend.data_dir / "usage.db") if backend.kind == "sqlite" else backend.url
    ledger = backend.ledger(ManualClock(at(NOON)))  # creates the SQLite schema before the racers
    args = [sys.executable, "-c", RACER, backend.kind, where, repr(at(NOON)), repr(RACE_CAP), repr(RACE_AMOUNT)]
    racers = [subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path) for _ in range(2)]
    try:
        for racer in racers:  # both are up before either starts
            assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        won = [int(racer.communicate(timeout=120)[0]) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert sum(won) == RACE_FITS, won
    assert ledger.spent("acme")["day"] == RACE_CAP


async def test_coroutines_racing_for_a_budget_never_overspend(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    try:
        held = await asyncio.gather(*(ledger.areserve("acme", 0.05, Budget(monthly_usd=1.0)) for _ in range(60)))
        assert sum(h is not None for h in held) == 20
        assert (await ledger.aspent("acme"))["month"] == 1.0
    finally:
        await ledger.aclose()


# -- at rest -------------------------------------------------------------------------------------


def test_no_raw_user_id_is_stored(backend: Backend) -> None:
    ledger = backend.ledger(ManualClock(at(NOON)))
    held = ledger.reserve("acme", 0.5, Budget(daily_usd=1.0))
    ledger.settle(held, charge(user_id=USER))
    ledger.reserve("acme", 0.1, Budget(daily_usd=1.0))  # an open reservation too
    stored = backend.stored()
    assert sha(USER).encode() in stored
    assert USER.encode() not in stored and b"ada.lovelace" not in stored


# -- budgets and settings ------------------------------------------------------------------------

BUDGETS = {"*": {"daily_usd": 5, "monthly_usd": 100}, "acme": {"daily_usd": 50}, "initech": {"monthly_usd": None}}


def test_budget_for_takes_the_tenants_fields_over_the_defaults() -> None:
    assert budget_for(BUDGETS, "acme") == Budget(daily_usd=50, monthly_usd=100)
    assert budget_for(BUDGETS, "globex") == Budget(daily_usd=5, monthly_usd=100)
    assert budget_for(BUDGETS, "initech") == Budget(daily_usd=5, monthly_usd=None)  # null lifts a cap
    assert budget_for({"acme": {"daily_usd": 1}}, "globex") == Budget()
    assert budget_for({}, "acme").unlimited


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ([5], "budgets must be an object of tenant ids"),
        ({"acme corp": {"daily_usd": 5}}, "invalid tenant id 'acme corp'"),
        ({"acme": 5}, "the budget of tenant 'acme' must be an object"),
        ({"*": {"weekly_usd": 5}}, "unknown field 'weekly_usd' in the budget of tenant '*': use daily_usd, monthly_usd"),
        ({"acme": {"daily_usd": -1}}, "the budget of tenant 'acme': daily_usd must be a number of USD >= 0 or null (no limit), got -1"),
        ({"acme": {"monthly_usd": "lots"}}, "monthly_usd must be a number of USD >= 0"),
        ({"acme": {"monthly_usd": True}}, "monthly_usd must be a number of USD >= 0"),
    ],
)
def test_check_budgets_names_what_is_wrong(budgets: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_budgets(budgets)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_settings_check_the_budgets() -> None:
    check_budgets(BUDGETS)
    assert load_settings(budgets=BUDGETS).budgets["acme"] == {"daily_usd": 50}
    with pytest.raises(ConfigError, match="BULWARK_BUDGETS: unknown field 'weekly_usd'"):
        load_settings(budgets={"*": {"weekly_usd": 5}})


def test_the_deployments_ledger_follows_the_checkpointer(tmp_path: Path) -> None:
    ledger = usage_ledger_for(load_settings(data_dir=tmp_path / "data"))
    assert isinstance(ledger, SqliteUsageLedger) and ledger.path == tmp_path / "data" / "usage.db"
    ledger = usage_ledger_for(load_settings(checkpointer_url="redis://:secret@127.0.0.1:1/2?ttl=60"))
    assert isinstance(ledger, RedisUsageLedger) and ledger.url == "redis://:secret@127.0.0.1:1/2"
    assert ledger.name == "redis://:***@127.0.0.1:1/2 bulwark:usage"


# -- the command ---------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["usage", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_spend_and_budgets(backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**backend.env(), "BULWARK_BUDGETS": json.dumps(BUDGETS)}.items():
        monkeypatch.setenv(name, value)
    ledger = usage_ledger_for(load_settings())  # the real clock: the command reads today's windows
    ledger.settle(ledger.reserve("acme", 1.0, Budget(daily_usd=50)), charge(cost_usd=0.25, model="large", estimated=True))
    ledger.settle(None, charge(cost_usd=0.5, input_tokens=1000, output_tokens=200))
    ledger.settle(None, charge(tenant="globex", user_id="bob", cost_usd=0.125, thread_id=None))

    code, out, err = _cli(capsys)
    assert (code, err) == (0, "")
    assert out == (
        "tenant  model  calls  input_tokens  output_tokens  cost_usd  estimated_calls\n"
        "acme    large      1           100             20  0.250000                1\n"
        "acme    small      1          1000            200  0.500000                0\n"
        "globex  small      1           100             20  0.125000                0\n"
        "\n"
        "tenant  today_usd  daily_usd  month_usd  monthly_usd  remaining_usd\n"
        "acme     0.750000  50.000000   0.750000   100.000000      49.250000\n"
        "globex   0.125000   5.000000   0.125000   100.000000       4.875000\n"
    )

    code, out, _ = _cli(capsys, "--json", "--tenant", "acme", "--by", "user,thread")
    assert code == 0
    assert json.loads(out) == {
        "usage": [{"user": sha(USER), "thread": "t1", **totals(2, 1100, 220, 0.75, 1)}],
        "budgets": [{"tenant": "acme", "today_usd": 0.75, "daily_usd": 50.0, "month_usd": 0.75, "monthly_usd": 100.0, "remaining_usd": 49.25}],
    }
    code, out, _ = _cli(capsys, "--by", "model", "--json")  # tenants listed without a tenant column
    assert [budget["tenant"] for budget in json.loads(out)["budgets"]] == ["acme", "globex"]

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    code, out, err = _cli(capsys, "--since", tomorrow)
    assert (code, out) == (0, "")
    assert err == f"no model calls in {ledger.name} for this selection\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "tenant,colour"], "argument --by: cannot group by 'colour': use tenant, model, user, thread, day"),
        (["--by", "day,day"], "argument --by: group by each of tenant, model, user, thread, day at most once"),
        (["--by", ""], "argument --by: cannot group by ''"),
        (["--since", "last tuesday"], "argument --since: invalid date 'last tuesday': use YYYY-MM-DD"),
        (["--until", "2026-13-01"], "argument --until: invalid date '2026-13-01'"),
        (["--tenant", "acme corp"], "argument --tenant: invalid tenant id 'acme corp'"),
        (["--since", "2026-06-02", "--until", "2026-06-01"], "--since must be before --until"),
        (["--json", "yes"], "unrecognized arguments: yes"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = _cli(capsys, *args)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1, err


def test_cli_rejects_bad_budgets_in_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULWARK_BUDGETS", '{"acme": {"daily_usd": -5}}')
    code, out, err = _cli(capsys)
    assert (code, out) == (2, "")
    assert err == "bulwark: error: BULWARK_BUDGETS: the budget of tenant 'acme': daily_usd must be a number of USD >= 0 or null (no limit), got -5.0\n"
