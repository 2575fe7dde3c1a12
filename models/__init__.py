"""Chat models: the offline stand-in, OpenAI-compatible models, and the factory that picks one."""

from bulwark.models.factory import make_chat_model

__all__ = ["make_chat_model"]
