"""Chat models that stand in for an LLM where a test must fix the model's output.

``ScriptedModel`` replies from a list, in order (an empty list fails if it is called);
``RuleModel`` computes each reply from the conversation, so it answers the same after a
crash or a retry as it would have the first time.
"""

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


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
