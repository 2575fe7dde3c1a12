"""The PII vault: reversible pseudonymisation, so a tool can use a value the user typed.

The input rail's one-way redaction (``<EMAIL>``) leaves ``send_email`` nothing to send to.
With the vault, each PII value in a request or a tool result is replaced, before anything
stores or reads it, by a numbered placeholder (``<EMAIL_1>``, ``<PERSON_2>``) that stays the
same for the same value on every turn of the thread, and the value is kept server-side
(:mod:`bulwark.persistence.vault`), per tenant and thread, sealed, for a TTL. The model, the
checkpoints, the logs, traces, memories and the effect journal only ever hold placeholders.
Values come back in three places only, each for the thread's owner (the user whose input
first put a value in the thread; the tenant always from the run or the credentials):

* the arguments a tool's policy lists in ``pii_args`` (``send_email.to``), just before the
  registry runs the call (:mod:`bulwark.nodes.tools`);
* an approval shown to the approver (the CLI's prompt, the server's thread state);
* the answer shown to the user (the CLI; the server's responses, ``server/routes.py``).

Cryptography: per tenant, two keys are derived (HKDF-SHA256) from the configured key: an
AES-256-GCM key (:class:`~bulwark.persistence.encryption.AesGcmCipher`) that seals each value,
and an HMAC-SHA256 key for the digest that finds a value again (over the thread, the label
and the normalised value, so digests do not link threads). A sealed value carries its digest
inside the ciphertext, so a value moved to another thread or placeholder is refused.

Secrets (API keys, tokens) are never vaulted: they stay one-way ``<SECRET>``. A text whose
run has no thread (a stateless run) gets the one-way placeholders too: nothing could restore
its values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from langgraph.config import get_config
from langgraph.runtime import get_runtime

from bulwark.graphs.state import RunContext
from bulwark.guardrails.checks import RailPolicy, RailResult, merge_verdicts, redact, redaction_label, redactions, verdict_of
from bulwark.guardrails.detectors import Finding
from bulwark.persistence.encryption import CIPHER_NAME, KEY_BYTES, AesGcmCipher, CheckpointEncryptionError, parse_key
from bulwark.persistence.vault import Item, ThreadValues, VaultStore, vault_store_for

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from bulwark.settings import Settings

__all__ = [
    "PLACEHOLDER",
    "PiiVault",
    "StreamRestorer",
    "VaultScope",
    "load_or_create_key",
    "restored",
    "screened",
    "user_sha256",
    "vault_for",
]

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)_([1-9][0-9]*)>")
"""A vault placeholder: ``<EMAIL_1>``, ``<STREET_ADDRESS_12>``."""


def unnumbered(text: str) -> str:
    """``text`` with each vault placeholder's number dropped (``<EMAIL_1>`` -> ``<EMAIL>``):
    for what outlives the thread (long-term memories), where a number would name another
    thread's value."""
    return PLACEHOLDER.sub(lambda m: f"<{m.group(1)}>", text)


_SALT = b"bulwark-pii-vault"


