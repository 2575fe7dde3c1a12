"""Structured logs: one JSON object a line (or a readable line on a terminal), with the ids
that tie a line to its request, thread, run, tenant, graph node and trace.

:func:`configure_logging` installs the redaction of :mod:`bulwark.observability.logs`
(first: records are redacted as they are created) and then :func:`install_log_format`: a
``structlog.stdlib.ProcessorFormatter`` on one root handler, so stdlib records (Bulwark's,
``httpx``'s, uvicorn's) and structlog events (the LangGraph server's and aegra's, which
reach the stdlib through ``wrap_for_formatter``) come out in the one format. Every line has
``timestamp``, ``level``, ``logger``, ``event`` and the :data:`CONTEXT_FIELDS`, ``null``
when unknown (the console format leaves those out), then whatever the call added.

The servers configure logging themselves: langgraph-api's uvicorn applies a ``dictConfig``
(its own ``Formatter``, chosen by ``LOG_JSON``) and aegra its ``setup_logging``, both before
they import the auth module and the custom routes. ``server/auth.py`` calls
:func:`configure_logging` when it is imported, so ours replaces their console handler
(``langgraph dev`` too); :func:`server_log_env` sets their own variables to the same format
and level for the few lines written before that. Neither server's files are patched.

Where the ids come from, first found wins (a key the call passed itself always wins):

1. structlog's context variables (``structlog.contextvars``): aegra binds ``request_id``,
   ``run_id`` and ``thread_id`` there, and Bulwark's auth handler the caller's ``tenant``;
2. langgraph-api's logging context (``langgraph_api.logging.worker_config``, read only if
   the server loaded it): the ``x-request-id`` of ``/runs`` and ``/threads`` requests, and
   in a run's worker its ``run_id``, ``thread_id`` and the request id that created it;
3. inside a graph node, the LangGraph config (``langgraph_node``, ``thread_id``, ``run_id``
   from its metadata or ``configurable``) and the run context (:class:`~bulwark.graphs.state.RunContext`:
   ``tenant_id``, ``request_id``), so nothing has to be bound by the nodes;
4. the current OpenTelemetry span (``trace_id``, ``span_id``, in W3C hex) when it is valid.

On the server, ``request_id`` is therefore the HTTP request's id on every line of a run,
the server's and Bulwark's alike; the run context's (which the audit record keeps) is used
where there is no server, as in the CLI.

Why a formatter of our own rather than langgraph-api's ``Formatter`` with ``LOG_JSON``: its
processors are fixed (no hook for fields), it names the node ``langgraph_node``, knows no
tenant or trace, and aegra's formatter is another one again.

What Bulwark logs: ids, names, counts and verdict categories as ``extra=`` fields, never
message text (``extra=`` values are not redacted: see :mod:`bulwark.observability.logs`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.runtime import get_runtime

from bulwark.guardrails.checks import RailPolicy
from bulwark.observability.logs import RedactedException, install_log_redaction, redact_text
from bulwark.settings import Settings

try:
    from opentelemetry import trace as otel_trace
except ImportError:  # optional: no OpenTelemetry, no trace ids
    otel_trace = None  # type: ignore[assignment]

__all__ = [
    "CONTEXT_FIELDS",
    "LogFormat",
    "add_context",
    "configure_logging",
    "install_log_format",
    "log_formatter",
    "server_log_env",
]

LogFormat = Literal["json", "console"]
CONTEXT_FIELDS = ("request_id", "thread_id", "run_id", "tenant", "node", "trace_id", "span_id")
"""The ids every line carries (``null`` when not known where it was logged)."""
_FIRST = ("timestamp", "level", "logger", "event")
_ID_FIELDS = CONTEXT_FIELDS[:5]
_STD_STREAMS = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}


def _server_context() -> Mapping[str, Any]:
    """langgraph-api's logging context, if the server is running in this process."""
    module = sys.modules.get("langgraph_api.logging")
    context = getattr(module, "worker_config", None)
    return (context.get() or {}) if context is not None else {}


def _graph_context() -> Iterator[tuple[str, Any]]:
    """Ids from the LangGraph config and run context, inside a node."""
    config = var_child_runnable_config.get()
    if not config:
        return
    metadata, configurable = config.get("metadata") or {}, config.get("configurable") or {}
    yield "node", metadata.get("langgraph_node")
    yield "thread_id", metadata.get("thread_id") or configurable.get("thread_id")
    yield "run_id", metadata.get("run_id") or configurable.get("run_id")
    try:
        context = get_runtime().context
    except (KeyError, RuntimeError):  # a runnable outside a graph: no runtime
        return
    if isinstance(context, Mapping):
        yield "tenant", context.get("tenant_id")
        yield "request_id", context.get("request_id")
    elif context is not None:
        yield "tenant", getattr(context, "tenant_id", None)
        yield "request_id", getattr(context, "request_id", None)


