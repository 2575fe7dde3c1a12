"""Authentication and authorization for every API of the LangGraph server.

``langgraph.json`` points ``auth.path`` here, so ``langgraph dev``, ``bulwark serve`` and
any deployment of that file enforce it. The model (README, "Security"):

- **Who.** :func:`authenticate` turns the request's credential (an API key or a JWT, by
  ``BULWARK_AUTH``) into an identity: tenant, user and scopes. A missing or bad credential
  is a 401. The identity is the only source of tenant and user: a run's context takes
  them from it, and a client that claims someone else's gets a 403.
- **What.** Every resource a handler creates is stamped with its owner (``tenant_id``
  and ``owner`` metadata) and every read, update, delete and search is filtered on it, so
  another user's thread, run or cron answers 404, as if it did not exist. ``admin`` sees
  and manages its whole tenant; nobody crosses tenants. Paths without a handler here are
  denied (the catch-all at the end), never silently allowed.
- **Store.** A user reaches its own memories, ``("memories", tenant, user)``, and reads
  its tenant's knowledge, ``("knowledge", tenant)``; writing knowledge, and any other
  user's memories, needs ``admin``.
- **Input.** A run's input is validated, screened and redacted here, before the server
  stores it (:mod:`bulwark.guardrails.intake`): malformed input is a 422, oversize a 413,
  and nothing is stored; the graph then never sees a raw client message. Its PII goes to
  the PII vault under the run's thread and the credential's tenant and user
  (:mod:`bulwark.guardrails.vault`); deleting a thread erases its values.
- **How often.** Each request takes a token for its credential and its tenant, each new
  run or cron one more; a new run also needs its tenant's model tokens positive and a free
  concurrent-run slot (a lease the graph's audit node gives back), all sized by the
  credential's tier (:mod:`bulwark.server.limits`). Over a limit is a 429 with
  ``Retry-After``, before anything is started or stored; a tier the settings do not define
  is a 403.

Handlers accept both shapes of servers: header keys as bytes (langgraph-api) or str
(aegra), the user as a mapping (langgraph-api) or an object (aegra), and ``metadata``
missing or ``None``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
import structlog
from langgraph_sdk import Auth
from starlette.exceptions import HTTPException as ServerHTTPException

from bulwark.guardrails.intake import InputError, IntakePolicy, prepare_input
from bulwark.guardrails.rails import Guardrails
from bulwark.guardrails.vault import VaultScope, vault_for
from bulwark.memory.longterm import KNOWLEDGE, MEMORIES
from bulwark.nodes.agent import SYSTEM_PROMPT
from bulwark.observability.log_format import configure_logging
from bulwark.server.credentials import CredentialError, Identity, authenticator
from bulwark.server.limits import LEASE_KEY, TIER_KEY, RateLimited, RateLimits, UnknownTier
from bulwark.server.webhooks import WebhookError, bind, check_url
from bulwark.settings import load_settings

TENANT, OWNER = "tenant_id", "owner"
"""Metadata keys that record who owns a thread, cron or assistant."""
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_OPTIONS_BYTES = 64 * 1024
"""Largest JSON of a run's config, context, command and metadata together."""

settings = load_settings()
authn = authenticator(settings)
"""This process's credential check (also used by ``server/engine_routes.py``)."""
_rails = Guardrails.from_settings(settings, system_prompt=SYSTEM_PROMPT)
_intake = IntakePolicy.from_settings(settings)
_vault = vault_for(settings)
_limits = RateLimits.from_settings(settings)
_webhook_secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
# After the server's own logging config (it imports this module later): ours replaces it.
configure_logging(settings, policy=_rails.policy, stream=sys.stdout, default_level="INFO")
log = logging.getLogger(__name__)

auth = Auth()


def _fail(status: int, detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=status, detail=detail)


def _not_found() -> Auth.exceptions.HTTPException:
    return _fail(404, "not found")


def header(headers: Mapping[Any, Any], name: str) -> str | None:
    """Header ``name`` of ``headers``, whose keys are bytes (langgraph-api) or str (aegra)."""
    value = headers.get(name.encode()) or headers.get(name)
    return value.decode("latin-1") if isinstance(value, bytes) else value


