"""LangSmith tracing: one run tree per turn, anonymized, sampled, off unless configured.

Tracing is LangSmith's own, switched and addressed by its standard variables
(``LANGSMITH_TRACING``, ``LANGSMITH_API_KEY``, ``LANGSMITH_ENDPOINT``, ``LANGSMITH_PROJECT``):
LangGraph and LangChain already trace the graph, every node and every model call through
their callbacks; :func:`traced_rail`, :func:`traced_tool_call` and :func:`traced_recall`
add the rail checks, the registry's tool calls (validation, breaker, retries; the tool's
own run nests inside) and the memory recall to the same tree. Nothing here talks to
LangSmith when tracing is off: no client is made (a ``langsmith.Client`` fetches ``/info``
as soon as it is created), and the decorators only check the tracing context (:func:`_traced`).

:func:`install_tracing` makes the process's client, once, when tracing is on, and installs
it with ``langsmith.configure(client=...)``: LangChain's tracer and ``@traceable`` both use
that cached global client (``langsmith.run_trees.get_cached_client``). The CLI installs it
when it starts, and the servers (``bulwark serve``, ``langgraph dev``, the production
engine) when they import ``graphs/platform.py``, before the first run.

The client carries two things Bulwark adds:

* **An anonymizer** (``langsmith.anonymizer.create_anonymizer``) over the rails' own
  detectors (:func:`bulwark.observability.logs.redact_text`: secrets, then every PII entity,
  whatever ``BULWARK_PII_ENTITIES`` lets through to the model, since traces leave the
  machine), then the SDK's own secret rules (``DEFAULT_SECRET_RULES``: LangSmith, Anthropic,
  GitHub... keys). The client applies it to every run's inputs, outputs, error and metadata,
  so the raw text a rail screens (before it is redacted) reaches LangSmith redacted too. The
  user's id is not PII-scanned but replaced by its SHA-256, as the audit log keeps it
  (``user_sha256``): the metadata keys of :data:`HASHED_KEYS` (the run's ``user_id``, and
  ``owner`` and ``langgraph_auth_user_id``, which the server derives from it) hold
  ``sha256:<hex>``. Tenant, thread and request ids stay as given (operator-chosen ids).
* **Sampling** (``BULWARK_TRACE_SAMPLE_RATE``, 0 to 1, or the SDK's
  ``LANGSMITH_TRACING_SAMPLING_RATE`` when unset): whole traces are kept or dropped.

Run metadata: the server puts the run's tenant, user and request id in its ``configurable``,
which LangChain copies into every run's metadata; the CLI passes :func:`trace_metadata` as
the run's config metadata, with the same effect. The route node adds the route
(:func:`annotate_run`), the agent node the model; LangSmith prices the model runs itself
from their token usage and model name.

Why a function of our own for the offline defaults (:func:`offline_env`): the CLI used to
force ``LANGSMITH_TRACING=false``; it now sets each offline default only where neither the
environment nor ``.env`` sets it, and any one of the tracing switches set keeps all of them
(``LANGCHAIN_TRACING_V2=false`` would otherwise override ``LANGSMITH_TRACING=true``).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import langsmith
from langsmith import utils as ls_utils
from langsmith.anonymizer import DEFAULT_SECRET_RULES, create_anonymizer
from langsmith.run_helpers import get_current_run_tree, traceable

from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import RailPolicy
from bulwark.observability.logs import redact_text
from bulwark.persistence.audit import sha256
from bulwark.settings import ConfigError, Settings

__all__ = [
    "HASHED_KEYS",
    "TRACING_SWITCHES",
    "anonymizer",
    "annotate_run",
    "install_tracing",
    "offline_env",
    "trace_metadata",
    "traced_rail",
    "traced_recall",
    "traced_tool_call",
    "tracing_client",
    "tracing_enabled",
]

F = TypeVar("F", bound=Callable[..., Any])

HASHED_KEYS = frozenset({"user_id", "owner", "langgraph_auth_user_id"})
"""Top-level keys (run metadata) whose string value is replaced by ``sha256:<hex>``."""
TRACING_SWITCHES = ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING")
"""The variables the SDK reads to switch tracing on (the ``_V2`` ones win)."""
_LANGSMITH_PREFIXES = ("LANGSMITH_", "LANGCHAIN_")


def offline_env(
    defaults: Mapping[str, str], *, environ: Mapping[str, str], dotenv: Mapping[str, str | None]
) -> dict[str, str]:
    """The variables to set in the environment: ``.env``'s LangSmith variables the
    environment does not set (the SDK reads only the environment), and each of ``defaults``
    that neither sets. A tracing switch set in either keeps every default switch unset."""
    configured = {key for key, value in dotenv.items() if value is not None} | set(environ)
    switched = any(key in configured for key in TRACING_SWITCHES)
    chosen = {
        key: value
        for key, value in dotenv.items()
        if value is not None and key.startswith(_LANGSMITH_PREFIXES) and key not in environ
    }
    for key, value in defaults.items():
        if key not in configured and not (switched and key in TRACING_SWITCHES):
            chosen[key] = value
    return chosen


ANONYMIZER_CACHE = 4096
"""Distinct strings the anonymizer remembers the redaction of."""


def anonymizer(policy: RailPolicy) -> Callable[[Any], Any]:
    """The LangSmith anonymizer: every string redacted with ``policy``'s detectors and the
    SDK's secret rules; a string under a top-level :data:`HASHED_KEYS` key hashed instead.

    The client runs it on the caller's thread (the event loop, on a server) for every run's
    inputs, outputs and metadata, and the same strings (the conversation, in the state every
    node run carries) come back in each of a turn's ~25 runs: each distinct string is
    scanned once, then served from an LRU of :data:`ANONYMIZER_CACHE` entries."""

    @functools.lru_cache(maxsize=ANONYMIZER_CACHE)
    def scrub(text: str) -> str:
        text = redact_text(text, policy)
        for rule in DEFAULT_SECRET_RULES:
            text = rule["pattern"].sub(rule["replace"] or "[redacted]", text)
        return text

    def replace(value: str, path: list[str | int]) -> str:
        if len(path) == 1 and path[0] in HASHED_KEYS:
            return value if value.startswith("sha256:") else f"sha256:{sha256(value)}"
        return scrub(value)

    return create_anonymizer(replace)


def tracing_enabled() -> bool:
    """Whether the environment switches LangSmith tracing on (``LANGSMITH_TRACING``...), as
    it is now."""
    ls_utils.get_env_var.cache_clear()  # the SDK caches what it read; the CLI may have set more since
    return ls_utils.tracing_is_enabled() is True


def tracing_client(settings: Settings, **client_options: Any) -> langsmith.Client:
    """A LangSmith client that anonymizes every run and samples traces as ``settings``
    say; endpoint, key and project from ``LANGSMITH_*`` unless given in ``client_options``.

    Raises:
        ConfigError: ``LANGSMITH_TRACING_SAMPLING_RATE`` is not a number from 0 to 1.
    """
    # The SDK's zstd path compresses each run on the caller's thread (the event loop, on
    # a server): measured, it cost more than the rest of tracing. Uncompressed, runs are
    # serialized and sent from the client's own thread. A value the user set wins.
    os.environ.setdefault("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
    return langsmith.Client(
        anonymizer=anonymizer(RailPolicy()), tracing_sampling_rate=_sample_rate(settings), **client_options
    )


def _sample_rate(settings: Settings) -> float | None:
    """``BULWARK_TRACE_SAMPLE_RATE`` (validated by the settings), else the SDK's
    ``LANGSMITH_TRACING_SAMPLING_RATE`` checked here, so a bad one is one line at start-up."""
    if settings.trace_sample_rate is not None:
        return settings.trace_sample_rate
    ls_utils.get_env_var.cache_clear()  # the SDK caches what it read; the CLI may have set more since
    value = ls_utils.get_env_var("TRACING_SAMPLING_RATE")
    if not value:
        return None
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ConfigError(f"LANGSMITH_TRACING_SAMPLING_RATE must be a number from 0 to 1, got {value[:40]!r}")
    return rate


_installed: langsmith.Client | None = None


def install_tracing(settings: Settings) -> langsmith.Client | None:
    """When tracing is on, make this process's LangSmith client (:func:`tracing_client`)
    and install it as the one LangChain's tracer and ``@traceable`` use; once per process
    (later calls return the same client). Returns ``None``, and does nothing, when tracing
    is off."""
    global _installed
    if _installed is None and tracing_enabled():
        _installed = tracing_client(settings)
        langsmith.configure(client=_installed)
    return _installed


def trace_metadata(context: RunContext) -> dict[str, str]:
    """The run's config metadata for its traces: tenant, user (hashed on the way out) and
    request id."""
    metadata = {"tenant_id": context.tenant_id, "user_id": context.user_id}
    if context.request_id:
        metadata["request_id"] = context.request_id
    return metadata


def annotate_run(**metadata: Any) -> None:
    """Add ``metadata`` to the run being traced (a node's, a rail's...); nothing when no
    run is traced."""
    run = get_current_run_tree()
    if run is not None:
        run.metadata.update(metadata)


def _traced(**options: Any) -> Callable[[F], F]:
    """``langsmith.traceable(**options)``, skipped (the function called as it is) when
    nothing is traced: ``traceable`` alone costs about 180 µs a call even then."""

    def decorate(function: F) -> F:
        traced = traceable(**options)(function)
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                return await (traced if ls_utils.tracing_is_enabled() else function)(*args, **kwargs)

            return acall  # type: ignore[return-value]

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            return (traced if ls_utils.tracing_is_enabled() else function)(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


def _rail_outputs(result: Any) -> dict[str, Any]:
    return {"verdict": result.verdict, "text": result.text}


def traced_rail(rail: str) -> Callable[[F], F]:
    """Decorates a rail check (``check_input``...) as a run ``rail:<rail>`` of the current
    trace: its text in, its verdict and safe text out."""
    return _traced(run_type="chain", name=f"rail:{rail}", tags=["rail"], process_outputs=_rail_outputs)


def _tool_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    call = inputs.get("call") or {}
    return {"name": call.get("name"), "args": call.get("args"), "id": call.get("id")}


def _tool_outputs(message: Any) -> dict[str, Any]:
    return {"status": message.status, "content": message.content, "artifact": message.artifact}


traced_tool_call: Callable[[F], F] = _traced(
    run_type="chain", name="tool_call", tags=["tool"], process_inputs=_tool_inputs, process_outputs=_tool_outputs
)
"""Decorates :meth:`ToolRegistry.arun`/``run`` as a run ``tool_call``: the call's name,
arguments and id in; status, content and artifact (attempts, duration, breaker) out."""


def _recall_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"query": inputs.get("query")}  # not the store, nor the namespace (tenant, user)


traced_recall: Callable[[F], F] = _traced(
    run_type="chain", name="memory_recall", tags=["memory"], process_inputs=_recall_inputs
)
"""Decorates the recall's store search (``Recall.from_store``/``afrom_store``) as a run
``memory_recall``: the query in, each route's memories out."""
