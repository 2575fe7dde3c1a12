"""``bulwark eval ... --langsmith``: datasets kept idempotently, experiments scored with Bulwark's
evaluators, against a local server speaking LangSmith's protocol (tests/langsmith_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langsmith_server import LangSmithServer

from bulwark.cli.main import main
from bulwark.evals import langsmith as ls_evals
from bulwark.evals import guardrails as guardrail_sets
from bulwark.evals.bfcl import run_bfcl
from bulwark.observability.langsmith import tracing_client
from bulwark.settings import load_settings

LIMIT = 2
SETS = len(guardrail_sets.ATTACK_SETS + guardrail_sets.BENIGN_SETS) + 1  # and the PII set
SCREENED_CASES = (SETS - 1) * LIMIT
GUARDRAIL_CASES = SETS * LIMIT


@pytest.fixture(scope="module")
def server() -> Iterator[LangSmithServer]:
    with LangSmithServer() as running_server:
        yield running_server


@pytest.fixture
def ls(server: LangSmithServer, monkeypatch: pytest.MonkeyPatch) -> LangSmithServer:
    server.clear()
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    return server


def _experiments(ls: LangSmithServer, dataset_id: str) -> list[dict]:
    return [p for p in ls.projects.values() if p["reference_dataset_id"] == dataset_id]


def _feedback(ls: LangSmithServer, experiment: dict) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {}
    for item in ls.feedback.values():
        if item["session_id"] == experiment["id"]:
            scores.setdefault(item["key"], []).append(item["score"])
    return scores


def test_eval_guardrails_langsmith_keeps_one_dataset_and_scores_each_experiment(
    ls: LangSmithServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "guardrails", "--langsmith", "--limit", str(LIMIT), "--dataset", "guards"]
    assert main([*args, "--experiment-prefix", "direct"]) == 0
    assert f"dataset guards: {GUARDRAIL_CASES} examples added, 0 updated, 0 unchanged" in capsys.readouterr().out
    monkeypatch.setenv("BULWARK_GUARDRAILS_ENGINE", "nemo")  # a second configuration to compare
    assert main([*args, "--experiment-prefix", "nemo"]) == 0
    out = capsys.readouterr().out
    assert f"dataset guards: 0 examples added, 0 updated, {GUARDRAIL_CASES} unchanged" in out
    assert "verdict_correct 100.0%" in out

    (dataset,) = ls.datasets.values()
    assert dataset["name"] == "guards"
    cases = ls_evals.guardrails_suite(load_settings(), limit=LIMIT).cases
    assert sorted(ls.examples) == sorted(str(ls_evals.example_id("guardrails", c.id)) for c in cases)
    experiments = _experiments(ls, dataset["id"])
    assert sorted(e["name"].rsplit("-", 1)[0] for e in experiments) == ["direct", "nemo"]
    for experiment in experiments:
        scores = _feedback(ls, experiment)
        assert len(scores["verdict_correct"]) == SCREENED_CASES and set(scores["verdict_correct"]) <= {0, 1}
        assert sum(scores["verdict_correct"]) >= SCREENED_CASES - 1  # the offline thresholds allow little more
        assert scores["pii_span_recall"] and all(0 <= s <= 1 for s in scores["pii_span_recall"])
        runs = [r for r in ls.runs.values() if r.get("session_id") == experiment["id"] or r.get("session_name") == experiment["name"]]
        assert {r["reference_example_id"] for r in runs if r["parent_run_id"] is None} == set(ls.examples)


def test_a_changed_case_updates_its_example_in_place(ls: LangSmithServer) -> None:
    settings = load_settings()
    suite = ls_evals.guardrails_suite(settings, limit=1)
    client = tracing_client(settings)
    first = ls_evals.sync_dataset(client, "guards", suite)
    assert (first.created, first.updated, first.unchanged) == (SETS, 0, 0)
    stale = str(ls_evals.example_id("guardrails", suite.cases[0].id))
    ls.examples[stale]["outputs"] = {"blocked": not suite.cases[0].outputs["blocked"]}
    again = ls_evals.sync_dataset(client, "guards", suite)
    assert (again.created, again.updated, again.unchanged) == (0, 1, SETS - 1)
    assert ls.examples[stale]["outputs"] == suite.cases[0].outputs and len(ls.examples) == SETS


def test_eval_bfcl_langsmith_scores_tool_calls_as_the_offline_eval(
    ls: LangSmithServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "bfcl", "--langsmith", "--limit", "3"]) == 0
    assert "dataset bulwark-bfcl_simple_python: 3 examples added" in capsys.readouterr().out
    (dataset,) = ls.datasets.values()
    (experiment,) = _experiments(ls, dataset["id"])
    assert experiment["name"].startswith("bulwark-bfcl_simple_python-")
    scores = _feedback(ls, experiment)["tool_call_correct"]
    assert len(scores) == 3 and sum(scores) == run_bfcl(limit=3).correct
    comments = {item["comment"] for item in ls.feedback.values()}
    assert "ok" in comments or any(c.startswith(("wrong", "missing", "no tool call")) for c in comments)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "guardrails", "--dataset", "x"], "--dataset and --experiment-prefix name LangSmith's dataset"),
        (["eval", "bfcl", "--experiment-prefix", "p"], "add --langsmith"),
        (["eval", "guardrails", "--langsmith"], "--langsmith needs LANGSMITH_API_KEY"),
    ],
)
def test_eval_langsmith_flags_are_checked(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT", "LANGCHAIN_API_KEY", "LANGCHAIN_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