@auth.authenticate
async def authenticate(headers: Mapping[Any, Any]) -> Auth.types.MinimalUserDict:
    """The identity behind the request's ``Authorization`` or ``x-api-key`` header."""
    try:
        who = await authn.authenticate(header(headers, "authorization"), header(headers, "x-api-key"))
    except CredentialError as exc:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    # langgraph-api turns an Auth.exceptions.HTTPException raised here into a 500 (only
    # 401/403 pass); a Starlette one goes to its error handler as is, headers and all.
    except jwt.PyJWKClientConnectionError:  # our key server is down: not the client's fault
        raise ServerHTTPException(503, "cannot check tokens right now: the signing keys are unreachable") from None
    structlog.contextvars.bind_contextvars(tenant=who.tenant_id)  # the request's later log lines
    try:
        await _limits.request(who)
    except RateLimited as exc:
        _rate_limited(who, exc, "request")
        raise ServerHTTPException(429, str(exc), headers=_retry_after(exc)) from None
    except UnknownTier as exc:  # a genuine credential the server has no limits for
        raise ServerHTTPException(403, str(exc)) from None
    return {
        "identity": f"{who.tenant_id}/{who.user_id}",
        "display_name": who.user_id,
        "is_authenticated": True,
        "permissions": sorted(who.scopes),
        TENANT: who.tenant_id,
        "user_id": who.user_id,
        "credential": who.credential,
        "tier": who.tier,
        # The run's request id when its context names none, so that its logs (keyed by the
        # server's x-request-id), audit record, spans and LangSmith run share one id.
        "request_id": header_request_id(headers),
    }


def header_request_id(headers: Mapping[Any, Any]) -> str | None:
    """The request's ``x-request-id`` (langgraph-api sets one on every run request), if it
    is a valid request id; a malformed one is ignored, as the run id stands in."""
    value = header(headers, "x-request-id")
    return value if value and REQUEST_ID.match(value) else None


def _retry_after(exc: RateLimited) -> dict[str, str]:
    return {"Retry-After": str(exc.retry_after_s)}


def _rate_limited(who: Identity, exc: RateLimited, what: str) -> None:
    log.info("rate_limited", extra={"limited": what, "tier": who.tier, "retry_after_s": exc.retry_after_s})


async def _take_run(who: Identity, *, lease: str | None = None) -> None:
    """Admit a new run (with its ``lease`` id) or cron (none) for ``who``: a 429 with
    ``Retry-After`` when over a limit."""
    try:
        await _limits.run(who, lease=lease)
    except RateLimited as exc:
        _rate_limited(who, exc, "run")
        raise Auth.exceptions.HTTPException(status_code=429, detail=str(exc), headers=_retry_after(exc)) from None
    except UnknownTier as exc:
        raise _fail(403, str(exc)) from None


async def _admit_run(kwargs: dict, who: Identity, *, run_id: object) -> None:
    """Admit a new run under its run id (aegra has none yet: a fresh id), and write its tier
    and lease id into its ``configurable``, replacing whatever the client sent there, for
    the graph's agent and audit nodes (they debit the tokens and give the lease back)."""
    lease = str(run_id) if run_id is not None else str(uuid.uuid4())
    await _take_run(who, lease=lease)
    config = kwargs.get("config")
    if not isinstance(config, dict):
        config = kwargs["config"] = {}
    if not isinstance(config.get("configurable"), dict):
        config["configurable"] = {}
    config["configurable"][TIER_KEY] = who.tier
    config["configurable"][LEASE_KEY] = lease if _limits.leases(who) else None


def _claim(user: Any, key: str) -> Any:
    """A field :func:`authenticate` returned: by key on langgraph-api's user, by attribute
    on aegra's (a pydantic model keeping the extra fields)."""
    return user[key] if hasattr(user, "__getitem__") else getattr(user, key)


def _who(ctx: Auth.types.AuthContext) -> Identity:
    user = ctx.user
    try:
        tenant, user_id, credential, tier = (_claim(user, key) for key in (TENANT, "user_id", "credential", "tier"))
    except (KeyError, TypeError, AttributeError):
        raise _fail(403, "this server accepts only Bulwark credentials") from None
    return Identity(
        tenant_id=tenant, user_id=user_id, scopes=frozenset(ctx.permissions), credential=credential, tier=tier
    )


