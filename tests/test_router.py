"""The model catalogue, the complexity estimate and the router's rules (no graph, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulwark.models.catalogue import Catalogue, CatalogueError, ModelEntry, load_catalogue
from bulwark.models.factory import make_chat_model
from bulwark.models.router import choose, estimate_complexity, fallbacks
from bulwark.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "evals" / "datasets" / "complexity_labels.jsonl"

ISSUE_FORM = """
models:
  - name: big
    spec: openai:gpt-4o
    base_url: http://127.0.0.1:8000/v1   # optional
    cost_per_1k_input: 0.0025
    cost_per_1k_output: 0.01
    quality: 0.95
  - name: small
    spec: openai:gpt-4o-mini
    cost_per_1k_input: 0.00015
    cost_per_1k_output: 0.0006
    quality: 0.85
fallback_chain: [big, small]
"""


def _catalogue(**extra: object) -> Catalogue:
    return Catalogue.model_validate({
        "models": [
            {"name": "big", "spec": "openai:big", "cost_per_1k_input": 0.01, "cost_per_1k_output": 0.03, "quality": 0.95},
            {"name": "mid", "spec": "openai:mid", "cost_per_1k_input": 0.002, "cost_per_1k_output": 0.006, "quality": 0.85},
            {"name": "small", "spec": "openai:small", "cost_per_1k_input": 0.0002, "cost_per_1k_output": 0.0006,
             "quality": 0.6, "context_window": 4000},
        ],
        **extra,
    })


# -- complexity -------------------------------------------------------------------------


def _bucket(score: float) -> str:
    """The default rules' bands: up to 0.3 simple, up to 0.7 medium, above complex."""
    return "simple" if score <= 0.3 else "medium" if score <= 0.7 else "complex"


def test_complexity_puts_labelled_requests_in_their_band() -> None:
    rows = [json.loads(line) for line in LABELS.read_text().splitlines()]
    assert {row["label"] for row in rows} == {"simple", "medium", "complex"} and len(rows) >= 90
    for label in ("simple", "medium", "complex"):
        labelled = [row for row in rows if row["label"] == label]
        hits = sum(_bucket(estimate_complexity(row["text"])) == label for row in labelled)
        assert hits / len(labelled) >= 0.85, f"{label}: {hits}/{len(labelled)} in band"


def test_complexity_orders_the_bands_and_stays_in_range() -> None:
    rows = [json.loads(line) for line in LABELS.read_text().splitlines()]
    means = {}
    for label in ("simple", "medium", "complex"):
        scores = [estimate_complexity(row["text"]) for row in rows if row["label"] == label]
        assert all(0.0 <= s <= 1.0 for s in scores)
        means[label] = sum(scores) / len(scores)
    assert means["simple"] < means["medium"] < means["complex"]
    assert estimate_complexity("") == 0.0
    assert estimate_complexity("word " * 5000) <= 1.0


# -- the rules --------------------------------------------------------------------------


def test_a_simple_request_gets_the_cheapest_model_a_hard_one_the_good_one() -> None:
    catalogue = _catalogue()
    simple = choose(catalogue, complexity=0.1, input_tokens=300, budget_left_usd=None)
    medium = choose(catalogue, complexity=0.5, input_tokens=300, budget_left_usd=None)
    hard = choose(catalogue, complexity=0.9, input_tokens=300, budget_left_usd=None)
    assert (simple.model.name, medium.model.name, hard.model.name) == ("small", "mid", "big")
    assert hard.min_quality == 0.9 and hard.outcome == "routed"
    assert hard.estimated_cost_usd == pytest.approx((300 * 0.01 + hard.output_tokens * 0.03) / 1000)
    assert simple.output_tokens < hard.output_tokens


def test_a_short_budget_downgrades_and_a_spent_one_downgrades_or_refuses() -> None:
    catalogue = _catalogue()
    full = choose(catalogue, complexity=0.9, input_tokens=1000, budget_left_usd=None)
    short = choose(catalogue, complexity=0.9, input_tokens=1000, budget_left_usd=full.estimated_cost_usd / 2)
    assert short.model.name == "mid" and short.outcome == "downgraded"
    spent = choose(catalogue, complexity=0.9, input_tokens=1000, budget_left_usd=0.0)
    assert spent.model.name == "small" and spent.outcome == "budget_downgrade"
    refused = choose(catalogue, complexity=0.9, input_tokens=1000, budget_left_usd=0.0, exhausted="refuse")
    assert refused.model is None and refused.outcome == "budget_refused"
    assert "budget" in refused.reason


def test_models_whose_context_is_too_small_are_passed_over() -> None:
    pick = choose(_catalogue(), complexity=0.1, input_tokens=3900, budget_left_usd=None)
    assert pick.model.name == "mid", "small's 4,000-token window cannot hold the prompt and answer"


