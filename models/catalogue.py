"""The model catalogue: which models a deployment may call, what each costs, how good it is.

``BULWARK_MODELS`` names a YAML or JSON file::

    models:
      - name: big
        spec: openai:gpt-4o                 # any init_chat_model spec, or `offline`
        base_url: http://127.0.0.1:8000/v1  # optional: an OpenAI-compatible server
        cost_per_1k_input: 0.0025           # USD
        cost_per_1k_output: 0.01
        quality: 0.95                       # 0..1, compared with the router's floors
        context_window: 128000
        api_key_env: OPENAI_API_KEY         # optional: the variable holding the key
        timeout_s: 30                       # optional: default BULWARK_MODEL_TIMEOUT_S
      - name: small
        spec: openai:gpt-4o-mini
        cost_per_1k_input: 0.00015
        cost_per_1k_output: 0.0006
        quality: 0.85
    fallback_chain: [big, small]            # optional: default, by quality, best first
    router:                                 # optional: the defaults below
      rules:                                # first rule the complexity is under wins
        - {max_complexity: 0.3, min_quality: 0.0}
        - {max_complexity: 0.7, min_quality: 0.8}
        - {max_complexity: 1.0, min_quality: 0.9}
      output_tokens: {min: 150, max: 1000}  # expected answer length, by complexity

Without the file the catalogue is ``BULWARK_MODEL`` (and ``BULWARK_FAST_MODEL``, for simple
requests), unpriced: zero configuration keeps working. The file is read and checked once,
when the settings are built; every mistake is one line naming the entry and field
(``BULWARK_MODELS models[1].quality: must be at most 1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$")
SPEC = re.compile(r"^(offline|[a-z][a-z0-9_]*:[A-Za-z0-9._:/@+-]+)$")
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CatalogueError(ValueError):
    """The catalogue file is missing, unreadable or invalid; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEntry(_Strict):
    """One model the router may pick."""

    name: str = Field(description="What routes, budgets, audit records and metrics call it.")
    spec: str = Field(description="`offline`, or `provider:model` as init_chat_model takes it (openai:gpt-4o, anthropic:…, ollama:…).")
    cost_per_1k_input: float = Field(default=0.0, ge=0, description="USD per 1,000 input tokens.")
    cost_per_1k_output: float = Field(default=0.0, ge=0, description="USD per 1,000 output tokens.")
    quality: float = Field(default=0.5, ge=0, le=1, description="How capable it is, 0 to 1.")
    context_window: int = Field(default=128_000, gt=0, description="Most tokens of prompt and answer together.")
    base_url: str | None = Field(default=None, description="The provider's endpoint (an OpenAI-compatible server: vLLM, llama.cpp).")
    api_key_env: str | None = Field(default=None, description="Environment variable that holds its API key.")
    timeout_s: float | None = Field(default=None, gt=0, description="Per call; default BULWARK_MODEL_TIMEOUT_S.")
    max_retries: int = Field(default=0, ge=0, le=10, description="The client's own retries before the fallback chain moves on.")
    params: dict[str, Any] = Field(default_factory=dict, description="More keyword arguments for the chat model (temperature…).")
    api_key: SecretStr | None = Field(default=None, exclude=True, description="Resolved from api_key_env; never written in the file.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"invalid name {value[:40]!r}: use 1-128 letters, digits and . _ : / @ + -")
        return value

    @field_validator("spec")
    @classmethod
    def _spec(cls, value: str) -> str:
        if not SPEC.match(value):
            raise ValueError(f"unknown model spec {value[:60]!r}: use 'offline' or 'provider:model' (openai:gpt-4o-mini)")
        provider = value.partition(":")[0]
        if provider != "offline" and provider not in _providers():
            raise ValueError(f"unknown provider {provider!r} in {value[:60]!r}: use one of {', '.join(sorted(_providers()))}")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR.match(value):
            raise ValueError(f"invalid variable name {value[:40]!r}")
        return value

    @property
    def provider(self) -> str:
        """``openai``, ``anthropic``… (``offline`` for the stand-in)."""
        return self.spec.partition(":")[0]

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """What a call with these token counts costs."""
        return (input_tokens * self.cost_per_1k_input + output_tokens * self.cost_per_1k_output) / 1000


class Rule(_Strict):
    """Requests of complexity up to ``max_complexity`` need a model of ``min_quality``."""

    max_complexity: float = Field(ge=0, le=1)
    min_quality: float = Field(ge=0, le=1)


class OutputTokens(_Strict):
    """The answer length the router expects: ``min`` for the simplest request, ``max`` for the hardest."""

    min: int = Field(default=150, ge=1)
    max: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> OutputTokens:
        if self.max < self.min:
            raise ValueError("max must be at least min")
        return self

    def at(self, complexity: float) -> int:
        """Expected output tokens of a request of ``complexity``."""
        return round(self.min + (self.max - self.min) * complexity)


DEFAULT_RULES = (
    Rule(max_complexity=0.3, min_quality=0.0),
    Rule(max_complexity=0.7, min_quality=0.8),
    Rule(max_complexity=1.0, min_quality=0.9),
)


class RouterConfig(_Strict):
    """How the router maps a request's complexity to the quality its model needs."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    output_tokens: OutputTokens = OutputTokens()

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: tuple[Rule, ...]) -> tuple[Rule, ...]:
        if not value:
            raise ValueError("list at least one rule")
        bounds = [rule.max_complexity for rule in value]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("rules must go by increasing max_complexity")
        if bounds[-1] < 1:
            raise ValueError("the last rule must have max_complexity 1.0, so every request has one")
        return value

    def min_quality(self, complexity: float) -> float:
        """The quality floor for a request of ``complexity``."""
        return next(rule.min_quality for rule in self.rules if complexity <= rule.max_complexity)


class Catalogue(_Strict):
    """The deployment's models, its fallback chain and its routing rules."""

    models: tuple[ModelEntry, ...]
    fallback_chain: tuple[str, ...] = ()
    router: RouterConfig = RouterConfig()

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[ModelEntry, ...]) -> tuple[ModelEntry, ...]:
        if not value:
            raise ValueError("list at least one model")
        names = [entry.name for entry in value]
        if duplicate := next((name for name in names if names.count(name) > 1), None):
            raise ValueError(f"two models are named {duplicate!r}")
        return value

    @model_validator(mode="after")
    def _chain(self) -> Catalogue:
        known = {entry.name for entry in self.models}
        if unknown := [name for name in self.fallback_chain if name not in known]:
            raise ValueError(f"fallback_chain names {unknown[0][:40]!r}, which is not in models")
        if len(set(self.fallback_chain)) != len(self.fallback_chain):
            raise ValueError("fallback_chain names a model twice")
        return self

    @property
    def chain(self) -> tuple[ModelEntry, ...]:
        """The models in fallback order: ``fallback_chain``, else all by quality, best first."""
        if self.fallback_chain:
            by_name = {entry.name: entry for entry in self.models}
            return tuple(by_name[name] for name in self.fallback_chain)
        return tuple(sorted(self.models, key=lambda entry: -entry.quality))

    def entry(self, name: str) -> ModelEntry:
        """The model called ``name``.

        Raises:
            KeyError: no model has that name.
        """
        return next(entry for entry in self.models if entry.name == name)


