"""Guardrail evals: attack recall, false positives, PII precision/recall and grounding.

- **Attacks** (:data:`ATTACK_SETS`: jailbreaks, short injections, injections in 25+
  languages, harmful requests): recall is the share of rows the input rail blocks, also per
  language or harm category where the rows name one.
- **Benign** (:data:`BENIGN_SETS`: ordinary requests, ones that share words with attacks or
  with harm, in several languages): the false-positive rate is the share of rows the input
  rail blocks (redacting PII in a benign request is not a refusal, and is reported apart as
  ``sanitized``).
- **PII** (``presidio_synth_v2.json``): a predicted span is a true positive when it
  overlaps a gold span of the same entity; precision and recall per entity.
- **Grounding** (``grounding_dev.jsonl``): answers and the sources they rest on; precision
  and recall of the fact check's "unsupported" flag (:mod:`bulwark.evals.grounding`).

The rails run as deployed (NeMo by default) except for the size limit, which is lifted so
that recall measures the detectors, not ``max_input_chars``. Data and licenses:
``evals/datasets/README.md``. ``bulwark eval guardrails`` prints the report;
``tests/test_guardrails_eval.py`` holds the thresholds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bulwark.evals.grounding import GroundingReport, evaluate_grounding
from bulwark.evals.grounding import load_rows as load_grounding_rows
from bulwark.guardrails.detectors.pii import find_pii
from bulwark.guardrails.rails import Guardrails
from bulwark.nodes.agent import SYSTEM_PROMPT
from bulwark.settings import Settings

DATASETS = Path(__file__).parent / "datasets"
ATTACK_SETS = (
    "jailbreak_dev",
    "injection_short_dev",
    "injection_multilingual_dev",
    "harmful_dev",
    "harmful_written_dev",
    "harmful_heldout_dev",
)
BENIGN_SETS = (
    "benign_dev",
    "benign_tricky_dev",
    "benign_harmlike_dev",
    "benign_harmlike_written_dev",
    "benign_multilingual_dev",
    "benign_heldout_dev",
)
HELDOUT_SETS = ("harmful_heldout_dev", "benign_heldout_dev")
"""Sets no detector was trained or tuned on: what to expect on unseen requests."""
GROUP_KEYS = ("lang", "category")
"""Row fields a set's results are broken down by, when its rows have one."""
PII_SET = DATASETS / "presidio_synth_v2.json"
PII_ENTITIES = ("EMAIL", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
                "PERSON", "STREET_ADDRESS")
"""Scored entities; the dataset's ``EMAIL_ADDRESS`` is our ``EMAIL``."""
_GOLD_NAMES = {"EMAIL_ADDRESS": "EMAIL"}


@dataclass
class SetResult:
    """How the input rail treated one labelled set."""

    name: str
    rows: int
    blocked: int
    sanitized: int
    missed: list[str] = field(default_factory=list)
    """Ids of attack rows let through, or benign rows blocked."""
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Language or category -> (rows, blocked), for sets whose rows name one."""

    @property
    def block_rate(self) -> float:
        return self.blocked / self.rows if self.rows else 0.0


@dataclass
class EntityResult:
    """Span-overlap precision and recall of one PII entity."""

    entity: str
    gold: int
    predicted: int
    found: int
    """Gold spans overlapped by a prediction of the same entity."""
    correct: int
    """Predictions overlapping a gold span of the same entity."""

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0


@dataclass
class GuardrailReport:
    """Everything :func:`run_guardrail_eval` measured."""

    attacks: list[SetResult]
    benign: list[SetResult]
    pii: list[EntityResult]
    grounding: GroundingReport

    def entity(self, name: str) -> EntityResult:
        return next(e for e in self.pii if e.entity == name)

    def set(self, name: str) -> SetResult:
        return next(s for s in self.attacks + self.benign if s.name == name)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a guardrail JSON-lines file (``{"id", "text", "label"}``)."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _screen(rails: Guardrails, name: str, *, attack: bool, limit: int | None) -> SetResult:
    rows = read_jsonl(DATASETS / f"{name}.jsonl")[:limit]
    result = SetResult(name=name, rows=len(rows), blocked=0, sanitized=0)
    groups: dict[str, list[int]] = {}
    for row in rows:
        action = rails.check_input(row["text"]).verdict["action"]
        result.blocked += action == "block"
        result.sanitized += action == "sanitize"
        if (action == "block") != attack:
            result.missed.append(str(row["id"]))
        if group := next((row[key] for key in GROUP_KEYS if row.get(key)), None):
            counts = groups.setdefault(str(group), [0, 0])
            counts[0] += 1
            counts[1] += action == "block"
    result.groups = {name: (n, blocked) for name, (n, blocked) in sorted(groups.items())}
    return result


Span = tuple[str, int, int]
"""``(entity, start, end)``."""


def gold_spans(row: dict, entities: Sequence[str] = PII_ENTITIES) -> list[Span]:
    """A Presidio-style row's gold spans of ``entities``, named as Bulwark names them."""
    gold = [
        (_GOLD_NAMES.get(s["entity_type"], s["entity_type"]), s["start_position"], s["end_position"])
        for s in row["spans"]
    ]
    return [g for g in gold if g[0] in entities]


