"""Credentials of server clients: API keys, bearer JWTs, and the identity they prove.

An :class:`Authenticator` (built by :func:`authenticator` from the settings) turns the
``Authorization`` and ``X-Api-Key`` headers of a request into an :class:`Identity`, or
raises :class:`CredentialError` with a message safe to show the client. Three modes:

* ``none``: every request is the one local user (the server then binds to loopback only).
* ``keys``: API keys made by ``bulwark keys create`` and kept, hashed, by :class:`ApiKeys`.
* ``jwt``: bearer tokens checked by :class:`JwtVerifier` (HS256 secret, or RS256/ES256 JWKS).

Tenant and user ids become LangGraph store namespace labels, so they never contain ``.``.
An identity also carries the credential's rate-limit tier (:mod:`bulwark.server.limits`):
an API key's from its record (``bulwark keys create --tier``), a JWT's from a claim.
"""

from __future__ import annotations

import asyncio
import builtins
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import jwt

from bulwark.settings import TIER_PATTERN, ConfigError, Settings

ID_PATTERN = re.compile(r"^[A-Za-z0-9_@+-]{1,128}$")
"""Tenant and user ids: no ``.``, which LangGraph store namespace labels forbid."""
SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9:_-]{0,63}$")
ADMIN_SCOPE = "admin"
"""The one scope Bulwark itself gives meaning to; others are allowed and passed through."""
DEFAULT_TIER = "default"
"""The tier of credentials that name none: the flat ``rate_limit_*`` settings."""

KEY_PREFIX = "bwk_"
KEY_ID_LENGTH = 12
KEY_SECRET_BYTES = 32
KEY_PATTERN = re.compile(r"^bwk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43,128})$")
_KEY_ID_ALPHABET = string.ascii_letters + string.digits

JWKS_ALGORITHMS = ("RS256", "ES256")
JWKS_LIFESPAN_S = 300.0
JWKS_TIMEOUT_S = 10.0
HS256_MIN_SECRET_BYTES = 32
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who a request comes from, as its credential proves."""

    tenant_id: str
    user_id: str
    scopes: frozenset[str]
    credential: str
    """A non-secret id of the credential: the API key id, ``jwt:<jti>`` (``jwt:<user>`` for a
    token without one) or ``local``."""
    tier: str = DEFAULT_TIER
    """The credential's rate-limit tier; only the credential sets it, never a request."""

    @property
    def is_admin(self) -> bool:
        """Whether the credential carries the ``admin`` scope."""
        return ADMIN_SCOPE in self.scopes


LOCAL_IDENTITY = Identity(
    tenant_id="default",
    user_id="anonymous",
    scopes=frozenset({ADMIN_SCOPE}),
    credential="local",
)
"""Every request's identity when ``BULWARK_AUTH=none``."""


class CredentialError(Exception):
    """A missing or bad credential. The message is safe to show the client: it never
    includes the key or token."""


def validate_id(kind: str, value: str) -> str:
    """Check a tenant or user id (``kind`` names it in the message) and return it.

    Raises:
        ValueError: the id is not 1-128 letters, digits, ``_``, ``@``, ``+`` or ``-``.
    """
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"invalid {kind} id {value[:40]!r}: use 1-128 letters, digits, '_', '@', '+' or '-'"
        )
    return value


def validate_tier(value: str) -> str:
    """Check a rate-limit tier name and return it.

    Raises:
        ValueError: the name is not 1-64 letters, digits, ``_`` or ``-``.
    """
    if not isinstance(value, str) or not TIER_PATTERN.fullmatch(value):
        raise ValueError(f"invalid tier {str(value)[:40]!r}: use 1-64 letters, digits, '_' or '-'")
    return value


def validate_scope(value: str) -> str:
    """Check a scope name and return it.

    Raises:
        ValueError: the scope is not a lowercase letter then up to 63 of ``a-z0-9:_-``.
    """
    if not SCOPE_PATTERN.fullmatch(value):
        raise ValueError(
            f"invalid scope {value[:40]!r}: use a lowercase letter, then up to 63 lowercase "
            "letters, digits, ':', '_' or '-'"
        )
    return value


# -- API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """What is known about an API key, without its secret."""

    key_id: str
    tenant_id: str
    user_id: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None
    tier: str = DEFAULT_TIER

    @property
    def active(self) -> bool:
        """Whether the key still authenticates."""
        return self.revoked_at is None


class _Entry(NamedTuple):
    digest: str
    info: KeyInfo
    identity: Identity


