"""Tools described by a JSON-schema function spec rather than Python code.

Benchmarks such as the Berkeley Function-Calling Leaderboard (BFCL, Gorilla) and
services that execute tools elsewhere describe a tool as ``{"name", "description",
"parameters"}``. BFCL's parameters use a Python-flavoured dialect of JSON Schema
(``"type": "dict"``, ``"float"``, ``"tuple"``, ``"any"``) that neither ``jsonschema`` nor
model providers accept, so :func:`normalize_schema` rewrites it into standard JSON
Schema. LangChain has no converter for that dialect (``convert_to_openai_tool`` passes the
types through unchanged), which is why it is written here.

:func:`tool_from_schema` then builds an ordinary LangChain ``StructuredTool`` whose
``args_schema`` is the normalized schema dict, so the tool binds to a chat model with
``bind_tools`` like any other. Provider APIs only accept names matching
``^[a-zA-Z0-9_-]{1,64}$``, so a name such as ``math.factorial`` becomes
``math_factorial``; the original stays in ``tool.metadata["original_name"]`` so an
evaluation can map calls back.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

#: BFCL type names and their JSON Schema equivalents; ``None`` means "no constraint".
_DIALECT_TYPES: dict[str, str | None] = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "any": None,
}
_UNSAFE_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME_LENGTH = 64


def normalize_schema(params: dict[str, Any]) -> dict[str, Any]:
    """Convert a BFCL/Gorilla parameter schema into standard JSON Schema.

    ``dict`` becomes ``object``, ``float`` becomes ``number``, ``tuple`` becomes
    ``array`` and ``any`` drops the type constraint, recursively through ``properties``,
    ``items`` (a schema or a list of them), ``additionalProperties``, ``anyOf``,
    ``oneOf`` and ``allOf``. Standard JSON Schema passes through unchanged. The input is
    not modified.
    """
    schema = copy.deepcopy(params)
    _normalize_in_place(schema)
    return schema


def _normalize_in_place(schema: Any) -> None:
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _DIALECT_TYPES:
        if (mapped := _DIALECT_TYPES[kind]) is None:
            del schema["type"]
        else:
            schema["type"] = mapped
    elif isinstance(kind, list):
        mapped_list = [_DIALECT_TYPES.get(k, k) for k in kind]
        if None in mapped_list:
            del schema["type"]
        else:
            schema["type"] = mapped_list
    for sub in (schema.get("properties") or {}).values():
        _normalize_in_place(sub)
    items = schema.get("items")
    for sub in items if isinstance(items, list) else [items]:
        _normalize_in_place(sub)
    _normalize_in_place(schema.get("additionalProperties"))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            _normalize_in_place(sub)


def safe_tool_name(name: str) -> str:
    """``name`` made acceptable to provider APIs: other characters become ``_``, and it is
    cut to 64 characters.

    Raises:
        ValueError: the name is empty.
    """
    if not name:
        raise ValueError("a tool needs a non-empty name")
    return _UNSAFE_NAME_CHARS.sub("_", name)[:MAX_NAME_LENGTH]


def tool_from_schema(
    spec: dict[str, Any], handler: Callable[..., Any] | None = None
) -> BaseTool:
    """Build a LangChain tool from a JSON-schema function spec.

    Args:
        spec: ``{"name", "description", "parameters"}`` (BFCL dialect or standard JSON
            Schema), or the OpenAI form ``{"type": "function", "function": {...}}``.
        handler: called with the arguments as keyword arguments; a coroutine function
            makes the tool async-only. A ``config: RunnableConfig`` parameter receives the
            run's config (and so the idempotency key). Without a handler the tool is
            schema-only (for evaluations, or tools executed elsewhere) and calling it
            raises a ``ToolException`` saying it has no implementation.

    Raises:
        ValueError: the spec has no name.
    """
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        spec = spec["function"]
    original = str(spec.get("name") or "")
    name = safe_tool_name(original)
    schema = normalize_schema(spec.get("parameters") or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})  # LangChain's BaseTool.args reads it

    def no_implementation(**_: Any) -> Any:
        raise ToolException(
            f"tool {original!r} has no implementation here (schema-only tool)"
        )

    func = handler or no_implementation
    is_async = inspect.iscoroutinefunction(func)
    return StructuredTool(
        name=name,
        description=str(spec.get("description") or original),
        args_schema=schema,
        func=None if is_async else func,
        coroutine=func if is_async else None,
        metadata={"original_name": original},
    )
