"""Log hygiene: no raw PII or secret reaches a log record, whoever logs it.

:func:`install_log_redaction` wraps the process's log-record factory so that every record
(ours, a library's, the LangGraph server's) is redacted with the rails' own detectors
(:func:`bulwark.guardrails.checks.redactions`: secrets, then the PII entities of the
:class:`~bulwark.guardrails.checks.RailPolicy`) the moment it is created, before any filter,
handler or formatter sees it.

Why the record factory (``logging.setLogRecordFactory``) and not a filter or a formatter:

* a filter on a logger only sees records logged on that very logger, not those that
  propagate up from children, so one on the root logger misses ``httpx``, ``uvicorn``...;
* handlers and formatters belong to whoever configures logging last: the LangGraph server
  applies its own ``dictConfig`` (``langgraph_api.logging.Formatter``) after our modules
  are imported, replacing handlers, and every handler added later would need the filter;
* the factory is called for every record any logger creates (``Logger.makeRecord``, and
  ``logging.makeLogRecord``, which structlog's ``ProcessorFormatter`` uses to copy records),
  and ``dictConfig`` leaves it alone. Ours wraps the factory found at install time, so
  one set by another library keeps working.

What a record becomes:

* ``msg`` is the redacted ``record.getMessage()`` and ``args`` is ``()`` (so ``%``-args,
  f-strings and non-string messages are all covered). When formatting fails (``"%d"`` with
  a string), the message is left alone and the record gets a ``redaction_skipped``
  attribute naming the error: the handler's own formatting will fail the same way.
* structlog records (``ProcessorFormatter.wrap_for_formatter`` puts the event dict in
  ``msg``): every value of the dict is redacted recursively, keys untouched, and ``msg``
  stays a dict. Strings are redacted; other values (numbers, UUIDs, exceptions, models)
  are replaced by their redacted ``str()`` only when that text holds something to redact.
* an exception (``exc_info``): ``exc_text`` is the redacted traceback, which stdlib
  formatters print instead of re-formatting ``exc_info``. ``exc_info`` stays set but holds
  a :class:`RedactedException` whose message is that same redacted traceback: structlog's
  ``ProcessorFormatter`` (the server's formatter) ignores ``exc_text`` and re-renders
  ``exc_info`` for records from stdlib loggers, and so do OpenTelemetry/Sentry handlers,
  so the original exception (its message, its chained causes, its frames' locals) must
  not stay reachable from the record.
* ``stack_info`` is redacted.

One exemption, exact rather than heuristic: a ``PERSON`` finding whose text is the name of
a loaded exception class is kept (the PII detector reads the ``KeyError: ...`` lines of a
chained traceback as a dialogue's speaker labels).

If a detector itself fails, the record is withheld (its message replaced by a notice, its
exception and stack dropped) rather than logged raw or raising into the caller.

Not covered: attributes passed as ``extra=`` (``Logger.makeRecord`` sets them after the
factory returns; structlog's ``ExtraAdder`` then copies them into the event), dict keys,
and the ``--- Logging error ---`` report stdlib prints to stderr for a record whose
message cannot be formatted.

Cost: the detectors run on every record that is actually emitted (records below the level
are never created), with no shortcut that could let something through. Measured with
``timeit`` on the record factory, default ``RailPolicy``, against the bare factory's 3 µs:
+20 µs for a short message, +50 µs for an httpx request line, +100 µs for an access-log
line, +200 µs with a traceback, about +200 µs for a 16-field LangGraph server structlog
event (1,270 µs before UUIDs, ISO timestamps and short numbers, which can hold no PII,
skipped the detectors: :data:`_INERT`, matched whole). Copies made by
``logging.makeLogRecord`` (empty message) cost under 1 µs.
"""

from __future__ import annotations

import builtins
import logging
import re
import sys
from collections.abc import Callable
from typing import Any

from bulwark.guardrails.checks import RailPolicy, redact, redactions

__all__ = ["RedactedException", "install_log_redaction", "redact_text"]