def user_sha256(user_id: str) -> str:
    """How the vault stores a user: the SHA-256 of its id (as the audit log and the ledger)."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class VaultScope:
    """Whose values: the tenant and thread they belong to, and the user asking."""

    tenant_id: str
    thread_id: str
    user_id: str

    @classmethod
    def of(cls, config: RunnableConfig | None, context: Any) -> VaultScope | None:
        """The scope of a run: its thread (``config["configurable"]["thread_id"]``), tenant
        and user (its :class:`~bulwark.graphs.state.RunContext`); ``None`` without a thread."""
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        if not thread:
            return None
        return cls(
            tenant_id=getattr(context, "tenant_id", None) or "default",
            thread_id=str(thread),
            user_id=getattr(context, "user_id", None) or "anonymous",
        )

    @classmethod
    def of_run(cls) -> VaultScope | None:
        """:meth:`of` for the graph node running now."""
        return cls.of(get_config(), get_runtime(RunContext).context)


def screened(result: RailResult, found: Sequence[Finding]) -> RailResult:
    """A rail's result on a pseudonymised text, its verdict with the PII taken out before
    (which the rail could no longer see)."""
    if not found:
        return result
    return RailResult(merge_verdicts([result.verdict, verdict_of(found, changed=True)]), result.text)


def restored(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` (a string, or a list of them) with each placeholder in ``values`` replaced
    by its real value; other placeholders and other types stay as they are."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: values.get(m.group(), m.group()), value)
    if isinstance(value, list):
        return [restored(v, values) for v in value]
    return value


def _normalised(label: str, value: str) -> str:
    value = " ".join(value.split())
    return value.casefold() if label == "EMAIL" else value


class PiiVault:
    """Pseudonymises PII into numbered placeholders and restores them for their owner.

    Args:
        store: where the sealed values are kept.
        key: the 32-byte master key; each tenant's keys are derived from it.
    """

    def __init__(self, store: VaultStore, *, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the vault key must be {KEY_BYTES} bytes, got {len(key)}")
        self.store = store
        self._key = key
        self._tenants: dict[str, tuple[AesGcmCipher, bytes]] = {}

    def _keys(self, tenant: str) -> tuple[AesGcmCipher, bytes]:
        keys = self._tenants.get(tenant)
        if keys is None:
            def derive(purpose: str) -> bytes:
                info = f"{purpose}\0{tenant}".encode()
                return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_SALT, info=info).derive(self._key)

            keys = self._tenants[tenant] = (AesGcmCipher(derive("seal")), derive("digest"))
        return keys

    # -- pseudonymise -------------------------------------------------------------------------

    def _plan(self, text: str, policy: RailPolicy, scope: VaultScope) -> tuple[list[Finding], list[Item]]:
        spans = [f for f in redactions(text, policy) if f.reason.startswith("pii:")]
        cipher, digest_key = self._keys(scope.tenant_id)
        items = []
        for span in spans:
            label, value = redaction_label(span), text[span.start : span.end]
            message = "\0".join((scope.thread_id, label, _normalised(label, value))).encode()
            digest = hmac.new(digest_key, message, hashlib.sha256).hexdigest()
            _, sealed = cipher.encrypt(f"{digest}\0{value}".encode())
            items.append((label, digest, base64.b64encode(sealed).decode()))
        return spans, items

    def pseudonymize(self, text: str, *, policy: RailPolicy, scope: VaultScope) -> tuple[str, list[Finding]]:
        """``text`` with each PII value ``policy`` redacts replaced by its numbered
        placeholder in ``scope``'s thread (kept in the vault), and the findings replaced."""
        spans, items = self._plan(text, policy, scope)
        if not spans:
            return text, []
        owner = user_sha256(scope.user_id)
        placeholders = self.store.assign(scope.tenant_id, scope.thread_id, owner=owner, items=items)
        return redact(text, spans, placeholders=placeholders), spans

    async def apseudonymize(self, text: str, *, policy: RailPolicy, scope: VaultScope) -> tuple[str, list[Finding]]:
        """Async twin of :meth:`pseudonymize`."""
        spans, items = self._plan(text, policy, scope)
        if not spans:
            return text, []
        owner = user_sha256(scope.user_id)
        placeholders = await self.store.aassign(scope.tenant_id, scope.thread_id, owner=owner, items=items)
        return redact(text, spans, placeholders=placeholders), spans

    # -- restore ------------------------------------------------------------------------------

    def _values(self, loaded: ThreadValues, scope: VaultScope) -> dict[str, str]:
        """The thread's values by placeholder, if ``scope``'s user owns them."""
        if loaded.owner is None or not hmac.compare_digest(loaded.owner, user_sha256(scope.user_id)):
            return {}
        cipher, _ = self._keys(scope.tenant_id)
        values = {}
        for placeholder, entry in loaded.values.items():
            try:
                digest, _, value = cipher.decrypt(CIPHER_NAME, base64.b64decode(entry.sealed)).decode().partition("\0")
            except (CheckpointEncryptionError, ValueError):
                digest, value = "", ""
            if not hmac.compare_digest(digest, entry.digest):  # another key, or moved
                log.warning("vault_value_unreadable", extra={"placeholder": placeholder})
                continue
            values[placeholder] = value
        return values

    def values(self, scope: VaultScope) -> dict[str, str]:
        """The real values of ``scope``'s thread by placeholder, if its user owns the thread
        (else empty); for several restorations in a row."""
        return self._values(self.store.load(scope.tenant_id, scope.thread_id), scope)

    async def avalues(self, scope: VaultScope) -> dict[str, str]:
        """Async twin of :meth:`values`."""
        return self._values(await self.store.aload(scope.tenant_id, scope.thread_id), scope)

    def restore(self, text: str, *, scope: VaultScope) -> str:
        """``text`` with the placeholders of ``scope``'s thread replaced by their values, for
        the thread's owner; unchanged for anyone else, or when it holds no placeholder."""
        if not PLACEHOLDER.search(text):
            return text
        return restored(text, self.values(scope))

    async def arestore(self, text: str, *, scope: VaultScope) -> str:
        """Async twin of :meth:`restore`."""
        if not PLACEHOLDER.search(text):
            return text
        return restored(text, await self.avalues(scope))

    def restore_args(self, args: Mapping[str, Any], names: Collection[str], *, scope: VaultScope) -> dict[str, Any]:
        """A copy of a tool call's ``args`` with placeholders restored in the arguments
        ``names`` (strings, lists of strings) and nowhere else."""
        wanted = [n for n in names if PLACEHOLDER.search(str(args.get(n, "")))]
        return self._args(args, wanted, self.values(scope) if wanted else {})

    async def arestore_args(
        self, args: Mapping[str, Any], names: Collection[str], *, scope: VaultScope
    ) -> dict[str, Any]:
        """Async twin of :meth:`restore_args`."""
        wanted = [n for n in names if PLACEHOLDER.search(str(args.get(n, "")))]
        return self._args(args, wanted, await self.avalues(scope) if wanted else {})

    def _args(self, args: Mapping[str, Any], wanted: Sequence[str], values: Mapping[str, str]) -> dict[str, Any]:
        return {**args, **{n: restored(args[n], values) for n in wanted}}

    # -- erase --------------------------------------------------------------------------------

    def forget_thread(self, thread_id: str, *, tenant_id: str | None = None, user_id: str | None = None) -> int:
        """Erase a thread's values: every tenant's when ``tenant_id`` is ``None``, and only
        if ``user_id`` owns them, when given."""
        owner = user_sha256(user_id) if user_id is not None else None
        return self.store.delete_thread(thread_id, tenant=tenant_id, owner=owner)

    async def aforget_thread(self, thread_id: str, *, tenant_id: str | None = None, user_id: str | None = None) -> int:
        """Async twin of :meth:`forget_thread`."""
        owner = user_sha256(user_id) if user_id is not None else None
        return await self.store.adelete_thread(thread_id, tenant=tenant_id, owner=owner)

    def forget_user(self, *, tenant_id: str, user_id: str) -> int:
        """Erase the values of every thread ``user_id`` owns in ``tenant_id``."""
        return self.store.delete_user(tenant_id, user_sha256(user_id))


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path`` (base64), created there (mode 0600) with 32 random bytes if missing.

    Created under a temporary name and hard-linked into place, so two processes starting
    together end up with the same key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink()
    return parse_key(path.read_text())


