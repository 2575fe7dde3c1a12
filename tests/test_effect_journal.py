from pathlib import Path

import pytest

from bulwark.persistence.effects import EffectJournal


@pytest.fixture(params=["sqlite", "redis"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> EffectJournal:
    if request.param == "sqlite":
        return EffectJournal.for_checkpointer("sqlite:///x.db", data_dir=tmp_path)
    return EffectJournal.for_checkpointer(request.getfixturevalue("redis_url"), data_dir=tmp_path)


def test_a_key_is_claimed_once(journal: EffectJournal) -> None:
    assert journal.claim("t:c1").fresh
    again = journal.claim("t:c1")
    assert not again.fresh and again.outcome is None, "cut short: outcome unknown, not repeated"
    assert journal.claim("t:c2").fresh, "other keys are independent"


def test_a_finished_call_replays_its_outcome(journal: EffectJournal) -> None:
    assert journal.claim("t:c1").fresh
    journal.finish("t:c1", "success", "email sent")
    replay = journal.claim("t:c1")
    assert not replay.fresh and replay.outcome == ("success", "email sent")


def test_the_journal_survives_reopening(tmp_path: Path) -> None:
    EffectJournal(path=tmp_path / "e.db").claim("k")
    assert not EffectJournal(path=tmp_path / "e.db").claim("k").fresh


async def test_a_checkpoint_ttl_in_the_url_is_not_a_redis_option(redis_url: str, tmp_path: Path) -> None:
    journal = EffectJournal.for_checkpointer(f"{redis_url}?ttl=60", data_dir=tmp_path)
    assert journal.claim("t:c1").fresh
    assert not (await journal.aclaim("t:c1")).fresh
