"""The built-in tools: calculator, current time, unit conversion, web fetch, an email
outbox that needs approval, the knowledge base search and the user's long-term memory,
registered with their policies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from bulwark.settings import Settings
from bulwark.tools.calculator import CalculatorError, evaluate
from bulwark.tools.http_fetch import make_http_fetch
from bulwark.tools.idempotency import append_once, idempotency_key
from bulwark.guardrails.checks import RailPolicy
from bulwark.tools.knowledge import knowledge_tool
from bulwark.tools.memory import memory_tools
from bulwark.tools.policy import ToolPolicy
from bulwark.tools.registry import ToolRegistry
from bulwark.tools.units import make_unit_converter

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as 17*23 or (2+3)/4 and return the result.

    Args:
        expression: the arithmetic expression to compute, e.g. 2*(3+4).
    """
    try:
        return str(evaluate(expression))
    except CalculatorError as exc:
        raise ToolException(str(exc)) from None


def builtin_tools(*, outbox: Path, clock: Clock = _utc_now) -> list[BaseTool]:
    """Return the built-in tools.

    Args:
        outbox: JSON-lines file where ``send_email`` delivers messages (offline stand-in
            for a mail server; a real deployment swaps in its own tool).
        clock: returns the current aware datetime; injected so tests control time.
    """

    def current_time(timezone: str = "UTC") -> str:
        """Get the current date and time (clock) now in a timezone such as UTC or Europe/Paris.

        Args:
            timezone: IANA timezone name, e.g. Europe/Paris; defaults to UTC.
        """
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolException(
                f"unknown timezone {timezone!r}: use an IANA name such as Europe/Paris"
            ) from None
        return clock().astimezone(zone).isoformat(timespec="seconds")

    def send_email(to: str, subject: str, body: str, config: RunnableConfig) -> str:
        """Send an email message to a recipient address. Needs human approval.

        Args:
            to: recipient email address.
            subject: subject line.
            body: message text.
        """
        if "@" not in to:
            raise ToolException(f"invalid recipient {to!r}: expected an email address")
        record = {"to": to, "subject": subject, "body": body, "sent_at": clock().isoformat()}
        if append_once(outbox, idempotency_key(config), record):
            return f"email to {to} queued in the outbox"
        return f"email to {to} was already queued by this call (not sent twice)"

    return [
        StructuredTool.from_function(func, handle_tool_error=False, parse_docstring=True)
        for func in (calculator, current_time, send_email)
    ]


_OWN_POLICIES: dict[str, dict[str, Any]] = {
    "send_email": {"idempotent": False, "cacheable": False, "pii_args": ("to",)},
    "current_time": {"cacheable": False},
    "http_fetch": {"cacheable": False},
    "save_memory": {"cacheable": False},
    "search_memory": {"cacheable": False},
}
"""Built-in tools' departures from the default policy: ``send_email`` is side-effecting and
gets the real address for a vault placeholder in ``to`` (never in ``subject`` or ``body``,
which the model writes); the answer cache never reuses the clock, live pages or a user's own
memories."""


def builtin_registry(settings: Settings, *, clock: Clock = _utc_now) -> ToolRegistry:
    """The built-in tools in a :class:`ToolRegistry`, with policies from ``settings``.

    ``send_email`` is side-effecting (never retried, run at most once per call);
    ``http_fetch`` reaches only ``settings.http_allowed_domains``; ``knowledge_search``,
    ``save_memory`` and ``search_memory`` use the graph's store and the run's tenant/user.
    """
    registry = ToolRegistry(settings=settings)
    policy = RailPolicy(pii_entities=settings.pii_entities)  # what save_memory redacts
    tools = [
        *builtin_tools(outbox=settings.data_dir / "outbox.jsonl", clock=clock),
        make_unit_converter(),
        make_http_fetch(
            allowed_domains=settings.http_allowed_domains,
            max_bytes=settings.http_max_bytes,
            timeout_s=settings.http_timeout_s,
        ),
        knowledge_tool(),
        *memory_tools(policy=policy),
    ]
    for tool in tools:
        own = _OWN_POLICIES.get(tool.name)
        registry.register(tool, policy=ToolPolicy.from_settings(settings, tool.name).model_copy(update=own) if own else None)
    return registry