def _trace_context() -> Iterator[tuple[str, str]]:
    if otel_trace is None:
        return
    span = otel_trace.get_current_span().get_span_context()
    if span.is_valid:
        yield "trace_id", format(span.trace_id, "032x")
        yield "span_id", format(span.span_id, "016x")


def add_context(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: fill in the :data:`CONTEXT_FIELDS` the event does not carry yet."""
    if event.get("node") is None and event.get("langgraph_node") is not None:  # langgraph-api's name
        event["node"] = event.pop("langgraph_node")
    found = {key: event.get(key) for key in CONTEXT_FIELDS}

    def take(pairs: Iterable[tuple[str, Any]]) -> None:
        for key, value in pairs:
            if found.get(key) is None and value is not None:
                found[key] = str(value)

    bound = structlog.contextvars.get_contextvars()
    take((key, bound.get(key)) for key in _ID_FIELDS)
    server = _server_context()
    take((key, server.get(key)) for key in ("request_id", "run_id", "thread_id"))
    if None in found.values():
        take(_graph_context())
        take(_trace_context())
    event.update(found)
    return event


def _standard_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Timestamp (when the record was made, UTC), level and logger name from the record,
    so stdlib records and structlog events spell them alike; a stdlib record's exception is
    its redacted traceback (:class:`~bulwark.observability.logs.RedactedException`)."""
    record: logging.LogRecord = event["_record"]
    event["timestamp"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    event["level"] = record.levelname.lower()
    event["logger"] = record.name
    exc_info = event.get("exc_info")
    if isinstance(exc_info, tuple) and isinstance(exc_info[1], RedactedException):
        del event["exc_info"]
        event["exception"] = str(exc_info[1])
    return event


def _ordered(*, drop_unknown: bool) -> structlog.typing.Processor:
    def order(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        first = {key: event.pop(key, None) for key in (*_FIRST, *CONTEXT_FIELDS)}
        merged = {**first, **event}
        return {k: v for k, v in merged.items() if v is not None} if drop_unknown else merged

    return order


def _redacted_ids(policy: RailPolicy) -> structlog.typing.Processor:
    """The ids redacted like messages: a client may send anything as its ``x-request-id``,
    and values read here at formatting time never passed the record factory."""

    def redact_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in _ID_FIELDS:
            if isinstance(event.get(key), str):
                event[key] = redact_text(event[key], policy)
        return event

    return redact_ids


def log_formatter(*, console: bool, colors: bool = False, policy: RailPolicy | None = None) -> logging.Formatter:
    """The formatter of every Bulwark log line: JSON, or ``console`` for people; with
    ``policy``, the ids are redacted with it."""
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer(default=str)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder()],
        processors=[
            _standard_fields,
            add_context,
            *([_redacted_ids(policy)] if policy is not None else []),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _ordered(drop_unknown=console),
            renderer,
        ],
    )


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so a second install replaces it."""


def install_log_format(
    *, level: str, fmt: LogFormat | None, stream: TextIO, policy: RailPolicy | None = None
) -> logging.Handler:
    """Log every record at ``level`` and above to ``stream`` in ``fmt``; returns the handler.

    ``fmt`` ``None`` is ``console`` when ``stream`` is a terminal, else ``json``. The root
    logger's console handlers (a stream handler on standard output or error: the servers'
    and ``basicConfig``'s) and an earlier one of ours are replaced; other handlers stay.
    With ``policy``, the ids are redacted with it (:func:`log_formatter`).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        console_handler = type(handler) is logging.StreamHandler and id(handler.stream) in _STD_STREAMS
        if isinstance(handler, _Handler) or console_handler:
            root.removeHandler(handler)
    tty = stream.isatty()
    ours = _Handler(stream)
    ours.setFormatter(log_formatter(console=fmt == "console" or (fmt is None and tty), colors=tty, policy=policy))
    root.addHandler(ours)
    root.setLevel(level)
    return ours


def configure_logging(
    settings: Settings, *, policy: RailPolicy, stream: TextIO, default_level: str = "WARNING"
) -> logging.Handler:
    """Redact every record with ``policy``, then format it as ``settings`` say
    (``BULWARK_LOG_LEVEL``, else ``default_level``; ``BULWARK_LOG_FORMAT``) on ``stream``."""
    install_log_redaction(policy)
    return install_log_format(
        level=settings.log_level or default_level, fmt=settings.log_format, stream=stream, policy=policy
    )


def server_log_env(settings: Settings, *, stream: TextIO, default_level: str = "INFO") -> dict[str, str]:
    """The LangGraph server's and aegra's own logging variables, set to the format and level
    :func:`configure_logging` will use on ``stream``, for the lines they write before it."""
    json_lines = settings.log_format == "json" or (settings.log_format is None and not stream.isatty())
    return {
        "LOG_JSON": "true" if json_lines else "false",
        "LOG_COLOR": "false",
        "LOG_LEVEL": settings.log_level or default_level,
        "ENV_MODE": "PRODUCTION" if json_lines else "LOCAL",  # aegra: JSON unless LOCAL/DEVELOPMENT
    }
