"""Output rails on a stream: an answer's tokens leave the server only once screened.

:class:`StreamScreen` holds back the last ``hold`` characters of the stream and releases
text only up to a whitespace boundary that no PII or secret span crosses, redacted; the
blocking checks (system-prompt leak, toxicity, denied topics) run on a window of what was
released plus what is held. A block stops the stream for good. Entities longer than
``hold`` that span whitespace are the only ones that could start leaking before they
are recognised; ``hold`` defaults well above the longest (an IBAN with spaces, 42).

:class:`GuardedChatModel` puts the screen between a chat model and LangGraph's
``messages`` stream: the inner model runs tagged ``nostream`` (LangGraph's documented
tag for keeping a model's tokens out of the stream), and the wrapper emits the screened
chunks instead. NeMo's own streaming rails only apply when NeMo drives the LLM, which is
why this module exists; it calls the same checks as the NeMo output rail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from contextvars import Context
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import set_config_context
from langchain_core.runnables.utils import coro_with_context
from langgraph.constants import TAG_NOSTREAM
from pydantic import ConfigDict

from bulwark.guardrails.checks import RailPolicy, blocking_findings, redact, redactions

WITHHELD = " [the rest of this answer was withheld by the output guardrail]"
_WINDOW = 400  # released characters kept for the blocking checks


class StreamScreen:
    """Screens one streamed answer: feed chunks in, get the releasable text out."""

    def __init__(self, policy: RailPolicy, *, hold: int = 80) -> None:
        self.policy = policy
        self.hold = hold
        self.blocked = False
        self._held = ""
        self._released = ""

    def feed(self, chunk: str) -> str:
        """Add a chunk; return the text that may be sent now (often empty)."""
        self._held += chunk
        return self._release(final=False)

    def close(self) -> str:
        """End of stream: return the rest, screened."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self.blocked:
            return ""
        cut = len(self._held) if final else self._boundary()
        if cut <= 0:  # nothing could go out yet: the checks wait for a new boundary
            return ""
        window = self._released[-_WINDOW:] + self._held
        if any(f.severity == "high" for f in blocking_findings(window, self.policy)):
            self.blocked, self._held = True, ""
            return WITHHELD
        spans = redactions(self._held, self.policy)
        for span in spans:  # never cut through an entity
            if span.start < cut < span.end:  # type: ignore[operator]
                cut = span.start  # type: ignore[assignment]
        if cut <= 0:
            return ""
        out = redact(self._held[:cut], [s for s in spans if s.end <= cut])  # type: ignore[operator]
        self._held = self._held[cut:]
        self._released = (self._released + out)[-_WINDOW:]
        return out

    def _boundary(self) -> int:
        """Last whitespace at least ``hold`` characters back (0: none past the start)."""
        limit = len(self._held) - self.hold
        if limit <= 0:
            return 0
        return max(self._held.rfind(" ", 0, limit + 1), self._held.rfind("\n", 0, limit + 1), 0)


class GuardedChatModel(BaseChatModel):
    """A chat model (or a model with tools bound) whose streamed text is screened.

    Without streaming it returns the inner model's reply untouched: the graph's output
    rail screens the whole answer afterwards.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: Runnable
    """The model to call, typically ``chat_model.bind_tools(tools)``."""
    policy: RailPolicy
    """The output rail's policy."""
    hold: int = 80
    """Characters held back from the stream (see :class:`StreamScreen`)."""

    @property
    def _llm_type(self) -> str:
        return "bulwark-guarded"

    @staticmethod
    def _inner(run_manager: Any) -> tuple[RunnableConfig, AbstractContextManager[Context]]:
        """The inner call's config, and the context to run it in, where that config is the
        ambient one: a bound model (``bind_tools``) merges its config with the ambient
        config, which is otherwise the calling node's, and the inner run would become this
        run's sibling, reported to two copies of the node's tracer."""
        config = GuardedChatModel._inner_config(run_manager)
        return config, set_config_context(config)

    @staticmethod
    def _inner_config(run_manager: Any) -> RunnableConfig:
        # The inner call is traced as a child of this one; LLM run managers have no
        # get_child(), so the child manager is built from the inheritable parts.
        if run_manager is None:
            return {"tags": [TAG_NOSTREAM]}
        manager_type = (
            AsyncCallbackManager if isinstance(run_manager, AsyncCallbackManagerForLLMRun) else CallbackManager
        )
        callbacks = manager_type(
            handlers=run_manager.inheritable_handlers,
            inheritable_handlers=run_manager.inheritable_handlers,
            parent_run_id=run_manager.run_id,
            tags=run_manager.inheritable_tags,
            inheritable_tags=run_manager.inheritable_tags,
            metadata=run_manager.inheritable_metadata,
            inheritable_metadata=run_manager.inheritable_metadata,
        )
        return {"callbacks": callbacks, "tags": [TAG_NOSTREAM]}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config, context = self._inner(run_manager)
        with context as ctx:
            reply = ctx.run(self.inner.invoke, messages, config, stop=stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config, context = self._inner(run_manager)
        with context as ctx:
            reply = await coro_with_context(self.inner.ainvoke(messages, config, stop=stop, **kwargs), ctx)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _screened(self, screen: StreamScreen, chunk: AIMessageChunk) -> ChatGenerationChunk:
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=screen.feed(chunk.text),
                tool_call_chunks=chunk.tool_call_chunks,
                usage_metadata=chunk.usage_metadata,
                response_metadata=chunk.response_metadata,
            )
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        screen = StreamScreen(self.policy, hold=self.hold)
        config, context = self._inner(run_manager)
        with context as ctx:
            chunks = ctx.run(self.inner.stream, messages, config, stop=stop, **kwargs)
            while (chunk := ctx.run(next, chunks, None)) is not None:
                yield self._screened(screen, chunk)
        yield ChatGenerationChunk(message=AIMessageChunk(content=screen.close()))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        screen = StreamScreen(self.policy, hold=self.hold)
        config, context = self._inner(run_manager)
        with context as ctx:
            chunks = ctx.run(self.inner.astream, messages, config, stop=stop, **kwargs)
            while (chunk := await coro_with_context(anext(chunks, None), ctx)) is not None:
                yield self._screened(screen, chunk)
        yield ChatGenerationChunk(message=AIMessageChunk(content=screen.close()))
