"""Route: picks the model for this turn from the request's estimated complexity.

Simple requests go to the configured fast model when there is one; anything that looks
like multi-step reasoning goes to the main model. The decision is kept in the state so
it shows in traces, Studio and the audit record.
"""

from __future__ import annotations

import re

from bulwark.graphs.state import AgentState, Route
from bulwark.nodes._text import latest_request
from bulwark.observability.langsmith import annotate_run
from bulwark.observability.telemetry import decided

_REASONING = re.compile(
    r"\b(why|explain|compare|analy[sz]e|plan|design|prove|step by step|trade-?offs?"
    r"|pros and cons|summari[sz]e|write|draft)\b",
    re.IGNORECASE,
)


def estimate_complexity(text: str) -> float:
    """Score a request from 0 (trivial lookup) to 1 (long, multi-part reasoning)."""
    length = min(len(text.split()) / 150, 1.0)
    parts = min(len(re.findall(r"\?|\band\b|;|\n", text)) / 4, 1.0)
    reasoning = 1.0 if _REASONING.search(text) else 0.0
    return round(0.4 * length + 0.2 * parts + 0.4 * reasoning, 3)


class RouteModel:
    """Chooses between the main model and an optional fast model."""

    def __init__(self, *, model: str, fast_model: str | None, threshold: float = 0.3) -> None:
        self.model = model
        self.fast_model = fast_model
        self.threshold = threshold

    def __call__(self, state: AgentState) -> dict:
        request = latest_request(state["messages"])
        complexity = estimate_complexity(request.text if request else "")
        if self.fast_model and complexity < self.threshold:
            route: Route = {
                "model": self.fast_model,
                "complexity": complexity,
                "reason": f"complexity {complexity} < {self.threshold}: fast model",
            }
        else:
            route = {
                "model": self.model,
                "complexity": complexity,
                "reason": "main model" if self.fast_model else "only model configured",
            }
        annotate_run(route=route["model"], complexity=complexity)
        decided("route_fast" if route["model"] != self.model else "route_main")
        return {"route": route}

    async def acall(self, state: AgentState) -> dict:
        """Async twin of :meth:`__call__` (pure computation, nothing to await)."""
        return self(state)
