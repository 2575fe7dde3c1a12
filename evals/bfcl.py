"""BFCL tool-calling eval: does the agent call the right function with the right arguments?

Each row of a BFCL file (``simple_python`` category of the Berkeley Function Calling
Leaderboard, see ``evals/datasets/README.md``) holds one user question, the function(s)
offered, and the accepted call(s). For every row :func:`run_bfcl`:

1. registers the row's functions in a :class:`~bulwark.tools.registry.ToolRegistry` as
   schema-only tools (:func:`bulwark.tools.schema.tool_from_schema`: BFCL dialect -> JSON
   Schema, provider-safe names; running one only returns an error result);
2. runs the Bulwark agent graph (:func:`bulwark.graphs.agent.build_agent`) on the
   question, with the offline model unless another is given;
3. takes the first tool call of the first AI message, maps its name back to the
   original function name and scores it with :func:`score_call`.

The scorer follows BFCL's AST checker in spirit: the function name must match, every
argument the ground truth requires (no ``""`` among its accepted values) must be
present, every argument given must be one the schema knows and have an accepted value.
Numbers compare numerically (``5 == 5.0``; booleans are not numbers), strings
case-insensitively with surrounding and repeated whitespace ignored, lists and dicts
element by element under the same rules.

The CLI (``bulwark eval bfcl``) calls :func:`run_bfcl` and :func:`format_report`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from bulwark.graphs.agent import build_agent
from bulwark.models.offline import OfflineChatModel
from bulwark.settings import Settings
from bulwark.tools.registry import ToolRegistry

__all__ = [
    "DEFAULT_DATA",
    "BfclFailure",
    "BfclReport",
    "eval_settings",
    "first_call",
    "format_report",
    "load_rows",
    "register_functions",
    "row_key",
    "run_bfcl",
    "score_call",
]

DEFAULT_DATA = Path(__file__).parent / "datasets" / "bfcl_simple_python.jsonl"
"""The bundled BFCL ``simple_python`` set (400 rows, Apache-2.0)."""

_MODEL_SPEC = "offline"
"""The spec the eval's settings route every turn to; the model under test is bound to it."""


@dataclass(frozen=True)
class BfclFailure:
    """One row the agent got wrong."""

    id: str
    question: str
    expected: list[dict[str, Any]]
    """The accepted calls: ``[{function_name: {argument: [accepted values]}}]``."""
    got: dict[str, Any] | None
    """The call the agent made, ``{"name": ..., "args": {...}}``, or ``None``."""
    reason: str


@dataclass
class BfclReport:
    """Outcome of a BFCL run."""

    total: int = 0
    correct: int = 0
    failures: list[BfclFailure] = field(default_factory=list)
    elapsed_s: float = 0.0
    data: str = ""

    @property
    def accuracy(self) -> float:
        """Share of rows scored correct (0.0 for an empty run)."""
        return self.correct / self.total if self.total else 0.0


# ------------------------------------------------------------------------ scoring


