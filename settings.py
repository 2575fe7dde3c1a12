"""Bulwark's configuration: one typed settings object, built once and passed in.

Values come from the environment (prefix ``BULWARK_``) and from a ``.env`` file in the
working directory; no other module reads ``os.environ``. Every field is validated when the
object is built, so a bad value fails at start-up with a message naming the variable.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDINGS_SPEC = re.compile(r"^(hash(:[1-9][0-9]{0,4})?|openai:[A-Za-z0-9._:/-]+|minilm)$")
WEBHOOK_SECRET_MIN_BYTES = 32
TIER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Rate-limit tier names (API-key records, JWT claims, ``rate_limit_tiers``)."""
RATE_LIMIT_TIER_FIELDS = (
    "requests_per_minute", "tenant_requests_per_minute", "runs_per_minute", "concurrent_runs", "tokens_per_minute"
)
"""What a tier may override: ``rate_limit_<field>`` (:class:`bulwark.server.limits.Tier`)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""What ``BULWARK_LOG_LEVEL`` accepts (any case)."""


if TYPE_CHECKING:
    from bulwark.models.catalogue import Catalogue, ModelEntry


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message says how to fix it."""


def _audit() -> Any:
    """``bulwark.persistence.audit``, imported when first needed (it imports redis): its
    retention defaults and checks are the settings' own."""
    from bulwark.persistence import audit

    return audit