def _request_id_of(user: Any) -> str | None:
    """The ``x-request-id`` :func:`authenticate` kept on the user, if any."""
    try:
        return _claim(user, "request_id")
    except (KeyError, AttributeError):
        return None


def _owned_by(who: Identity, ctx: Auth.types.AuthContext) -> dict[str, str]:
    """The filter on what ``who`` may see: its own, or its tenant's for an admin.

    aegra (its user is an object, not a mapping) overwrites ``metadata.owner`` with the
    identity and keeps every thread, run and cron to its identity itself: there the filter
    is the tenant alone."""
    if who.is_admin or not hasattr(ctx.user, "__getitem__"):
        return {TENANT: who.tenant_id}
    return {TENANT: who.tenant_id, OWNER: who.user_id}


def stamp_owner(value: dict, who: Identity) -> None:
    """Record ``who`` as the owner in ``value["metadata"]``; refuse a claim to be someone else."""
    metadata = value.get("metadata")
    if metadata is None:
        metadata = value["metadata"] = {}
    mine = {TENANT: who.tenant_id, OWNER: who.user_id}
    for key, own in mine.items():
        if key in metadata and metadata[key] != own:
            raise _fail(403, f"metadata.{key} is set from your credentials and must be your own")
    metadata.update(mine)


# -- threads and runs ----------------------------------------------------------------------


@auth.on.threads.create
async def _thread_create(ctx: Auth.types.AuthContext, value: dict) -> None:
    stamp_owner(value, _who(ctx))


@auth.on.threads.delete
async def _thread_delete(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str]:
    """Deleting a thread (or one of its runs): owners only. A thread's PII vault values go
    with it (an admin's deletion erases them too, anyone else's nothing: the server then
    answers 404); a run's deletion keeps them."""
    who = _who(ctx)
    if _vault is not None and value.get("thread_id") and not value.get("run_id"):
        owner = None if who.is_admin else who.user_id
        await _vault.aforget_thread(str(value["thread_id"]), tenant_id=who.tenant_id, user_id=owner)
    return _owned_by(who, ctx)


@auth.on.threads.read
@auth.on.threads.search
@auth.on.crons.read
@auth.on.crons.delete
@auth.on.crons.search
async def _owner_access(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str]:
    """Reads, deletes and searches of threads (their runs too) and crons: owners only."""
    return _owned_by(_who(ctx), ctx)


@auth.on.threads.update
async def _thread_update(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str]:
    who = _who(ctx)
    if "action" in value or "run_id" in value:  # cancelling or rolling back its runs (aegra: by run id)
        return _owned_by(who, ctx)
    if "metadata" not in value and not who.is_admin:
        # update_state: writing messages or verdicts into a thread would skip the rails.
        raise _fail(403, "changing a thread's state needs the admin scope; send a run instead")
    if value.get("metadata"):
        stamp_owner(value, who)
    return _owned_by(who, ctx)


@auth.on.threads.create_run
async def _run_create(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str] | None:
    who = _who(ctx)
    stamp_owner(value, who)
    # langgraph-api nests the run's fields under "kwargs"; aegra passes them flat, as sent.
    nested = "kwargs" in value
    kwargs = value["kwargs"] if nested else value
    # Without a context langgraph-api fills it from the client's configurable, which may
    # carry other keys; with one, it marks the configurable it derives from it.
    given = bool((kwargs.get("config") or {}).get("configurable", {}).get("__context_provided__")) or not nested
    await prepare_run(
        kwargs, who, run_id=value.get("run_id"), metadata=value["metadata"], context_given=given,
        http_request_id=_request_id_of(ctx.user), thread_id=value.get("thread_id"),
    )
    await _admit_run(kwargs, who, run_id=value.get("run_id"))  # last: a run refused for bad input costs nothing
    # aegra checks the thread's owner itself and takes the prepared context and config
    # only from a handler that returns no filter (server/engine_routes.py prepares the rest).
    return _owned_by(who, ctx) if nested else None