_Signature = tuple[int, int, int]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApiKeys:
    """API keys kept in a JSON file, safe for several processes to share.

    A key reads ``bwk_<key id>_<secret>``: the id is 12 letters and digits (not secret, it
    names the key in listings and logs), the secret 32 random bytes from
    :func:`secrets.token_urlsafe`. The file keeps only the SHA-256 of the secret. A fast hash
    is right here, with no password KDF (bcrypt, scrypt, argon2): a KDF slows guessing of
    low-entropy passwords, but a 256-bit random secret cannot be guessed, so it would only add
    milliseconds to every request.

    The file is written with mode 0600, atomically (a temporary file, then ``os.replace``),
    under an exclusive ``flock`` on ``<file>.lock`` so that concurrent writers never lose a
    key. Each record names the key's rate-limit tier (records written before tiers existed
    have none and are tier ``default``). :meth:`verify` keeps the parsed file and re-reads it only when its modification
    time, size or inode changed, so a key revoked by another process (``bulwark keys
    revoke``) is refused from the next request on. ``clock`` stamps creation and
    revocation times.
    """

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.path = path
        self.clock = clock
        self._lock_path = path.with_name(path.name + ".lock")
        self._cache: tuple[_Signature, dict[str, _Entry]] | None = None

    def create(
        self, *, tenant_id: str, user_id: str, scopes: Iterable[str] = (), tier: str = DEFAULT_TIER
    ) -> tuple[KeyInfo, str]:
        """Make a key for a user of a tenant, in rate-limit tier ``tier``; return its
        description and the full key.

        The key is returned only here: the file keeps its hash, so show it to the user now.
        Whether the server defines the tier is for the caller to check (``bulwark keys
        create`` does); a key of a tier the server does not define is refused (403).

        Raises:
            ValueError: an invalid tenant id, user id, scope or tier name.
        """
        validate_id("tenant", tenant_id)
        validate_id("user", user_id)
        validate_tier(tier)
        scope_set = frozenset(validate_scope(scope) for scope in scopes)
        secret = secrets.token_urlsafe(KEY_SECRET_BYTES)
        with self._locked():
            records = self._read_records()
            key_id = _new_key_id()
            while key_id in records:
                key_id = _new_key_id()
            info = KeyInfo(
                key_id=key_id,
                tenant_id=tenant_id,
                user_id=user_id,
                scopes=scope_set,
                created_at=self.clock().astimezone(UTC),
                revoked_at=None,
                tier=tier,
            )
            records[key_id] = {
                "sha256": _sha256(secret),
                "tenant_id": tenant_id,
                "user_id": user_id,
                "scopes": sorted(scope_set),
                "created_at": info.created_at.isoformat(),
                "revoked_at": None,
                "tier": tier,
            }
            self._write_records(records)
        return info, f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> builtins.list[KeyInfo]:
        """Every key, active and revoked, oldest first; no secrets."""
        entries = self._entries().values()
        return sorted((entry.info for entry in entries), key=lambda i: (i.created_at, i.key_id))

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; ``False`` if there is no such key. Revoking a revoked key keeps its
        first revocation time."""
        with self._locked():
            records = self._read_records()
            record = records.get(key_id)
            if record is None:
                return False
            if record.get("revoked_at") is None:
                record["revoked_at"] = self.clock().astimezone(UTC).isoformat()
                self._write_records(records)
        return True

    def verify(self, key: str) -> Identity:
        """The identity an API key proves.

        Raises:
            CredentialError: the key is malformed, unknown or revoked.
            ValueError: the key file is not a valid API-key file (a server-side fault).
        """
        match = KEY_PATTERN.fullmatch(key)
        if match is None:
            raise CredentialError("malformed API key: expected bwk_<key id>_<secret>")
        key_id, secret = match.groups()
        entry = self._entries().get(key_id)
        if entry is None or not hmac.compare_digest(entry.digest, _sha256(secret)):
            raise CredentialError("unknown API key")
        if entry.info.revoked_at is not None:
            raise CredentialError(f"API key {key_id} is revoked")
        return entry.identity

    def _entries(self) -> dict[str, _Entry]:
        """The parsed file, re-read only when it changed since the last call."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._cache = None
            return {}
        cache = self._cache
        if cache is not None and cache[0] == (stat.st_mtime_ns, stat.st_size, stat.st_ino):
            return cache[1]
        try:
            with self.path.open("rb") as f:
                opened = os.fstat(f.fileno())
                records = self._parse(f.read())
        except FileNotFoundError:
            return {}
        entries = {key_id: self._entry(key_id, record) for key_id, record in records.items()}
        self._cache = ((opened.st_mtime_ns, opened.st_size, opened.st_ino), entries)
        return entries

    def _entry(self, key_id: str, record: Mapping[str, Any]) -> _Entry:
        try:
            digest, revoked = record["sha256"], record["revoked_at"]
            if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
                raise ValueError("'sha256' is not a hex SHA-256")
            info = KeyInfo(
                key_id=key_id,
                tenant_id=validate_id("tenant", record["tenant_id"]),
                user_id=validate_id("user", record["user_id"]),
                scopes=frozenset(validate_scope(scope) for scope in record["scopes"]),
                created_at=datetime.fromisoformat(record["created_at"]),
                revoked_at=None if revoked is None else datetime.fromisoformat(revoked),
                tier=validate_tier(record.get("tier", DEFAULT_TIER)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{self.path}: key {key_id!r} is not a valid record ({exc})") from None
        identity = Identity(
            tenant_id=info.tenant_id, user_id=info.user_id, scopes=info.scopes, credential=key_id,
            tier=info.tier,
        )
        return _Entry(digest, info, identity)

    def _parse(self, data: bytes) -> dict[str, dict[str, Any]]:
        try:
            document = json.loads(data)
            records = document["keys"]
            if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
                raise TypeError("'keys' must map key ids to records")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.path} is not an API-key file ({exc})") from None
        return records

    def _read_records(self) -> dict[str, dict[str, Any]]:
        try:
            return self._parse(self.path.read_bytes())
        except FileNotFoundError:
            return {}

    def _write_records(self, records: dict[str, dict[str, Any]]) -> None:
        data = json.dumps({"version": 1, "keys": records}, indent=2, sort_keys=True) + "\n"
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp creates it with mode 0600
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable: a revocation must survive a crash
        finally:
            os.close(directory)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def _new_key_id() -> str:
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


# -- JWTs -------------------------------------------------------------------------------------

_TOKEN_PROBLEMS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not valid yet"),
    (jwt.InvalidAudienceError, "audience not accepted"),
    (jwt.InvalidIssuerError, "issuer not accepted"),
    (jwt.InvalidAlgorithmError, "algorithm not accepted"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.DecodeError, "malformed"),
)


