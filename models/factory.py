"""Build a LangChain chat model from a model spec (``offline`` or ``openai:<model>``)."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from bulwark.settings import ConfigError, Settings


def make_chat_model(spec: str, *, settings: Settings) -> BaseChatModel:
    """Return the chat model named by ``spec``.

    Args:
        spec: ``offline`` for the deterministic stand-in, or ``openai:<model>`` for
            OpenAI or any OpenAI-compatible server (``settings.openai_base_url``).
        settings: supplies the base URL, API key and timeout.

    Raises:
        ConfigError: the spec is unknown.
    """
    if spec == "offline":
        from bulwark.models.offline import OfflineChatModel

        return OfflineChatModel()
    provider, _, name = spec.partition(":")
    if provider == "openai" and name:
        from langchain_openai import ChatOpenAI

        key = settings.openai_api_key
        return ChatOpenAI(
            model=name,
            base_url=settings.openai_base_url,
            # A local OpenAI-compatible server often needs no key; the client insists on one.
            api_key=key.get_secret_value() if key else "not-needed",
            timeout=settings.model_timeout_s,
            max_retries=2,
            stream_usage=True,
        )
    raise ConfigError(f"unknown model spec {spec!r}: use 'offline' or 'openai:<model>'")