async def prepare_run(
    kwargs: dict, who: Identity, *, run_id: object, metadata: Mapping, context_given: bool, cron: bool = False,
    http_request_id: str | None = None, thread_id: object = None,
) -> None:
    """Validate and screen a run's (or cron's) kwargs in place: context from the identity,
    input screened and redacted (its PII into the vault under ``thread_id``, when the run
    has a thread), only ``resume`` commands, webhooks for ``admin`` only and taken from the
    engine (:mod:`bulwark.server.webhooks` signs and sends them).

    The run's request id is the context's ``request_id``, else ``http_request_id`` (the
    request's ``x-request-id``), else the run id."""
    webhook = kwargs.pop("webhook", None) or None
    if webhook is not None:
        if not who.is_admin:
            raise _fail(403, "webhooks need the admin scope")
        webhook = _webhook_url(webhook, cron=cron)
    options = {key: kwargs.get(key) for key in ("config", "context", "command")} | {"metadata": metadata}
    if len(json.dumps(options, default=str)) > MAX_OPTIONS_BYTES:
        raise _fail(413, f"the run's config, context, command and metadata exceed {MAX_OPTIONS_BYTES} bytes")
    config = kwargs.get("config") or {}
    configurable = config.get("configurable") or {}
    context = kwargs.get("context") or {}
    if not isinstance(context, Mapping):
        raise _fail(422, "context must be an object")
    if context_given and (unknown := sorted(set(context) - {"user_id", "tenant_id", "request_id"})):
        raise _fail(422, f"unknown context keys {unknown[:5]}: use user_id, tenant_id, request_id")
    for key, own in (("tenant_id", who.tenant_id), ("user_id", who.user_id)):
        for source, claims in (("context", context), ("configurable", configurable)):
            if claims.get(key) not in (None, own):
                raise _fail(403, f"{source}.{key} comes from your credentials and must be your own")
    request_id = context.get("request_id") if context_given else None
    if request_id is not None and (not isinstance(request_id, str) or not REQUEST_ID.match(request_id)):
        raise _fail(422, "context.request_id must be 1-128 letters, digits, '.', '_', ':' or '-'")
    kwargs["context"] = {"tenant_id": who.tenant_id, "user_id": who.user_id, "request_id": request_id or http_request_id or str(run_id)}
    if isinstance(config.get("configurable"), dict):
        config["configurable"].update(kwargs["context"])
    if not cron:  # a cron's configurable stays empty: langgraph-api refuses one next to a context
        bind(kwargs, webhook, request_id=kwargs["context"]["request_id"], secret=_webhook_secret)
    if kwargs.get("command") is not None:
        kwargs["command"] = _resume_command(kwargs["command"])
    if kwargs.get("input") is not None:
        try:
            scope = VaultScope(tenant_id=who.tenant_id, thread_id=str(thread_id), user_id=who.user_id) if thread_id else None
            kwargs["input"] = await prepare_input(
                kwargs["input"], rails=_rails, policy=_intake, batch=kwargs["context"]["request_id"],
                vault=_vault, scope=scope,
            )
        except InputError as exc:
            raise _fail(exc.status, str(exc)) from None


def _webhook_url(url: object, *, cron: bool) -> str:
    """The checked URL of a run's webhook; a 422 when it is refused."""
    if cron:
        raise _fail(422, "webhooks on crons are not supported yet: give the webhook to each run")
    if _webhook_secret is None:
        raise _fail(422, "webhooks are off on this server: it has no signing secret (BULWARK_WEBHOOK_SECRET)")
    try:
        return check_url(url, allow_private=settings.webhook_allow_private)
    except WebhookError as exc:
        raise _fail(422, str(exc)) from None


def _decision(value: Any, where: str) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= 32:
        return value
    if isinstance(value, Mapping) and set(value) <= {"approved", "reason"} and isinstance(value.get("approved"), bool):
        reason = value.get("reason") or ""
        if not isinstance(reason, str) or len(reason) > 500:
            raise _fail(422, f"{where}.reason must be a string of at most 500 characters")
        # The reason reaches the model: screen it like any context it reads.
        return {"approved": value["approved"], "reason": _rails.check_context(reason).text}
    raise _fail(422, f'{where} must be true, false or {{"approved": bool, "reason": str}}')


def _resume_command(command: Any) -> dict[str, Any]:
    """Clients may only answer interrupts: ``{"resume": decision | {interrupt_id: decision}}``."""
    if not isinstance(command, Mapping) or set(command) - {"resume"} or "resume" not in command:
        raise _fail(422, "command accepts only 'resume' (an approval decision); update and goto are refused")
    resume = command["resume"]
    if isinstance(resume, Mapping) and resume and "approved" not in resume:
        if len(resume) > 64:
            raise _fail(422, "command.resume answers at most 64 interrupts")
        return {"resume": {str(k): _decision(v, f"command.resume[{k!r}]") for k, v in resume.items()}}
    return {"resume": _decision(resume, "command.resume")}