class Settings(BaseSettings):
    """Everything configurable about a Bulwark deployment."""

    model_config = SettingsConfigDict(
        env_prefix="BULWARK_", env_file=".env", extra="ignore", frozen=True
    )
    _models: tuple[tuple[Any, ...], Catalogue] = PrivateAttr()

    model: str = Field(
        default="offline",
        description="Chat model without a catalogue: `offline` (deterministic stand-in) or "
        "`provider:model` (openai:gpt-4o-mini, any provider init_chat_model knows).",
    )
    fast_model: str | None = Field(
        default=None,
        description="Optional cheaper model the router picks for simple requests (without a catalogue).",
    )
    models: Path | None = Field(
        default=None,
        description="Model catalogue, a YAML or JSON file: models with prices, quality and "
        "provider settings, the fallback chain and the routing rules (see README, Cost control); "
        "unset: `model` and `fast_model`, unpriced.",
    )
    budgets: dict[str, dict[str, float | None]] = Field(
        default_factory=dict,
        description='Model spend limits per tenant in USD, as JSON: {"*": {"daily_usd": 5, '
        '"monthly_usd": 100}, "acme": {"daily_usd": 50}}; "*" is the default, a tenant\'s entry '
        "overrides it field by field (null: no cap); unset: no limit.",
    )
    budget_exhausted: Literal["downgrade", "refuse"] = Field(
        default="downgrade",
        description="When a tenant's budget is spent: answer with the cheapest model (`downgrade`) "
        "or refuse the turn with a message saying when the budget renews (`refuse`).",
    )
    cache: Literal["off", "exact", "semantic"] = Field(
        default="off",
        description="Answer cache: `exact` serves a repeated request (same tenant, model, prompt "
        "context) from an in-process LRU and, when the checkpointer is on Redis, from Redis; "
        "`semantic` also serves similar requests through the memory store; `off`: none.",
    )
    cache_ttl_s: float = Field(default=3600.0, gt=0, description="Lifetime of a cached answer, seconds.")
    cache_l1_size: int = Field(default=10_000, ge=1, description="Answers kept in each process's LRU.")
    cache_similarity: float = Field(
        default=0.95, gt=0, le=1,
        description="Least cosine similarity of a semantic hit (the false-hit guard applies too).",
    )
    model_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive failures that open a model's circuit breaker."
    )
    model_breaker_recovery_s: float = Field(
        default=30.0, gt=0, description="Seconds an open model breaker waits before a trial call."
    )
    openai_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama...).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="API key for `openai:` models."
    )
    model_timeout_s: float = Field(default=60.0, gt=0, description="Per model call.")
    data_dir: Path = Field(
        default=Path(".bulwark"),
        description="Where embedded state lives: checkpoints, memories, audit log.",
    )
    checkpointer_url: str | None = Field(
        default=None,
        description="Checkpoint store: `sqlite:///path[?ttl=S]`, `redis[s]://host:port/db[?ttl=S]` "
        "or `memory://`; default `sqlite:///<data_dir>/checkpoints.db`. `ttl` expires idle threads.",
    )
    checkpoint_keep: int | None = Field(
        default=None,
        ge=1,
        description="Keep only the latest N checkpoints of each thread (pruned as each run "
        "starts; the conversation is kept, older history for time travel is not). Unset: keep all.",
    )
    audit_retention_days: dict[str, int | None] = Field(
        default_factory=lambda: dict(_audit().DEFAULT_RETENTION_DAYS),
        description='Days `bulwark audit prune` keeps a record of each retention policy, as JSON: '
        '{"SHORT_TERM": 30, "LONG_TERM": 2555, "PERMANENT": null} (null: never pruned).',
    )
    audit_retention: str = Field(
        default_factory=lambda: _audit().DEFAULT_RETENTION,
        description="Retention policy of new audit records, a key of `audit_retention_days`.",
    )
    max_input_chars: int = Field(default=8000, gt=0, description="Longest accepted request.")
    history_tokens: int = Field(
        default=4000, gt=0, description="Token budget for the conversation sent to the model."
    )
    approval_tools: tuple[str, ...] = Field(
        default=("send_email",),
        description="Tools that pause the run for human approval before they run.",
    )
    tool_timeout_s: float = Field(default=30.0, gt=0, description="Default per-call tool timeout.")
    tool_retries: int = Field(
        default=2, ge=0, le=10, description="Default retries of a tool call on transient errors."
    )
    tool_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open a tool's circuit breaker."
    )
    tool_breaker_recovery_s: float = Field(
        default=30.0, gt=0, description="Seconds an open breaker waits before a trial call."
    )
    tool_max_concurrency: int = Field(
        default=8, ge=1, description="Default limit of concurrent calls per tool."
    )
    tool_policies: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-tool overrides of the policy, as JSON: "
        '{"http_fetch": {"timeout_s": 5, "retries": 0}}.',
    )
    http_allowed_domains: tuple[str, ...] = Field(
        default=(),
        description="Domains `http_fetch` may reach (a domain allows its subdomains).",
    )
    http_max_bytes: int = Field(default=1_000_000, gt=0, description="`http_fetch` size cap.")
    http_timeout_s: float = Field(default=10.0, gt=0, description="`http_fetch` time cap.")
    guardrails_engine: Literal["nemo", "direct"] = Field(
        default="direct",
        description="`direct` calls the detectors without the Colang runtime; `nemo` runs the "
        "same checks as NeMo Guardrails rails, plus any rails its config adds (about 5 ms more "
        "a check, see bench/guardrails.py).",
    )
    guardrails_fail_closed: bool = Field(
        default=True,
        description="When a rail errors: refuse (closed) or let the text through flagged (open).",
    )
    guardrails_judge: str = Field(
        default="auto",
        min_length=1,
        description="The LLM judge for texts the fast detectors are unsure about: `auto` (the "
        "catalogue's cheapest real model; none with only `offline`), `off`, or a catalogue model name.",
    )
    pii_entities: tuple[str, ...] = Field(
        default=("EMAIL", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
                 "PERSON", "STREET_ADDRESS"),
        description="PII redacted from requests, tool results and answers (empty: none).",
    )
    denied_topics: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description='Topics the agent refuses, as JSON: {"competitors": ["acme", "globex"]}.',
    )
    memory_url: str | None = Field(
        default=None,
        description="Memory store (Qdrant): a directory for the embedded engine, `http(s)://host:port` "
        "for a Qdrant server, or `memory://`; default `<data_dir>/memory`.",
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="API key for a Qdrant server.")
    embeddings: str = Field(
        default="hash",
        description="Embedder: `hash[:DIMS]` (offline, deterministic), `openai:<model>` or "
        "`minilm` (extra `bulwark[minilm]`).",
    )
    memory_tokens: int = Field(
        default=600, gt=0, description="Token budget for recalled memories in the prompt."
    )
    memory_importance: float = Field(
        default=0.5, ge=0, le=1, description="Importance a fact needs to be kept long-term."
    )
    memory_ttl_days: float | None = Field(
        default=None, gt=0, description="Forget memories not read for this many days (none: keep)."
    )
    auth: Literal["none", "keys", "jwt"] = Field(
        default="none",
        description="How server clients authenticate: `none` (loopback only, one local user), "
        "`keys` (API keys from `bulwark keys create`) or `jwt` (bearer tokens).",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="Where API-key hashes are kept; default `<data_dir>/api_keys.json`.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret that signs bearer tokens (`BULWARK_AUTH=jwt`)."
    )
    jwt_jwks: str | None = Field(
        default=None,
        description="JWKS file path or http(s) URL with the RS256/ES256 keys that sign tokens.",
    )
    jwt_audience: str | None = Field(default=None, description="Required `aud` claim.")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` claim.")
    jwt_tenant_claim: str = Field(default="tenant_id", description="Claim naming the tenant.")
    jwt_user_claim: str = Field(default="sub", description="Claim naming the user.")
    jwt_scopes_claim: str = Field(
        default="scope", description="Claim with the scopes (space-separated string or list)."
    )
    client_roles: Literal["refuse", "screen"] = Field(
        default="refuse",
        description="Client-sent `system` and `assistant` messages: `refuse` (422) or `screen` "
        "them with the context rail and keep them (`tool` messages are always refused).",
    )
    max_input_messages: int = Field(
        default=32, ge=1, le=1000, description="Most messages accepted in one input."
    )
    screen_window_turns: int = Field(
        default=4, ge=1, le=50,
        description="Recent user turns the input rail reads together (split injections).",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Encrypts checkpoints at rest (SQLite and Redis) with AES-256-GCM: "
        "32 bytes, base64 or hex.",
    )
    vault: bool = Field(
        default=True,
        description="PII vault: PII in requests and tool results becomes numbered placeholders "
        "(`<EMAIL_1>`) whose real values are kept encrypted per tenant and thread, restored for "
        "the tools that may use them, for approvers and in the owner's answers; off: one-way "
        "redaction (`<EMAIL>`).",
    )
    vault_ttl_s: int = Field(
        default=30 * 86400, ge=60,
        description="Seconds a thread's vault values are kept after the thread last added one.",
    )
    vault_key: SecretStr | None = Field(
        default=None,
        description="Key of the PII vault (32 bytes, base64 or hex; one key per tenant is derived "
        "from it); default `BULWARK_ENCRYPTION_KEY`, else a key file `<data_dir>/vault.key` "
        "(mode 0600) created on first use.",
    )
    host: str = Field(default="127.0.0.1", description="`bulwark serve` bind address.")
    port: int = Field(default=8024, ge=1, le=65535, description="`bulwark serve` port.")
    server_jobs: int = Field(
        default=32, ge=1, le=1024, description="Runs `bulwark serve` executes at once."
    )
    log_level: str | None = Field(
        default=None,
        description="Least severe log level shown: DEBUG, INFO, WARNING, ERROR or CRITICAL; "
        "default INFO for `bulwark serve` and the server, WARNING for the other commands.",
    )
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        description="Log lines as `json` (one object a line) or `console` (readable); "
        "default console when the log stream is a terminal, json otherwise.",
    )
    rate_limit_requests_per_minute: int | None = Field(
        default=600, ge=0, description="Requests a minute per credential (bursts of as many); 0: off."
    )
    rate_limit_tenant_requests_per_minute: int | None = Field(
        default=6000, ge=0, description="Requests a minute per tenant, all its credentials together; 0: off."
    )
    rate_limit_runs_per_minute: int | None = Field(
        default=120, ge=0, description="New runs (and crons) a minute per credential; 0: off."
    )
    rate_limit_concurrent_runs: int | None = Field(
        default=32, ge=0,
        description="Runs in flight at once per tenant: a run holds a slot from its creation until "
        "it ends, or at most `rate_limit_run_lease_s`; 0: off.",
    )
    rate_limit_run_lease_s: float = Field(
        default=300.0, gt=0,
        description="Longest a run holds its concurrent-run slot: runs that wait for approval, "
        "fail or crash keep it this long; set it above your longest run.",
    )
    rate_limit_tokens_per_minute: int | None = Field(
        default=None, ge=0,
        description="Model tokens (input + output) a minute per tenant; a new run needs a "
        "positive balance, model calls in flight are never stopped; unset or 0: off.",
    )
    rate_limit_tiers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named tiers of limits, as JSON: "
        '{"free": {"requests_per_minute": 60, "concurrent_runs": 2}}; each overrides the flat '
        "`rate_limit_*` values (tier `default`). A credential's tier comes from its API key "
        "(`bulwark keys create --tier`) or its JWT (`jwt_tier_claim`).",
    )
    jwt_tier_claim: str = Field(
        default="tier", description="JWT claim naming the credential's rate-limit tier (absent: default)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs run-completion webhooks (HMAC-SHA256), at least 32 bytes; "
        "without it a run asking for a webhook is refused (422).",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback and private-network addresses (local "
        "development, receivers inside the cluster); link-local (the cloud metadata "
        "service), multicast and unspecified addresses stay refused.",
    )
    webhook_attempts: int = Field(
        default=5, ge=1, le=10, description="Deliveries tried per webhook (exponential backoff)."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Per webhook attempt.")
    trace_sample_rate: float | None = Field(
        default=None, ge=0, le=1,
        description="Share of traces sent to LangSmith when tracing is on (LANGSMITH_TRACING), "
        "0 to 1; unset: LANGSMITH_TRACING_SAMPLING_RATE, or all.",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token `GET /metrics` wants; unset: no credential (keep it off public ingress)."
    )
    @field_validator("model", "fast_model")
    @classmethod
    def _model_spec(cls, value: str | None) -> str | None:
        if value is not None:
            from bulwark.models.catalogue import ModelEntry

            try:
                ModelEntry(name="model", spec=value)
            except ValidationError as exc:
                raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in LOG_LEVELS:
            raise ValueError(f"unknown log level {value[:40]!r}: use {', '.join(LOG_LEVELS)}")
        return value.upper() if value is not None else None

    @field_validator("pii_entities")
    @classmethod
    def _pii_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from bulwark.guardrails.detectors.pii import ENTITIES

        unknown = sorted(set(value) - set(ENTITIES))
        if unknown:
            raise ValueError(f"unknown PII entities {unknown}: choose from {list(ENTITIES)}")
        return value

    @field_validator("denied_topics")
    @classmethod
    def _denied_topics(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        empty = sorted(topic for topic, phrases in value.items() if not any(p.strip() for p in phrases))
        if empty:
            raise ValueError(f"denied topics {empty} list no phrases to match")
        return value

    @field_validator("rate_limit_tiers")
    @classmethod
    def _rate_limit_tiers(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, limits in value.items():
            if not TIER_PATTERN.fullmatch(name):
                raise ValueError(f"invalid tier name {name[:40]!r}: use 1-64 letters, digits, '_' or '-'")
            if unknown := sorted(set(limits) - set(RATE_LIMIT_TIER_FIELDS)):
                raise ValueError(
                    f"unknown field {unknown[0][:40]!r} in tier {name!r}: use {', '.join(RATE_LIMIT_TIER_FIELDS)}"
                )
            for field, limit in limits.items():
                if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
                    raise ValueError(
                        f"tier {name!r}: {field} must be a whole number >= 0 (0 or null: off), got {limit!r}"
                    )
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
        from bulwark.persistence.usage import check_budgets

        check_budgets(value)
        return value

    @field_validator("audit_retention_days")
    @classmethod
    def _audit_retention_days(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        _audit().check_retention(value)
        return value

    @field_validator("audit_retention")
    @classmethod
    def _audit_retention(cls, value: str, info: ValidationInfo) -> str:
        if "audit_retention_days" in info.data:  # else its own error is reported
            _audit().check_retention(info.data["audit_retention_days"], value)
        return value

    @field_validator("checkpointer_url")
    @classmethod
    def _checkpointer_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("sqlite:///", "memory://", "redis://", "rediss://")
        ):
            shown = re.sub(r"//[^/?#]*@", "//***@", value)  # never echo a password
            raise ValueError(
                f"unsupported checkpointer URL {shown!r}: use sqlite:///path/to/file.db[?ttl=SECONDS], "
                "redis[s]://[:password@]host[:port][/db][?ttl=SECONDS] or memory://"
            )
        return value

    @field_validator("memory_url")
    @classmethod
    def _memory_url(cls, value: str | None) -> str | None:
        if value is not None and "://" in value and not value.startswith(
            ("http://", "https://", "memory://")
        ):
            shown = re.sub(r"//[^/?#]*@", "//***@", value)
            raise ValueError(
                f"unsupported memory URL {shown!r}: use a directory, http(s)://host:port or memory://"
            )
        return value

    @field_validator("embeddings")
    @classmethod
    def _embeddings(cls, value: str) -> str:
        if not EMBEDDINGS_SPEC.match(value):
            raise ValueError(
                f"unknown embeddings {value!r}: use 'hash', 'hash:<dims>', 'openai:<model>' or 'minilm'"
            )
        return value

    @field_validator("encryption_key", "vault_key")
    @classmethod
    def _encryption_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from bulwark.persistence.encryption import parse_key

            parse_key(value.get_secret_value())  # its error never contains the key
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < WEBHOOK_SECRET_MIN_BYTES:
            raise ValueError(
                f"the webhook secret must be at least {WEBHOOK_SECRET_MIN_BYTES} bytes "
                "(e.g. openssl rand -base64 48)"
            )
        return value

    @model_validator(mode="after")
    def _jwt_keys(self) -> Settings:
        if self.auth == "jwt" and (self.jwt_secret is None) == (self.jwt_jwks is None):
            raise ValueError(
                "BULWARK_AUTH=jwt needs one of BULWARK_JWT_SECRET (HS256) and BULWARK_JWT_JWKS (RS256/ES256)"
            )
        return self

    @model_validator(mode="after")
    def _catalogue(self) -> Settings:
        from bulwark.models.catalogue import CatalogueError

        try:
            self._models = (self._catalogue_source(), self._load_catalogue())
        except CatalogueError as exc:
            raise ValueError(f"BULWARK_MODELS {exc}") from None
        names = {entry.name for entry in self._models[1].models}
        if self.guardrails_judge not in {"auto", "off", *names}:
            raise ValueError(
                f"BULWARK_GUARDRAILS_JUDGE={self.guardrails_judge[:40]!r} is not a catalogue model: "
                f"use auto, off or one of {sorted(names)[:8]}"
            )
        return self

    def _catalogue_source(self) -> tuple[Any, ...]:
        return (self.models, self.model, self.fast_model)

    def _load_catalogue(self) -> Catalogue:
        from bulwark.models.catalogue import default_catalogue, load_catalogue

        if self.models is None:
            return default_catalogue(self.model, self.fast_model)
        return load_catalogue(self.models, environ=os.environ)

    @property
    def catalogue(self) -> Catalogue:
        """The models the router picks from: ``BULWARK_MODELS``, else ``model``/``fast_model``
        (read and checked when the settings are built; again for a ``model_copy`` that changes
        one of the three)."""
        source, catalogue = self._models
        if source != self._catalogue_source():
            catalogue = self._load_catalogue()
            self._models = (self._catalogue_source(), catalogue)
        return catalogue

    @property
    def judge_entry(self) -> ModelEntry | None:
        """The catalogue model ``guardrails_judge`` names (``auto``: the cheapest, then least
        capable, real model); ``None`` when the judge is off (``off``, or ``auto`` with only
        the offline model)."""
        if self.guardrails_judge == "off":
            return None
        models = self.catalogue.models
        if self.guardrails_judge != "auto":
            return next(entry for entry in models if entry.name == self.guardrails_judge)
        real = [entry for entry in models if entry.spec != "offline"]
        return min(real, key=lambda entry: (entry.cost_usd(1000, 1000), entry.quality)) if real else None

    @property
    def resolved_api_keys_file(self) -> Path:
        """Where API-key hashes are kept."""
        return self.api_keys_file or self.data_dir / "api_keys.json"

    @property
    def resolved_memory_url(self) -> str:
        """The memory store's location, defaulting to the embedded engine in the data directory."""
        return self.memory_url or str(self.data_dir / "memory")

    @property
    def resolved_checkpointer_url(self) -> str:
        """The checkpointer URL, defaulting to SQLite in the data directory."""
        return self.checkpointer_url or f"sqlite:///{self.data_dir / 'checkpoints.db'}"

    def ensure_data_dir(self) -> Path:
        """Create the data directory if needed and check it is writable.

        Raises:
            ConfigError: the directory cannot be created or written.
        """
        path = self.data_dir
        try:
            path.mkdir(parents=True, exist_ok=True)
            # A probe of its own: processes starting together never remove each other's.
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"data directory {str(path)!r} is not writable ({exc.strerror or exc}); "
                "set BULWARK_DATA_DIR to a writable folder"
            ) from exc
        return path


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment and ``.env``, with explicit overrides.

    Raises:
        ConfigError: with one line per invalid value, naming its ``BULWARK_`` variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"BULWARK_{field.upper()}: {message}" if field else message)
        raise ConfigError("; ".join(problems)) from None