_FORMATTER = logging.Formatter()
_SEQUENCES = (list, tuple, set, frozenset)


class RedactedException(Exception):
    """Stands in for a logged exception in ``record.exc_info``.

    Its message is the original's whole traceback (chained exceptions included), redacted.
    """


# Values a server log event is mostly made of, that can hold no PII or secret: UUIDs,
# ISO timestamps, and numbers too short to be a phone, card or account number.
_INERT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"
    r"|-?\d{1,6}(\.\d+)?"
)


def redact_text(text: str, policy: RailPolicy) -> str:
    """The text with its secrets and the policy's PII entities replaced by placeholders.

    A ``PERSON`` finding that is exactly the name of a loaded exception class
    (``KeyError`` at the start of a traceback line reads like a dialogue's speaker label)
    is not redacted.
    """
    if not text or _INERT.fullmatch(text):
        return text
    spans = [
        f
        for f in redactions(text, policy)
        if f.reason != "pii:PERSON" or not _names_exception_class(text[f.start : f.end])
    ]
    return redact(text, spans)


def _names_exception_class(name: str) -> bool:
    """Whether a traceback would name a loaded exception class so: ``KeyError``, ``httpx.ReadTimeout``.

    Looks only in ``builtins`` and already imported modules, through their ``__dict__``
    (never ``getattr``, which could run a module's lazy-import hook).
    """
    module, _, attr = name.rpartition(".")
    owner = sys.modules.get(module) if module else builtins
    found = vars(owner).get(attr) if owner is not None else None
    return isinstance(found, type) and issubclass(found, BaseException)


def _redact_value(value: Any, policy: RailPolicy) -> Any:
    """A structlog event value with every string in it redacted (containers rebuilt)."""
    if isinstance(value, str):
        return redact_text(value, policy)
    if isinstance(value, dict):
        return {key: _redact_value(item, policy) for key, item in value.items()}
    if type(value) in _SEQUENCES:
        return type(value)(_redact_value(item, policy) for item in value)
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    redacted = redact_text(text, policy)
    return value if redacted == text else redacted


def _redact_record(record: logging.LogRecord, policy: RailPolicy) -> None:
    """Redact the record in place: message, exception and stack."""
    if isinstance(record.msg, dict) and not record.args:
        record.msg = _redact_value(record.msg, policy)
    else:
        try:
            message = record.getMessage()
        except Exception as error:  # noqa: BLE001 - a bad format string must not stop logging
            record.redaction_skipped = type(error).__name__  # type: ignore[attr-defined]
        else:
            record.msg, record.args = redact_text(message, policy), ()
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact_text(_FORMATTER.formatException(record.exc_info), policy)
        record.exc_info = (RedactedException, RedactedException(record.exc_text), None)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info, policy)


class _RedactingFactory:
    """A log-record factory that redacts what the factory it wraps creates."""

    def __init__(self, wrapped: Callable[..., logging.LogRecord], policy: RailPolicy) -> None:
        self.wrapped = wrapped
        self.policy = policy
        self.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        if self.active:
            try:
                _redact_record(record, self.policy)
            except Exception as error:  # noqa: BLE001 - fail closed, never raise into the caller
                record.msg = f"<log record withheld: redaction failed with {type(error).__name__}>"
                record.args, record.exc_info, record.exc_text, record.stack_info = (), None, None, None
        return record


_installed: _RedactingFactory | None = None


def install_log_redaction(policy: RailPolicy) -> None:
    """Redact every log record created in this process from now on, with ``policy``.

    Idempotent: a second call replaces the policy. If another factory was set on top of
    ours in between, ours is re-installed on top and the earlier one turned into a
    pass-through, so records are never redacted twice.
    """
    global _installed
    current = logging.getLogRecordFactory()
    if isinstance(current, _RedactingFactory):
        factory = current
        factory.policy = policy
    else:
        factory = _RedactingFactory(current, policy)
        logging.setLogRecordFactory(factory)
    if _installed is not None and _installed is not factory:
        _installed.active = False
    factory.active = True
    _installed = factory