# -- crons ---------------------------------------------------------------------------------


@auth.on.crons.create
async def _cron_create(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str]:
    who = _who(ctx)
    stamp_owner(value, who)
    await prepare_run(
        value.setdefault("payload", {}), who, run_id=value.get("cron_id"), metadata=value["metadata"],
        context_given=True, cron=True, thread_id=value.get("thread_id"),
    )
    await _take_run(who)
    return _owned_by(who, ctx)


@auth.on.crons.update
async def _cron_update(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str]:
    who = _who(ctx)
    if value.get("payload"):
        await prepare_run(
            value["payload"], who, run_id=value.get("cron_id"), metadata={}, context_given=True, cron=True
        )
    return _owned_by(who, ctx)


# -- assistants ------------------------------------------------------------------------------


@auth.on.assistants.read
@auth.on.assistants.search
async def _assistant_read(ctx: Auth.types.AuthContext, value: dict) -> dict:
    # The graphs' own assistants (created_by=system) are everyone's; others, their tenant's.
    return {"$or": [{"created_by": "system"}, {TENANT: _who(ctx).tenant_id}]}


@auth.on.assistants.create
@auth.on.assistants.update
@auth.on.assistants.delete
async def _assistant_write(ctx: Auth.types.AuthContext, value: dict) -> dict[str, str]:
    who = _who(ctx)
    if not who.is_admin:
        raise _fail(403, "managing assistants needs the admin scope")
    if "metadata" in value or "graph_id" in value:
        metadata = value.get("metadata") or {}
        if metadata.get(TENANT) not in (None, who.tenant_id):
            raise _fail(403, "metadata.tenant_id is set from your credentials and must be your own")
        value["metadata"] = {**metadata, TENANT: who.tenant_id}
    return {TENANT: who.tenant_id}


# -- store -----------------------------------------------------------------------------------


def _allowed(who: Identity, *, write: bool) -> list[tuple[str, ...]]:
    """The namespace roots ``who`` may read (or write)."""
    if who.is_admin:
        return [(MEMORIES, who.tenant_id), (KNOWLEDGE, who.tenant_id)]
    own = (MEMORIES, who.tenant_id, who.user_id)
    return [own] if write else [own, (KNOWLEDGE, who.tenant_id)]


def _scope(namespace: Sequence[str] | None, who: Identity, *, write: bool) -> tuple[str, ...]:
    """``namespace`` if it lies inside a root ``who`` may reach; a shorter prefix of one
    narrowed to that root (listing ``("memories",)`` lists only one's own); else refused
    (404 for reads: what is not yours does not exist)."""
    asked = tuple(namespace or ())
    roots = _allowed(who, write=write)
    for root in roots:
        if asked[: len(root)] == root:
            return asked
    narrowed = [root for root in roots if root[: len(asked)] == asked]
    if narrowed:
        return narrowed[0]
    raise _fail(403, "you may write only your own memories") if write else _not_found()


@auth.on.store
async def _store(ctx: Auth.types.AuthContext, value: dict) -> dict[str, list[str]] | None:
    who = _who(ctx)
    if ctx.action == "list_namespaces":
        if "prefix" in value:  # aegra: it lists under the prefix this returns, and only
            prefix = _scope(value.get("prefix"), who, write=False)  # within one's own memories
            if prefix[:1] == (MEMORIES,) and len(prefix) < 3:
                prefix = (MEMORIES, who.tenant_id, who.user_id)
            return {"prefix": list(prefix)}
        value["namespace"] = _scope(value.get("namespace"), who, write=False)
        return None
    # Items and searches name a namespace inside one the caller may reach, never above it.
    write = ctx.action in ("put", "delete")
    asked = tuple(value["namespace"] if "namespace" in value else value["namespace_prefix"])  # aegra: search's own key
    if _scope(asked, who, write=write) != asked:
        raise _fail(403, "you may write only your own memories") if write else _not_found()


# -- everything else -------------------------------------------------------------------------


@auth.on
async def _deny(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """Paths without a handler above are refused, not silently allowed."""
    return False