def vault_for(settings: Settings, *, store: VaultStore | None = None) -> PiiVault | None:
    """The deployment's vault (``None`` when ``settings.vault`` is off): its store next to
    the other stores, its key ``vault_key``, else ``encryption_key``, else the key file
    ``<data_dir>/vault.key``."""
    if not settings.vault:
        return None
    settings.ensure_data_dir()  # a ConfigError naming BULWARK_DATA_DIR if it is unusable
    secret = settings.vault_key or settings.encryption_key
    if secret is None and settings.resolved_checkpointer_url.startswith(("redis://", "rediss://")):
        log.info("vault_key_file", extra={"reason": "no BULWARK_VAULT_KEY: replicas sharing this Redis "
                                                       "need one key, or they cannot read each other's values"})
    key = parse_key(secret.get_secret_value()) if secret else load_or_create_key(settings.data_dir / "vault.key")
    return PiiVault(store or vault_store_for(settings), key=key)


_PARTIAL = re.compile(r"<[A-Z0-9_]{0,48}$")


class StreamRestorer:
    """Restores placeholders in a text that arrives in pieces (a token stream, a response
    body): the end of a piece that may be the start of a placeholder waits for the next.

    Args:
        values: real values by placeholder (:meth:`PiiVault.values`); a placeholder not in
            it stays as it is. Update it in place as new values become known.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self._held = ""

    def unknown(self, piece: str) -> set[str]:
        """The placeholders ``piece`` (with what is held back) holds that are not in :attr:`values`."""
        return {m.group() for m in PLACEHOLDER.finditer(self._held + piece)} - self.values.keys()

    def feed(self, piece: str) -> str:
        """The restored text that can be released after ``piece``."""
        text = self._held + piece
        cut = m.start() if (m := _PARTIAL.search(text)) else len(text)
        self._held = text[cut:]
        return restored(text[:cut], self.values)

    def flush(self) -> str:
        """Whatever is held back, at the end of the stream."""
        rest, self._held = self._held, ""
        return restored(rest, self.values)
