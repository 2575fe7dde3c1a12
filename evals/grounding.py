"""The grounding eval: how well the fact check flags answers their sources do not support.

Rows are ``{id, answer, sources: [...], label: supported|unsupported, source}``
(``evals/datasets/grounding_dev.jsonl``). Each answer is checked against its sources with
:func:`bulwark.guardrails.checks.check_grounding`; a flag is a prediction of
``unsupported``. :func:`evaluate_grounding` reports the precision and recall of those flags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bulwark.guardrails.checks import check_grounding

DATASET = Path(__file__).with_name("datasets") / "grounding_dev.jsonl"


@dataclass(frozen=True, kw_only=True)
class GroundingReport:
    """Precision and recall of the ``ungrounded`` flag on labelled answer/sources pairs."""

    rows: int
    unsupported: int
    """Rows labelled ``unsupported``."""
    flagged: int
    """Rows the check flagged."""
    true_positives: int
    false_positives: tuple[str, ...]
    """Ids of supported rows that were flagged."""
    false_negatives: tuple[str, ...]
    """Ids of unsupported rows that passed."""

    @property
    def precision(self) -> float:
        """Flagged rows that are unsupported (1.0 when nothing was flagged)."""
        return self.true_positives / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        """Unsupported rows that were flagged (1.0 when there are none)."""
        return self.true_positives / self.unsupported if self.unsupported else 1.0

    def as_dict(self) -> dict:
        """JSON-friendly summary."""
        return {
            "rows": self.rows, "unsupported": self.unsupported, "flagged": self.flagged,
            "precision": round(self.precision, 4), "recall": round(self.recall, 4),
            "false_positives": list(self.false_positives), "false_negatives": list(self.false_negatives),
        }


def load_rows(path: Path = DATASET) -> list[dict]:
    """The rows of a grounding JSON-lines file."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def evaluate_grounding(rows: Iterable[Mapping]) -> GroundingReport:
    """Check every row's answer against its sources and score the flags against the labels."""
    count = unsupported = flagged = hits = 0
    false_positives: list[str] = []
    false_negatives: list[str] = []
    for row in rows:
        count += 1
        truth = row["label"] == "unsupported"
        flag = "ungrounded" in check_grounding(row["answer"], row["sources"]).verdict["reasons"]
        unsupported += truth
        flagged += flag
        hits += truth and flag
        if flag and not truth:
            false_positives.append(str(row["id"]))
        elif truth and not flag:
            false_negatives.append(str(row["id"]))
    return GroundingReport(
        rows=count, unsupported=unsupported, flagged=flagged, true_positives=hits,
        false_positives=tuple(false_positives), false_negatives=tuple(false_negatives),
    )
