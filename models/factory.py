"""Build a LangChain chat model from a catalogue entry (or a bare spec).

``offline`` is the deterministic stand-in; any other spec goes through LangChain's
``init_chat_model``, so every provider whose integration package is installed works
(``openai:``, ``anthropic:``, ``ollama:`` …), and OpenAI-compatible servers (vLLM,
llama.cpp) through ``base_url``.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from bulwark.models.catalogue import ModelEntry
from bulwark.settings import ConfigError, Settings


def make_chat_model(entry: ModelEntry | str, *, settings: Settings) -> BaseChatModel:
    """Return the chat model ``entry`` describes (a spec string: an entry of that name).

    OpenAI models default to ``settings.openai_base_url`` and ``openai_api_key``; every model
    to ``settings.model_timeout_s``.

    Raises:
        ConfigError: the provider's package is missing, or it refuses the entry's settings.
    """
    if isinstance(entry, str):
        entry = ModelEntry(name=entry, spec=entry, max_retries=2)
    if entry.spec == "offline":
        from bulwark.models.offline import OfflineChatModel

        return OfflineChatModel()
    from langchain.chat_models import init_chat_model

    options: dict = {"timeout": entry.timeout_s or settings.model_timeout_s, "max_retries": entry.max_retries}
    key = entry.api_key
    if entry.provider == "openai":
        key = key or settings.openai_api_key
        options["base_url"] = entry.base_url or settings.openai_base_url
        # A local OpenAI-compatible server often needs no key; the client insists on one.
        options["api_key"] = key.get_secret_value() if key else "not-needed"
        options["stream_usage"] = True
    else:
        if entry.base_url:
            options["base_url"] = entry.base_url
        if key:
            options["api_key"] = key.get_secret_value()
    try:
        return init_chat_model(entry.spec, **options, **entry.params)
    except ImportError as exc:
        raise ConfigError(f"model {entry.name!r} ({entry.spec}): {str(exc).splitlines()[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {entry.name!r} ({entry.spec}): {str(exc).splitlines()[0][:200]}") from None
