"""The offline chat model: a deterministic, rules-based stand-in for an LLM.

``OfflineChatModel`` lets Bulwark run in development, CI and demos with no API key and no
network. It is **not** a language model: it follows a handful of rules (tool matching,
argument filling from the request, answering from tool results and from facts the user
stated) so that graphs built for real models exercise the same paths - tool calls,
tool results, memory, streaming, usage accounting - with reproducible output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.messages.tool import tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from bulwark.models import matching

MODEL_NAME = "bulwark-offline"
"""Value of ``_llm_type`` and of ``response_metadata["model_name"]``."""

_GREETING_WORDS = frozenset(
    "hi hello hey hiya howdy greetings yo hallo heya sup morning afternoon evening".split()
)
_GREETING_FILLER = frozenset(
    "good there all everyone bulwark how are you doing is it going whats what's up "
    "today friend folks team nice to meet".split()
)


@dataclass
class _Reply:
    """What the model decided to say: text, or tool calls (never both)."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


def _message_text(message: BaseMessage) -> str:
    text = str(message.text)
    if isinstance(message, AIMessage) and message.tool_calls:
        text += json.dumps(
            [{"name": c["name"], "args": c["args"]} for c in message.tool_calls],
            sort_keys=True,
            default=str,
        )
    return text


class OfflineChatModel(BaseChatModel):
    """Deterministic offline **stand-in** for an LLM - not a language model.

    Use it for development, CI and demos where no API key or network is available. It
    decides from the conversation, by fixed rules:

    1. If tools were already called for the latest user message, it writes a final answer
       from the ``ToolMessage`` results (and never calls tools again for that message).
    2. If the latest user message matches a bound tool, it returns ``tool_calls`` with
       arguments filled from the request (one call per clause for compound requests).
    3. Otherwise it answers directly: greetings, facts the user stated earlier or that
       are listed under ``Known facts about the user:`` in a system message, or an honest
       "I could not match this to a tool" reply listing the available tools.

    The same input always gives the same output. Bind tools with :meth:`bind_tools`, as
    with any LangChain chat model.
    """

    model_name: str = Field(default=MODEL_NAME, description="Reported in response metadata.")
    min_tool_score: float = Field(
        default=1.5,
        ge=0.0,
        description="Minimum match score for a tool to be called; lower means more eager.",
    )
    max_parallel_tool_calls: int = Field(
        default=4, ge=1, description="Most tool calls emitted for one compound request."
    )

    @property
    def _llm_type(self) -> str:
        return MODEL_NAME

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "min_tool_score": self.min_tool_score,
            "max_parallel_tool_calls": self.max_parallel_tool_calls,
        }

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI-style dicts).

        Args:
            tools: the tools the model may call.
            tool_choice: ``None``/``"auto"`` (call a tool when one matches), ``"none"``
                (never), ``"any"``/``"required"``/``True`` (always call the best tool),
                or a tool name / ``{"type": "function", "function": {"name": ...}}``
                (always call that tool).
            **kwargs: also bound, e.g. ``parallel_tool_calls=False``.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # ------------------------------------------------------------------ generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, stop, **kwargs)
        message = AIMessage(
            content=reply.text,
            tool_calls=reply.tool_calls,
            usage_metadata=self._usage(messages, reply),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages, stop, **kwargs)
        final: dict[str, Any] = {
            "usage_metadata": self._usage(messages, reply),
            "response_metadata": {"model_name": self.model_name},
            "chunk_position": "last",
        }
        chunks: list[AIMessageChunk] = []
        if reply.tool_calls:
            chunks.append(
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        tool_call_chunk(
                            name=c["name"],
                            args=json.dumps(c["args"]),
                            id=c["id"],
                            index=i,
                        )
                        for i, c in enumerate(reply.tool_calls)
                    ],
                    **final,
                )
            )
        else:
            pieces = re.findall(r"\S+\s*|\s+", reply.text) or [""]
            for i, piece in enumerate(pieces):
                extra = final if i == len(pieces) - 1 else {}
                chunks.append(AIMessageChunk(content=piece, **extra))
        for message in chunks:
            chunk = ChatGenerationChunk(message=message)
            if run_manager:
                run_manager.on_llm_new_token(message.text, chunk=chunk)
            yield chunk

    def _usage(self, messages: Sequence[BaseMessage], reply: _Reply) -> UsageMetadata:
        input_tokens = count_tokens_approximately(messages)
        output_tokens = count_tokens_approximately([AIMessage(reply.text, tool_calls=reply.tool_calls)])
        return UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )

    # -------------------------------------------------------------------- decision

    def _reply(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> _Reply:
        tools = [
            matching.ToolSpec.from_openai(
                t if isinstance(t, dict) and "function" in t else convert_to_openai_tool(t)
            )
            for t in kwargs.get("tools") or []
        ]
        reply = self._decide(
            list(messages),
            tools,
            tool_choice=kwargs.get("tool_choice"),
            parallel=kwargs.get("parallel_tool_calls", True) is not False,
        )
        if reply.text and stop:
            cut = min((i for s in stop if s and (i := reply.text.find(s)) >= 0), default=-1)
            if cut >= 0:
                reply.text = reply.text[:cut]
        return reply

    def _decide(
        self,
        messages: list[BaseMessage],
        tools: list[matching.ToolSpec],
        *,
        tool_choice: Any,
        parallel: bool,
    ) -> _Reply:
        last_human = max(
            (i for i, msg in enumerate(messages) if isinstance(msg, HumanMessage)), default=-1
        )
        after = messages[last_human + 1 :]
        results = [msg for msg in after if isinstance(msg, ToolMessage)]
        if results:
            return _Reply(text=_answer_from_results(after, results))

        request = messages[last_human].text.strip() if last_human >= 0 else ""
        earlier = _known_facts(messages, before=last_human)
        personal_question = matching.is_question(request) and matching.is_personal(request)

        forced = _forced_tool(tool_choice, tools)
        if not (tools and forced not in (None, "none")):
            if _is_greeting(request):
                return _Reply(text=_greeting(tools))
            if personal_question:
                answer = _answer_from_facts(request, earlier)
                if answer:
                    return _Reply(text=answer)

        if tools and forced != "none":
            planned = matching.plan_tool_calls(
                request,
                tools,
                min_score=self.min_tool_score,
                forced=forced,
                parallel=parallel,
                max_calls=self.max_parallel_tool_calls,
            )
            if planned:
                return _Reply(tool_calls=_make_tool_calls(messages, planned))

        stated = matching.extract_facts(request)
        if stated:
            return _Reply(text="Noted: " + "; ".join(f.sentence for f in stated) + ".")
        if personal_question:
            return _Reply(
                text="I don't know that yet: you haven't told me in this conversation. "
                + _stand_in_note(tools)
            )
        return _Reply(text=_fallback(request, earlier, tools))


# --------------------------------------------------------------------- helpers


def _forced_tool(tool_choice: Any, tools: Sequence[matching.ToolSpec]) -> str | None:
    """Normalise ``tool_choice`` to a tool name, ``"any"``, ``"none"`` or ``None``."""
    if tool_choice is None or tool_choice is False or tool_choice == "auto":
        return None
    if tool_choice is True or tool_choice in ("any", "required"):
        return "any"
    if tool_choice == "none":
        return "none"
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        return str(name) if name else "any"
    if isinstance(tool_choice, str) and any(t.name == tool_choice for t in tools):
        return tool_choice
    return None


def _make_tool_calls(
    messages: Sequence[BaseMessage], planned: Sequence[tuple[str, dict[str, Any]]]
) -> list[ToolCall]:
    """Tool calls with ids that are stable for a conversation and unique in the message."""
    digest = hashlib.sha256()
    for msg in messages:
        digest.update(msg.type.encode())
        digest.update(_message_text(msg).encode())
        digest.update(str(getattr(msg, "tool_call_id", "")).encode())
    base = digest.hexdigest()
    calls: list[ToolCall] = []
    seen: set[str] = set()
    for i, (name, args) in enumerate(planned):
        key = f"{base}|{i}|{name}|{json.dumps(args, sort_keys=True, default=str)}"
        call_id = "call_" + hashlib.sha256(key.encode()).hexdigest()[:12]
        while call_id in seen:
            call_id += str(i)
        seen.add(call_id)
        calls.append(tool_call(name=name, args=args, id=call_id))
    return calls


def _answer_from_results(after: Sequence[BaseMessage], results: Sequence[ToolMessage]) -> str:
    """Final answer that names each tool and gives its result (or its error)."""
    calls = {c["id"]: c for msg in after if isinstance(msg, AIMessage) for c in msg.tool_calls}
    lines = []
    for result in results:
        call = calls.get(result.tool_call_id)
        name = result.name or (call["name"] if call else "tool")
        content = result.text.strip()
        if result.status == "error":
            lines.append(f"The {name} tool failed: {content or 'no error message'}")
            continue
        if not content:
            lines.append(f"The {name} tool returned no output.")
            continue
        expression = _expression_arg(call["args"]) if call else None
        if expression and "\n" not in content and len(content) < 80:
            lines.append(f"The {name} tool says {expression} = {content}.")
        else:
            lines.append(f"The {name} tool returned: {content}")
    return "\n".join(lines)


def _expression_arg(args: dict[str, Any]) -> str | None:
    for key, value in args.items():
        if matching.param_kind(key, {"type": "string"}) == "expression" and isinstance(value, str):
            return value
    return None


def _known_facts(messages: Sequence[BaseMessage], *, before: int) -> list[matching.Fact]:
    """Facts from system-message memory blocks and from what the user said before message
    ``before`` (the current request), oldest first; later facts win."""
    facts: list[matching.Fact] = []
    for msg in messages:
        if isinstance(msg, SystemMessage):
            facts += matching.facts_from_system(msg.text)
    for msg in messages[: max(before, 0)]:
        if isinstance(msg, HumanMessage):
            facts += matching.extract_facts(msg.text)
    return matching.dedupe_facts(facts)


def _best_facts(
    question: str, facts: Sequence[matching.Fact], min_score: float
) -> list[matching.Fact]:
    scored = [(matching.score_fact(question, f), i, f) for i, f in enumerate(facts)]
    top = max((s for s, _, _ in scored), default=0.0)
    if top < min_score:
        return []
    return [f for s, _, f in scored if s == top][-3:]


def _answer_from_facts(question: str, facts: Sequence[matching.Fact]) -> str | None:
    best = _best_facts(question, facts, min_score=2.0)
    return _join_sentences([f.sentence for f in best]) + "." if best else None


def _join_sentences(sentences: Sequence[str]) -> str:
    text = "; ".join(sentences)
    return text[:1].upper() + text[1:]


def _is_greeting(text: str) -> bool:
    ws = matching.words(text.replace("'", ""))
    return (
        bool(ws)
        and len(ws) <= 8
        and any(w in _GREETING_WORDS for w in ws)
        and all(w in _GREETING_WORDS or w in _GREETING_FILLER for w in ws)
    )


def _tool_list(tools: Sequence[matching.ToolSpec]) -> str:
    return ", ".join(t.name for t in tools)


def _stand_in_note(tools: Sequence[matching.ToolSpec]) -> str:
    if tools:
        return f"I'm Bulwark's offline stand-in model; available tools: {_tool_list(tools)}."
    return "I'm Bulwark's offline stand-in model and have no tools bound."


def _greeting(tools: Sequence[matching.ToolSpec]) -> str:
    base = (
        "Hello! I'm Bulwark's offline stand-in model: deterministic rules, not a real "
        "language model."
    )
    if tools:
        return f"{base} I can call these tools for you: {_tool_list(tools)}."
    return f"{base} No tools are bound, but I can remember facts you tell me."


def _fallback(
    request: str, facts: Sequence[matching.Fact], tools: Sequence[matching.ToolSpec]
) -> str:
    text = "I'm Bulwark's offline stand-in model, so I follow simple rules"
    if tools:
        text += (
            f", and I couldn't match that request to a tool. Available tools: {_tool_list(tools)}."
        )
    else:
        text += " and have no tools bound, so I can't help with that request."
    related = _best_facts(request, facts, min_score=1.0)
    if related:
        text += f" Something related I know: {related[-1].sentence}."
    return text
