"""Model routing: estimate how hard a request is, then pick the cheapest model good enough for
it that the tenant's budget can pay for.

The rules (configurable in the catalogue's ``router`` section):

1. The request's complexity (:func:`estimate_complexity`, 0 to 1) sets the quality floor:
   the first rule whose ``max_complexity`` it is under gives ``min_quality``.
2. The models that fit the prompt and the expected answer in their context window are the
   candidates; the call's cost is estimated from the prompt's tokens, the expected answer
   length (``output_tokens`` by complexity) and the catalogue's prices.
3. Of the candidates at or above the floor that the budget left can pay for, the cheapest
   wins (a tie goes to the least capable, the fast model of a pair).
4. If none above the floor is affordable, the best affordable one wins (``downgraded``).
5. If none is affordable, or nothing is left, the budget is spent: ``downgrade`` takes the
   cheapest candidate, ``refuse`` ends the turn with a message.
6. With no model above the floor at all, the best candidate wins.

The fallback order after the pick is the catalogue's chain (:func:`fallbacks`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bulwark.models.catalogue import Catalogue, ModelEntry

_STRONG = re.compile(
    r"\b(why|analy[sz]e|analysis|compare|contrast|evaluate|assess|critique|critically|design|architect"
    r"|prove|derive|justify|argue|trade-?offs?|pros and cons|implications?|strateg(y|ies)|plan|optimi[sz]e"
    r"|refactor|debug|investigat\w*|implement|step by step|in depth|detailed|recommend\w*|model)\b",
    re.IGNORECASE,
)
_COMPOSE = re.compile(
    r"\b(explain|write|draft|summari[sz]e|rewrite|describe|outline|brainstorm|suggest|ideas?|story|essay"
    r"|recipe|itinerary|agenda|letter|difference|differences|how does|how do)\b",
    re.IGNORECASE,
)
_LOOKUP = re.compile(
    r"^\s*(what('s| is| are| was| year| time| does)|who|when|where|how (many|much|far|tall|old|do you say)"
    r"|convert|calculate|compute|define|spell|round|find|fetch|remember|is \d|give me a synonym|list the)\b",
    re.IGNORECASE,
)
_CONSTRAINT = re.compile(r"\b(must|at least|no more than|without|ensure|never|including|covering|balancing|under \d)\b", re.IGNORECASE)
_PARTS = re.compile(r"\?|;|\n|, (and |then )|\band (then|also|explain|compare|list|write|design|argue|conclude|discuss|how)\b|\bthen\b", re.IGNORECASE)


def estimate_complexity(text: str) -> float:
    """Score a request from 0 (a lookup or a single tool call) to 1 (long, multi-part
    reasoning), from its length, its number of parts, and the kind of work it asks for."""
    words = len(text.split())
    if not words:
        return 0.0
    length = min(math.log1p(words) / math.log1p(60), 1.0)
    parts = min(len(_PARTS.findall(text)) / 4, 1.0)
    strong = min(len(_STRONG.findall(text)) / 2, 1.0)
    compose = 1.0 if _COMPOSE.search(text) else 0.0
    constraint = min(len(_CONSTRAINT.findall(text)) / 2, 1.0)
    lookup = 1.0 if _LOOKUP.search(text) and words <= 14 else 0.0
    # Least-squares weights on evals/datasets/complexity_labels.jsonl (simple 0.1, medium 0.5,
    # complex 0.9); 5-fold cross-validated bucket accuracy is in tests/test_router.py.
    score = -0.05 + 0.78 * length + 0.13 * parts + 0.26 * strong + 0.1 * compose + 0.05 * constraint - 0.21 * lookup
    return round(min(max(score, 0.0), 1.0), 3)


@dataclass(frozen=True, kw_only=True)
class Choice:
    """The router's pick for a turn (``model`` ``None``: refused, the budget is spent)."""

    model: ModelEntry | None
    complexity: float
    min_quality: float
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float
    budget_left_usd: float | None
    reason: str
    outcome: Literal["routed", "downgraded", "budget_downgrade", "budget_refused"]


def choose(
    catalogue: Catalogue,
    *,
    complexity: float,
    input_tokens: int,
    budget_left_usd: float | None,
    exhausted: Literal["downgrade", "refuse"] = "downgrade",
) -> Choice:
    """Pick the model for a request (the rules in the module docstring).

    Args:
        catalogue: the models, their prices and the routing rules.
        complexity: :func:`estimate_complexity` of the request.
        input_tokens: the prompt's estimated tokens.
        budget_left_usd: what the tenant may still spend (``None``: no budget).
        exhausted: what to do when no model is affordable.
    """
    floor = catalogue.router.min_quality(complexity)
    output_tokens = catalogue.router.output_tokens.at(complexity)
    chain = catalogue.chain
    fitting = [e for e in chain if input_tokens + output_tokens <= e.context_window] or list(chain)

    def cost(entry: ModelEntry) -> float:
        return entry.cost_usd(input_tokens, output_tokens)

    def pick(entry: ModelEntry | None, reason: str, outcome: str) -> Choice:
        return Choice(
            model=entry, complexity=complexity, min_quality=floor, input_tokens=input_tokens,
            output_tokens=output_tokens, estimated_cost_usd=round(cost(entry), 6) if entry else 0.0,
            budget_left_usd=budget_left_usd, reason=reason, outcome=outcome,  # type: ignore[arg-type]
        )

    spent = budget_left_usd is not None and budget_left_usd <= 0
    affordable = [] if spent else [e for e in fitting if budget_left_usd is None or cost(e) <= budget_left_usd]
    good = [e for e in affordable if e.quality >= floor]
    if good:
        best = min(good, key=lambda e: (cost(e), e.quality))
        return pick(best, f"complexity {complexity} needs quality >= {floor}: cheapest such model", "routed")
    if affordable:
        if not any(e.quality >= floor for e in fitting):
            best = max(affordable, key=lambda e: (e.quality, -cost(e)))
            return pick(best, f"complexity {complexity} needs quality >= {floor}: none has it, best model", "routed")
        best = max(affordable, key=lambda e: (e.quality, -cost(e)))
        return pick(best, f"budget left ${budget_left_usd:.4f} pays for no model of quality >= {floor}: downgraded", "downgraded")
    if exhausted == "refuse":
        return pick(None, f"budget spent (${budget_left_usd:.4f} left): refused", "budget_refused")
    cheapest = min(fitting, key=lambda e: (cost(e), -e.quality))
    return pick(cheapest, f"budget spent (${budget_left_usd:.4f} left): cheapest model", "budget_downgrade")


def fallbacks(catalogue: Catalogue, first: ModelEntry) -> Sequence[ModelEntry]:
    """The models a turn tries, in order: ``first``, then the rest of the fallback chain."""
    return [first, *(entry for entry in catalogue.chain if entry.name != first.name)]