def default_catalogue(model: str, fast_model: str | None = None) -> Catalogue:
    """The catalogue without a file: ``model``, and ``fast_model`` for simple requests, unpriced."""
    entries = [ModelEntry(name=model, spec=model, quality=0.9)]
    if fast_model and fast_model != model:
        entries.append(ModelEntry(name=fast_model, spec=fast_model, quality=0.6))
    return Catalogue(models=tuple(entries))


def load_catalogue(path: Path, *, environ: Mapping[str, str]) -> Catalogue:
    """Read and check the catalogue at ``path`` (``.json``, else YAML); API keys come from
    ``environ`` by each entry's ``api_key_env``.

    Raises:
        CatalogueError: one line saying what is wrong and where.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path.name} is not valid {kind}: {_first_line(exc)}") from None
    if not isinstance(data, dict):
        raise CatalogueError(f"{path.name} must hold a mapping with a `models` list")
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _location(err["loc"])
        raise CatalogueError(f"{where}: {err['msg'].removeprefix('Value error, ')}" if where else err["msg"]) from None
    return _with_keys(catalogue, environ)


def _with_keys(catalogue: Catalogue, environ: Mapping[str, str]) -> Catalogue:
    entries = []
    for index, entry in enumerate(catalogue.models):
        if entry.api_key_env:
            key = environ.get(entry.api_key_env)
            if not key:
                raise CatalogueError(f"models[{index}].api_key_env: {entry.api_key_env} is not set")
            entry = entry.model_copy(update={"api_key": SecretStr(key)})
        entries.append(entry)
    return catalogue.model_copy(update={"models": tuple(entries)})


def _location(loc: Sequence[str | int]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        else:
            parts.append(part)
    return ".".join(parts)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _providers() -> frozenset[str]:
    from langchain.chat_models.base import _BUILTIN_PROVIDERS  # noqa: PLC2701 - the list init_chat_model accepts

    return frozenset(_BUILTIN_PROVIDERS)