def test_custom_rules_change_the_floors() -> None:
    catalogue = _catalogue(router={"rules": [{"max_complexity": 1.0, "min_quality": 0.9}]})
    assert choose(catalogue, complexity=0.0, input_tokens=10, budget_left_usd=None).model.name == "big"
    strict = _catalogue(router={"rules": [{"max_complexity": 1.0, "min_quality": 0.99}]})
    pick = choose(strict, complexity=0.5, input_tokens=10, budget_left_usd=None)
    assert pick.model.name == "big", "no model has the quality: the best one answers"


def test_the_fallback_order_is_the_pick_then_the_chain() -> None:
    catalogue = _catalogue(fallback_chain=["mid", "big", "small"])
    assert [e.name for e in fallbacks(catalogue, catalogue.entry("small"))] == ["small", "mid", "big"]
    unchained = _catalogue()
    assert [e.name for e in unchained.chain] == ["big", "mid", "small"], "default chain: best first"


# -- the catalogue file -----------------------------------------------------------------


def test_the_issue_form_and_the_example_file_load(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(ISSUE_FORM)
    catalogue = load_catalogue(path, environ={})
    assert [e.name for e in catalogue.chain] == ["big", "small"]
    assert catalogue.entry("big").base_url == "http://127.0.0.1:8000/v1"
    assert catalogue.entry("small").cost_usd(1000, 1000) == pytest.approx(0.00075)

    example = load_catalogue(REPO / "deploy" / "models.example.yaml",
                             environ={"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"})
    assert [e.name for e in example.chain] == ["gpt-4", "claude-3", "gpt-3.5", "local-llm"]
    assert example.entry("gpt-4").api_key.get_secret_value() == "sk-x"
    assert "sk-x" not in example.model_dump_json(), "resolved keys are never serialised"

    as_json = tmp_path / "models.json"
    as_json.write_text(json.dumps({"models": [{"name": "one", "spec": "offline"}]}))
    assert load_catalogue(as_json, environ={}).chain[0].spec == "offline"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - {name: a, spec: openai:x, quality: 1.5}\n", "models[0].quality: Input should be less than or equal to 1"),
        ("models:\n  - {name: a, spec: openai:x}\nfallback_chain: [a, b]\n", "fallback_chain names 'b'"),
        ("models:\n  - {name: a, spec: openai:x}\n  - {name: a, spec: openai:y}\n", "two models are named 'a'"),
        ("models:\n  - {name: a, spec: nosuch:x}\n", "models[0].spec: Value error, unknown provider 'nosuch'"),
        ("models:\n  - {name: a, spec: gpt4}\n", "unknown model spec 'gpt4'"),
        ("models:\n  - {name: a, spec: openai:x, api_key_env: NOT_SET_HERE}\n", "NOT_SET_HERE is not set"),
        ("models:\n  - {name: a, spec: openai:x, colour: red}\n", "models[0].colour: Extra inputs are not permitted"),
        ("models: []\n", "list at least one model"),
        ("models:\n  - {name: a, spec: openai:x}\nrouter: {rules: [{max_complexity: 0.5, min_quality: 0}]}\n", "max_complexity 1.0"),
        ("models: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "must hold a mapping"),
    ],
)
def test_a_bad_catalogue_is_one_line_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path, environ={})
    assert message.removeprefix("models[0].spec: Value error, ") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_name_the_variable_and_default_to_the_model_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^BULWARK_MODELS cannot read '.*missing.yaml'"):
        load_settings(data_dir=tmp_path, models=tmp_path / "missing.yaml")
    pair = load_settings(data_dir=tmp_path, model="openai:gpt-4o", fast_model="openai:gpt-4o-mini").catalogue
    assert [e.name for e in pair.chain] == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    assert choose(pair, complexity=0.1, input_tokens=10, budget_left_usd=None).model.name == "openai:gpt-4o-mini"
    assert choose(pair, complexity=0.6, input_tokens=10, budget_left_usd=None).model.name == "openai:gpt-4o"
    copied = load_settings(data_dir=tmp_path).model_copy(update={"model": "openai:gpt-4o"})
    assert [e.name for e in copied.catalogue.models] == ["openai:gpt-4o"], "a copy with another model routes to it"
    path = tmp_path / "m.yaml"
    path.write_text(ISSUE_FORM)
    monkeypatch.setenv("BULWARK_MODELS", str(path))
    assert [e.name for e in load_settings(data_dir=tmp_path).catalogue.models] == ["big", "small"]


def test_the_factory_builds_any_installed_provider_and_names_a_missing_one(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, model_timeout_s=7)
    model = make_chat_model(ModelEntry(name="local", spec="openai:llama", base_url="http://127.0.0.1:9/v1"), settings=settings)
    assert (model.model_name, str(model.openai_api_base), model.request_timeout, model.max_retries) == (
        "llama", "http://127.0.0.1:9/v1", 7, 0)
    with pytest.raises(ConfigError, match="langchain-anthropic"):
        make_chat_model(ModelEntry(name="c", spec="anthropic:claude-3"), settings=settings)