def _norm(value: Any) -> Any:
    """Normal form for comparison: numbers as floats, strings folded, containers deep."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _is_omitted(value: Any) -> bool:
    return isinstance(value, str) and value == ""


def _same(got: Any, accepted: Any) -> bool:
    """Whether ``got`` matches one accepted value under the eval's normalisation.

    In BFCL ground truth a dict maps each key to a *list* of accepted values (``""``
    among them: the key may be left out); list elements are plain values.
    """
    if isinstance(accepted, Mapping):
        if not isinstance(got, Mapping) or set(got) - set(accepted):
            return False
        for key, options in accepted.items():
            options = options if isinstance(options, list) else [options]
            if key not in got:
                if not any(_is_omitted(o) for o in options):
                    return False
            elif not any(_same(got[key], o) for o in options if not _is_omitted(o)):
                return False
        return True
    if isinstance(accepted, list | tuple):
        return (
            isinstance(got, list | tuple)
            and len(got) == len(accepted)
            and all(_same(g, a) for g, a in zip(got, accepted, strict=True))
        )
    return type(_norm(got)) is type(_norm(accepted)) and _norm(got) == _norm(accepted)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def score_call(
    got: Mapping[str, Any] | None,
    expected: Sequence[Mapping[str, Mapping[str, Sequence[Any]]]],
    functions: Sequence[Mapping[str, Any]],
) -> tuple[bool, str]:
    """Score one call against a row's ground truth.

    Args:
        got: ``{"name": original function name, "args": {...}}``, or ``None`` when the
            agent made no tool call.
        expected: the row's ``ground_truth``: accepted calls, each
            ``{function_name: {argument: [accepted values]}}``; ``""`` among the
            accepted values means the argument may be left out.
        functions: the row's function specs (to tell unknown arguments apart).

    Returns:
        ``(correct, reason)``; the reason is ``"ok"`` or says what is wrong (for the
        closest accepted call when there are several).
    """
    if got is None:
        return False, "no tool call"
    reasons = []
    for accepted_call in expected:
        for name, accepted_args in accepted_call.items():
            reasons.append(_check(got, name, accepted_args, functions))
            if reasons[-1] == "ok":
                return True, "ok"
    return False, reasons[0] if reasons else "no ground truth"


def _check(
    got: Mapping[str, Any],
    name: str,
    accepted_args: Mapping[str, Sequence[Any]],
    functions: Sequence[Mapping[str, Any]],
) -> str:
    if got.get("name") != name:
        return f"wrong function: called {got.get('name')!r}, expected {name!r}"
    args = dict(got.get("args") or {})
    spec = next((f for f in functions if f.get("name") == name), {})
    known = set((spec.get("parameters") or {}).get("properties") or {}) | set(accepted_args)
    for arg in args:
        if arg not in known:
            return f"unknown argument {arg!r}"
        if arg not in accepted_args:
            return f"unexpected argument {arg!r}"
    for arg, accepted in accepted_args.items():
        optional = any(_is_omitted(v) for v in accepted)
        if arg not in args:
            if optional:
                continue
            return f"missing required argument {arg!r}"
        values = [v for v in accepted if not _is_omitted(v)]
        if not any(_same(args[arg], v) for v in values):
            return (
                f"wrong value for {arg!r}: got {_short(args[arg])}, "
                f"expected one of {_short(values)}"
            )
    return "ok"


# ------------------------------------------------------------------------ running


def load_rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a BFCL JSON-lines file, the first ``limit`` only if given."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def register_functions(
    functions: Sequence[Mapping[str, Any]], settings: Settings | None = None
) -> tuple[ToolRegistry, dict[str, str]]:
    """A registry holding a row's functions as schema-only tools, and tool name ->
    original function name (``math.factorial`` is registered as ``math_factorial``).

    Raises:
        ValueError: a spec the registry refuses (bad name, invalid JSON Schema).
    """
    registry = ToolRegistry(settings=settings)
    names = {}
    for spec in functions:
        tool = registry.register(dict(spec))
        names[tool.name] = str((tool.metadata or {}).get("original_name") or tool.name)
    return registry, names


def _first_call(messages: Sequence[BaseMessage], names: Mapping[str, str]) -> dict[str, Any] | None:
    """The first tool call of the first AI message, with the original function name."""
    first = next((m for m in messages if isinstance(m, AIMessage)), None)
    if first is None or not first.tool_calls:
        return None
    call = first.tool_calls[0]
    return {"name": names.get(call["name"], call["name"]), "args": dict(call["args"])}


def _question(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """The row's messages (BFCL nests them one level deeper in some versions)."""
    question = row["question"]
    if question and isinstance(question[0], list):
        question = question[0]
    return [{"role": m["role"], "content": m["content"]} for m in question]


def row_key(row: Mapping[str, Any], index: int) -> str:
    """A row's id: its ``id``, or its index in the file."""
    return str(row.get("id", index))


