"""What a model call costs: USD per million input and output tokens, by model spec.

The table is ``BULWARK_MODEL_PRICES`` (``{"openai:gpt-4o-mini": {"input": 0.15, "output":
0.6}}``); a model it does not name costs 0, as the offline model does. The agent node prices
each call once, and the state's usage, the audit record, the trace and ``llm_cost_usd_total``
all carry that one figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Prices = Mapping[str, Mapping[str, float]]
"""USD per million ``input`` and ``output`` tokens, by model spec."""


def cost_usd(prices: Prices, model: str, usage: Mapping[str, Any] | None) -> float:
    """The cost of one call of ``model`` that used ``usage`` (a reply's ``usage_metadata``)."""
    price = prices.get(model)
    if not price or not usage:
        return 0.0
    return (usage.get("input_tokens", 0) * price.get("input", 0.0) + usage.get("output_tokens", 0) * price.get("output", 0.0)) / 1e6
