"""Chat models that stand in for an LLM where a test must fix the model's output.

``ScriptedModel`` replies from a list, in order (an empty list fails if it is called);
``RuleModel`` computes each reply from the conversation, so it answers the same after a
crash or a retry as it would have the first time; ``CharStreamModel`` streams its replies
one character at a time.
"""

from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


class ScriptedModel(FakeMessagesListChatModel):
    """Replies with ``responses`` in order; binding tools changes nothing."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedModel":
        return self


class RuleModel(BaseChatModel):
    """Replies with ``reply(messages)``; binding tools changes nothing."""

    reply: Callable[[list[BaseMessage]], AIMessage]

    @property
    def _llm_type(self) -> str:
        return "rule"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "RuleModel":
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])


class CharStreamModel(BaseChatModel):
    """Replies with ``replies`` in order, streamed one character per chunk."""

    replies: list[str]

    @property
    def _llm_type(self) -> str:
        return "char-stream"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "CharStreamModel":
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.replies.pop(0)))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for char in self.replies.pop(0):
            yield ChatGenerationChunk(message=AIMessageChunk(content=char))