def eval_settings(data_dir: Path) -> Settings:
    """The settings every row runs with: one model spec (the model under test is bound to
    it), no approvals, state in ``data_dir``."""
    return Settings(model=_MODEL_SPEC, fast_model=None, data_dir=data_dir, approval_tools=())


def first_call(
    row: Mapping[str, Any], row_id: str, *, settings: Settings, model: BaseChatModel
) -> dict[str, Any] | None:
    """Run the agent graph on one row, with only that row's functions as tools, no
    checkpointer and no memory store; its first tool call (original function name), or
    ``None``."""
    registry, names = register_functions(row["functions"], settings)
    graph = build_agent(settings, models={_MODEL_SPEC: model}, tools=registry)
    result = graph.invoke(
        {"messages": _question(row)},
        {"configurable": {"thread_id": f"bfcl-{row_id}"}, "recursion_limit": 25},
    )
    return _first_call(result["messages"], names)


def run_bfcl(
    path: str | Path | None = None,
    *,
    limit: int | None = None,
    model: BaseChatModel | None = None,
) -> BfclReport:
    """Run the agent graph on every row of a BFCL file and score its first tool call.

    Args:
        path: a BFCL JSON-lines file; the bundled ``simple_python`` set if ``None``.
        limit: score only the first ``limit`` rows.
        model: the chat model under test; :class:`OfflineChatModel` if ``None``.

    Each row runs on a fresh graph with only that row's tools, no checkpointer and no
    memory store. Audit records go to a temporary directory that is removed afterwards.
    """
    data = Path(path) if path is not None else DEFAULT_DATA
    rows = load_rows(data, limit)
    chat_model = model if model is not None else OfflineChatModel()
    report = BfclReport(data=str(data))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bulwark-bfcl-") as tmp:
        settings = eval_settings(Path(tmp))
        for index, row in enumerate(rows):
            row_id = row_key(row, index)
            got = first_call(row, row_id, settings=settings, model=chat_model)
            correct, reason = score_call(got, row["ground_truth"], row["functions"])
            report.total += 1
            if correct:
                report.correct += 1
            else:
                text = " ".join(m["content"] for m in _question(row) if m["role"] == "user")
                report.failures.append(
                    BfclFailure(row_id, text, list(row["ground_truth"]), got, reason)
                )
    report.elapsed_s = time.perf_counter() - started
    return report


# ------------------------------------------------------------------------ report


def _category(reason: str) -> str:
    """The kind of a failure reason: ``wrong value``, ``missing required argument`` ..."""
    for prefix in (
        "wrong function",
        "wrong value",
        "missing required",
        "unknown argument",
        "unexpected argument",
        "no tool call",
    ):
        if reason.startswith(prefix):
            return prefix
    return reason


def format_report(report: BfclReport, *, show_failures: int = 10) -> str:
    """A plain-text summary: accuracy, time, failures by kind and the first failures.

    Args:
        report: what :func:`run_bfcl` returned.
        show_failures: how many failing rows to list in full (0 for none).
    """
    lines = [
        f"BFCL: {report.correct}/{report.total} correct ({report.accuracy:.1%}) "
        f"in {report.elapsed_s:.1f}s",
    ]
    if report.data:
        lines.append(f"data: {report.data}")
    if report.failures:
        kinds = Counter(_category(f.reason) for f in report.failures)
        lines.append("failures: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    for failure in report.failures[: max(show_failures, 0)]:
        got = (
            "no call"
            if failure.got is None
            else f"{failure.got['name']}({_short(failure.got['args'], 200)})"
        )
        lines += [
            "",
            f"[{failure.id}] {failure.question}",
            f"  expected: {_short(failure.expected, 200)}",
            f"  got:      {got}",
            f"  reason:   {failure.reason}",
        ]
    hidden = len(report.failures) - max(show_failures, 0)
    if hidden > 0 and show_failures > 0:
        lines.append(f"\n... and {hidden} more failures")
    return "\n".join(lines)
