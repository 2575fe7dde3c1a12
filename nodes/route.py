"""Route: picks the model for this turn by the request's complexity, its estimated tokens and
the tenant's budget left (:mod:`bulwark.models.router` has the rules).

The decision (model, complexity, estimated cost, budget left, reason) is kept in the state,
so it shows in Studio and the audit record, and is told to the traces (the LangSmith run's
metadata, the ``node route`` span's ``route.*`` attributes) and the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from langchain_core.messages.utils import count_tokens_approximately
from langgraph.runtime import get_runtime

from bulwark.graphs.state import AgentState, Route, RunContext
from bulwark.models.catalogue import Catalogue
from bulwark.models.router import Choice, choose, estimate_complexity
from bulwark.nodes._text import latest_request
from bulwark.observability.langsmith import annotate_run
from bulwark.observability.telemetry import annotate_span, decided
from bulwark.persistence.usage import Budget, UsageLedger, budget_for

PROMPT_OVERHEAD_TOKENS = 200
"""The system prompt and its notes, on top of the conversation, in the router's estimate."""


class RouteModel:
    """Picks a catalogue model for the turn."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        history_tokens: int,
        ledger: UsageLedger | None = None,
        budgets: Mapping[str, Mapping[str, float | None]] | None = None,
        exhausted: Literal["downgrade", "refuse"] = "downgrade",
    ) -> None:
        self.catalogue = catalogue
        self.history_tokens = history_tokens
        self.ledger = ledger
        self.budgets = budgets or {}
        self.exhausted = exhausted

    def _budget(self) -> tuple[str, Budget | None]:
        tenant = (get_runtime(RunContext).context or RunContext()).tenant_id
        budget = budget_for(self.budgets, tenant)
        limited = self.ledger is not None and (budget.daily_usd is not None or budget.monthly_usd is not None)
        return tenant, budget if limited else None

    def __call__(self, state: AgentState) -> dict:
        tenant, budget = self._budget()
        left = self.ledger.remaining(tenant, budget) if budget and self.ledger else None
        return self._route(state, left)

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__`: the budget is read without blocking the loop."""
        tenant, budget = self._budget()
        left = await self.ledger.aremaining(tenant, budget) if budget and self.ledger else None
        return self._route(state, left)

    def _route(self, state: AgentState, left: float | None) -> dict:
        request = latest_request(state["messages"])
        tokens = min(count_tokens_approximately(state["messages"]), self.history_tokens) + PROMPT_OVERHEAD_TOKENS
        choice = choose(
            self.catalogue,
            complexity=estimate_complexity(request.text if request else ""),
            input_tokens=tokens,
            budget_left_usd=left,
            exhausted=self.exhausted,
        )
        route = as_route(choice)
        annotate_run(
            route=route["model"], complexity=choice.complexity, route_reason=choice.reason,
            estimated_cost_usd=choice.estimated_cost_usd, budget_left_usd=left,
        )
        annotate_span(**{
            "route.model": route["model"], "route.complexity": choice.complexity, "route.outcome": choice.outcome,
            "route.min_quality": choice.min_quality, "route.estimated_cost_usd": choice.estimated_cost_usd,
            "route.budget_left_usd": left, "route.reason": choice.reason,
        })
        decided(f"route_{choice.outcome}")
        return {"route": route}


def as_route(choice: Choice) -> Route:
    """The state's record of ``choice``."""
    return {
        "model": choice.model.name if choice.model else None,
        "complexity": choice.complexity,
        "reason": choice.reason,
        "outcome": choice.outcome,
        "min_quality": choice.min_quality,
        "estimated_tokens": choice.input_tokens + choice.output_tokens,
        "estimated_cost_usd": choice.estimated_cost_usd,
        "budget_left_usd": None if choice.budget_left_usd is None else round(choice.budget_left_usd, 6),
    }