def _token_problem(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"invalid token: missing the {exc.claim!r} claim"
    problem = next((text for kind, text in _TOKEN_PROBLEMS if isinstance(exc, kind)), "rejected")
    return f"invalid token: {problem}"


def _usable(key: jwt.PyJWK) -> bool:
    return key.algorithm_name in JWKS_ALGORITHMS and key.public_key_use in ("sig", None)


class JwtVerifier:
    """Checks bearer JWTs and reads the identity from their claims.

    Give either ``secret`` (HS256, at least 32 bytes) or ``jwks``: a JWKS file path or an
    http(s) URL with RS256/ES256 public keys. The accepted algorithms follow from that
    choice alone, never from the token: ``none`` is never accepted, and with JWKS keys
    each key verifies only its own algorithm (so an HS256 token "signed" with a public key
    is refused). Tokens must carry ``exp``; ``nbf`` and ``iat`` are checked when present,
    ``aud`` and ``iss`` when configured. As in pyjwt, a token naming an audience is refused
    when no ``audience`` is configured. ``leeway`` is the clock skew allowed, in seconds.
    pyjwt reads the wall clock itself, so no clock can be injected.

    A JWKS file is read once, here; a JWKS URL is fetched on first use and cached for
    five minutes (``jwt.PyJWKClient``), and again, at most every 30 s, for a key id it
    does not hold. Tokens must name their key (``kid``). Tenant, user and scopes come from
    the ``tenant_claim``, ``user_claim`` and ``scopes_claim`` claims; scopes are a
    space-separated string or a list of strings, and those that are not valid scope names
    are dropped. The rate-limit tier comes from ``tier_claim`` (absent: ``default``; not a
    valid tier name: refused); whether the server defines it is checked by the server.

    Raises:
        ValueError: on construction, for neither or both of ``secret`` and ``jwks``, a short
            secret, a negative leeway, or a JWKS file that is unreadable or holds no usable key.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        tenant_claim: str = "tenant_id",
        user_claim: str = "sub",
        scopes_claim: str = "scope",
        tier_claim: str = "tier",
        leeway: float = 0,
    ) -> None:
        if (secret is None) == (jwks is None):
            raise ValueError("give exactly one of secret (HS256) or jwks (RS256/ES256)")
        if leeway < 0:
            raise ValueError(f"leeway must be >= 0 seconds, got {leeway}")
        self.audience = audience
        self.issuer = issuer
        self.tenant_claim = tenant_claim
        self.user_claim = user_claim
        self.scopes_claim = scopes_claim
        self.tier_claim = tier_claim
        self.leeway = leeway
        self._secret: bytes | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._client: jwt.PyJWKClient | None = None
        if secret is not None:
            self._secret = secret.encode("utf-8")
            if len(self._secret) < HS256_MIN_SECRET_BYTES:
                raise ValueError(
                    f"the HS256 secret must be at least {HS256_MIN_SECRET_BYTES} bytes, "
                    f"got {len(self._secret)}"
                )
            self._algorithms: tuple[str, ...] = ("HS256",)
            return
        assert jwks is not None
        self._algorithms = JWKS_ALGORITHMS
        if jwks.startswith(("http://", "https://")):
            self._client = jwt.PyJWKClient(jwks, lifespan=JWKS_LIFESPAN_S, timeout=JWKS_TIMEOUT_S)
            return
        try:
            key_set = jwt.PyJWKSet.from_json(Path(jwks).read_text(encoding="utf-8"))
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ValueError(f"cannot load the JWKS file {jwks!r}: {exc}") from None
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id and _usable(key)}
        if not self._keys:
            raise ValueError(
                f"the JWKS file {jwks!r} has no RS256/ES256 signing key with a key id (kid)"
            )

    def verify(self, token: str) -> Identity:
        """The identity a token proves; may fetch a JWKS URL (blocking: use :meth:`averify`
        in async code).

        Raises:
            CredentialError: the token is malformed, expired, not yet valid, badly signed,
                for another audience or issuer, or lacks a valid tenant or user.
            jwt.PyJWKClientConnectionError: the JWKS URL could not be fetched (a server-side
                fault, not the client's).
        """
        kid = self._kid(token)
        return self._identity(token, self._key(kid))

    async def averify(self, token: str) -> Identity:
        """:meth:`verify` for async code: a JWKS URL is fetched in a worker thread, and only
        when the key set cached from it lacks the token's key id (or has expired)."""
        kid = self._kid(token)
        key = self._cached_key(kid)
        if key is None:
            key = await asyncio.to_thread(self._key, kid)
        return self._identity(token, key)

    def _kid(self, token: str) -> str | None:
        """The key id from the unverified header, refusing other algorithms before any key
        lookup. ``None`` with a secret: there is no key to choose, and ``jwt.decode`` (given
        only HS256) refuses other algorithms itself without a second parse of the token."""
        if self._secret is not None:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CredentialError("invalid token: not a JWT") from None
        if header.get("alg") not in self._algorithms:
            raise CredentialError("invalid token: algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise CredentialError("invalid token: no key id (kid) in its header")
        return kid

    def _cached_key(self, kid: str | None) -> bytes | jwt.PyJWK | None:
        """The key without any I/O; ``None`` when a JWKS URL must be fetched first."""
        if self._client is None:
            return self._key(kid)
        cache = self._client.jwk_set_cache
        key_set = cache.get() if cache is not None else None
        if key_set is None:
            return None
        key = next((k for k in key_set.keys if k.key_id == kid), None)
        return None if key is None else self._checked(key)

    def _key(self, kid: str | None) -> bytes | jwt.PyJWK:
        if self._secret is not None:
            return self._secret
        assert kid is not None
        if self._client is None:
            key = self._keys.get(kid)
            if key is None:
                raise CredentialError("invalid token: unknown signing key")
            return key
        try:
            return self._checked(self._client.get_signing_key(kid))
        except jwt.PyJWKClientConnectionError:
            raise
        except jwt.PyJWKClientError:
            raise CredentialError("invalid token: unknown signing key") from None

    @staticmethod
    def _checked(key: jwt.PyJWK) -> jwt.PyJWK:
        if not _usable(key):
            raise CredentialError("invalid token: its key is not an RS256/ES256 signing key")
        return key

    def _identity(self, token: str, key: bytes | jwt.PyJWK) -> Identity:
        algorithms = ["HS256"] if isinstance(key, bytes) else [key.algorithm_name]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise CredentialError(_token_problem(exc)) from None
        tenant_id = self._id_claim(claims, self.tenant_claim, "tenant")
        user_id = self._id_claim(claims, self.user_claim, "user")
        jti = claims.get("jti")
        return Identity(
            tenant_id=tenant_id,
            user_id=user_id,
            scopes=self._scopes(claims),
            credential=f"jwt:{jti}" if isinstance(jti, str) and jti else f"jwt:{user_id}",
            tier=self._tier(claims),
        )

    @staticmethod
    def _id_claim(claims: Mapping[str, Any], claim: str, kind: str) -> str:
        value = claims.get(claim)
        if value is None:
            raise CredentialError(f"invalid token: no {claim!r} claim (the {kind})")
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
            raise CredentialError(
                f"invalid token: claim {claim!r} is not a valid {kind} id "
                "(1-128 letters, digits, '_', '@', '+' or '-')"
            )
        return value

    def _tier(self, claims: Mapping[str, Any]) -> str:
        value = claims.get(self.tier_claim)
        if value is None:
            return DEFAULT_TIER
        if not isinstance(value, str) or not TIER_PATTERN.fullmatch(value):
            raise CredentialError(
                f"invalid token: claim {self.tier_claim!r} is not a valid tier name "
                "(1-64 letters, digits, '_' or '-')"
            )
        return value

    def _scopes(self, claims: Mapping[str, Any]) -> frozenset[str]:
        value = claims.get(self.scopes_claim, [])
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise CredentialError(
                f"invalid token: claim {self.scopes_claim!r} must be a space-separated string "
                "or a list of strings"
            )
        return frozenset(s for s in value if SCOPE_PATTERN.fullmatch(s))


# -- Authenticators ---------------------------------------------------------------------------


def _bearer(authorization: str | None, *, expected: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``None`` if the header is absent."""
    if authorization is None or not authorization.strip():
        return None
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise CredentialError(
            f"unsupported Authorization header: send Authorization: Bearer <{expected}>"
        )
    return parts[1]


class Authenticator(ABC):
    """Turns a request's credential headers into an :class:`Identity`."""

    @abstractmethod
    async def authenticate(self, authorization: str | None, api_key: str | None) -> Identity:
        """The identity proved by the ``Authorization`` and ``X-Api-Key`` header values
        (``None`` when absent).

        Raises:
            CredentialError: the credential is missing or bad.
        """


class LocalAuthenticator(Authenticator):
    """``BULWARK_AUTH=none``: every request is :data:`LOCAL_IDENTITY`, nothing is checked."""

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Identity:
        """Always :data:`LOCAL_IDENTITY`."""
        return LOCAL_IDENTITY


class ApiKeyAuthenticator(Authenticator):
    """``BULWARK_AUTH=keys``: an API key as ``Authorization: Bearer bwk_...`` or, when that
    header is absent, as ``X-Api-Key``."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Identity:
        """The identity of the API key sent; ``Authorization`` wins over ``X-Api-Key``."""
        key = _bearer(authorization, expected="API key")
        if key is None and api_key is not None and api_key.strip():
            key = api_key.strip()
        if key is None:
            raise CredentialError(
                "missing credentials: send Authorization: Bearer <API key> or X-Api-Key: <API key>"
            )
        return self.keys.verify(key)


class JwtAuthenticator(Authenticator):
    """``BULWARK_AUTH=jwt``: a JWT as ``Authorization: Bearer <token>``."""

    def __init__(self, verifier: JwtVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Identity:
        """The identity of the bearer token; ``X-Api-Key`` is not a credential here."""
        token = _bearer(authorization, expected="token")
        if token is None:
            raise CredentialError("missing credentials: send Authorization: Bearer <token>")
        return await self.verifier.averify(token)


def authenticator(settings: Settings) -> Authenticator:
    """The authenticator for ``settings.auth``.

    Raises:
        ConfigError: the JWT settings are unusable (a short secret, an unreadable JWKS
            file); settings already refuse both or neither key source.
    """
    if settings.auth == "none":
        return LocalAuthenticator()
    if settings.auth == "keys":
        return ApiKeyAuthenticator(ApiKeys(settings.resolved_api_keys_file))
    try:
        verifier = JwtVerifier(
            secret=None if settings.jwt_secret is None else settings.jwt_secret.get_secret_value(),
            jwks=settings.jwt_jwks,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            tenant_claim=settings.jwt_tenant_claim,
            user_claim=settings.jwt_user_claim,
            scopes_claim=settings.jwt_scopes_claim,
            tier_claim=settings.jwt_tier_claim,
        )
    except ValueError as exc:
        variable = "BULWARK_JWT_SECRET" if settings.jwt_secret is not None else "BULWARK_JWT_JWKS"
        raise ConfigError(f"{variable}: {exc}") from None
    return JwtAuthenticator(verifier)