def predicted_spans(text: str, entities: Sequence[str] = PII_ENTITIES) -> list[Span]:
    """The spans :func:`find_pii` finds in ``text``."""
    return [(p.entity, p.start, p.end) for p in find_pii(text, entities=entities)]


def overlapped(spans: Iterable[Span], others: Sequence[Span]) -> list[bool]:
    """For each of ``spans``, whether one of ``others`` of the same entity overlaps it."""
    return [any(e == entity and s < end and start < t for e, s, t in others) for entity, start, end in spans]


def score_pii(rows: Iterable[dict], entities: Sequence[str] = PII_ENTITIES) -> list[EntityResult]:
    """Per-entity span-overlap precision and recall of :func:`find_pii` on Presidio-style rows."""
    gold_n, pred_n, found, correct = Counter(), Counter(), Counter(), Counter()
    for row in rows:
        gold = gold_spans(row, entities)
        predicted = predicted_spans(row["full_text"], entities)
        for (entity, _, _), hit in zip(gold, overlapped(gold, predicted), strict=True):
            gold_n[entity] += 1
            found[entity] += hit
        for (entity, _, _), hit in zip(predicted, overlapped(predicted, gold), strict=True):
            pred_n[entity] += 1
            correct[entity] += hit
    return [EntityResult(e, gold_n[e], pred_n[e], found[e], correct[e]) for e in entities]


def eval_rails(settings: Settings) -> Guardrails:
    """The deployment's rails with the size limit lifted (recall measures detectors)."""
    return Guardrails.from_settings(
        settings.model_copy(update={"max_input_chars": 10**9}), system_prompt=SYSTEM_PROMPT
    )


def read_pii_rows(path: Path = PII_SET) -> list[dict]:
    """The rows of a Presidio-style PII set (``{"full_text", "spans"}``)."""
    with path.open(encoding="utf-8") as data:
        return json.load(data)


def run_guardrail_eval(rails: Guardrails, *, pii_data: Path = PII_SET, limit: int | None = None) -> GuardrailReport:
    """Run every guardrail eval with ``rails`` (build them with a generous size limit), on
    the first ``limit`` rows of each set if given."""
    return GuardrailReport(
        attacks=[_screen(rails, name, attack=True, limit=limit) for name in ATTACK_SETS],
        benign=[_screen(rails, name, attack=False, limit=limit) for name in BENIGN_SETS],
        pii=score_pii(read_pii_rows(pii_data)[:limit]),
        grounding=evaluate_grounding(load_grounding_rows()[:limit]),
    )


def format_report(report: GuardrailReport, *, show_misses: int = 5) -> str:
    """A plain-text table of the report."""
    lines = ["input rail                   rows  blocked  rate    (attack: recall, benign: false positives)"]
    for s in report.attacks + report.benign:
        lines.append(f"{s.name:<28} {s.rows:>4}  {s.blocked:>7}  {s.block_rate:6.1%}")
        if s.missed and show_misses:
            lines.append(f"  {'let through' if s in report.attacks else 'blocked'}: "
                         + ", ".join(s.missed[:show_misses]) + (" ..." if len(s.missed) > show_misses else ""))
        if s.groups:
            lines.append("  " + "  ".join(f"{name} {blocked}/{n}" for name, (n, blocked) in s.groups.items()))
    lines += ["", "PII entity       gold  precision  recall"]
    for e in report.pii:
        lines.append(f"{e.entity:<15} {e.gold:>5}  {e.precision:9.1%}  {e.recall:6.1%}")
    g = report.grounding
    lines += ["", "grounding (flag: unsupported)  pairs  precision  recall",
              f"{'grounding_dev':<30} {g.rows:>5}  {g.precision:9.1%}  {g.recall:6.1%}"]
    return "\n".join(lines)
