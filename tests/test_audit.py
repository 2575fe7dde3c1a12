import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bulwark.persistence.audit import GENESIS, AuditLog


def _log(path: Path) -> AuditLog:
    return AuditLog(path, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))


def test_records_form_a_chain(tmp_path: Path) -> None:
    log = _log(tmp_path / "audit.jsonl")
    first = log.append({"event": "a"})
    second = log.append({"event": "b"})
    assert first["prev"] == GENESIS
    assert second["prev"] == first["hash"]
    assert log.verify() == 2


def test_chain_survives_long_records(tmp_path: Path) -> None:
    log = _log(tmp_path / "audit.jsonl")
    for i in range(3):
        log.append({"event": "x" * 10_000, "i": i})  # longer than the tail block
    assert log.verify() == 3


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_tampering_is_detected(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.jsonl"
    log = _log(path)
    for i in range(3):
        log.append({"event": "turn", "i": i})
    lines = path.read_text().splitlines()
    if tamper == "edit":
        record = json.loads(lines[1])
        record["i"] = 99
        lines[1] = json.dumps(record, sort_keys=True)
    elif tamper == "delete":
        del lines[1]
    else:
        lines[0], lines[1] = lines[1], lines[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="broken at line"):
        log.verify()
