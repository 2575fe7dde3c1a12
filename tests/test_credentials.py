"""Server credentials: API keys on file, JWTs (HS256, and RS256/ES256 from a JWKS file or
URL), the authenticator of each ``BULWARK_AUTH`` mode, and ``bulwark keys``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bulwark.cli.main import main
from bulwark.server import credentials
from bulwark.server.credentials import (
    KEY_PATTERN,
    LOCAL_IDENTITY,
    ApiKeyAuthenticator,
    ApiKeys,
    CredentialError,
    Identity,
    JwtAuthenticator,
    JwtVerifier,
    LocalAuthenticator,
    authenticator,
    validate_id,
    validate_scope,
)
from bulwark.settings import ConfigError, load_settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- ids and scopes -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["acme", "ada@example", "u_1+x-2", "A" * 128])
def test_valid_ids(value: str) -> None:
    assert validate_id("tenant", value) == value


@pytest.mark.parametrize("value", ["", "a.b", "ada@example.com", "a b", "a/b", "a\n", "é", "A" * 129])
def test_invalid_ids_name_the_kind_and_the_rule(value: str) -> None:
    with pytest.raises(ValueError, match=r"invalid user id .*use 1-128 letters, digits, '_', '@', '\+' or '-'"):
        validate_id("user", value)


@pytest.mark.parametrize("value", ["admin", "read:threads", "a", "x_y-z9"])
def test_valid_scopes(value: str) -> None:
    assert validate_scope(value) == value


@pytest.mark.parametrize("value", ["", "Admin", "9lives", "read threads", "admin\n", "a" * 65])
def test_invalid_scopes(value: str) -> None:
    with pytest.raises(ValueError, match="invalid scope"):
        validate_scope(value)


def test_identity_is_admin_only_with_the_admin_scope() -> None:
    base = {"tenant_id": "t", "user_id": "u", "credential": "c"}
    assert Identity(scopes=frozenset({"admin", "read"}), **base).is_admin
    assert not Identity(scopes=frozenset({"read"}), **base).is_admin


# -- API keys ---------------------------------------------------------------------------------


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "api_keys.json"


def test_created_key_verifies_as_its_owner(keys_file: Path) -> None:
    keys = ApiKeys(keys_file, clock=lambda: T0)
    info, key = keys.create(tenant_id="acme", user_id="ada", scopes=["admin", "read"])
    match = KEY_PATTERN.fullmatch(key)
    assert match is not None and match[1] == info.key_id
    assert len(match[2]) >= 43  # 32 random bytes
    assert info.created_at == T0 and info.active
    assert keys.verify(key) == Identity(
        tenant_id="acme", user_id="ada", scopes=frozenset({"admin", "read"}), credential=info.key_id
    )
    assert keys.list() == [info]


def test_key_file_holds_no_secret_and_is_private(keys_file: Path) -> None:
    info, key = ApiKeys(keys_file).create(tenant_id="acme", user_id="ada")
    secret = KEY_PATTERN.fullmatch(key)[2]  # type: ignore[index]
    data = keys_file.read_bytes()
    assert secret.encode() not in data and key.encode() not in data
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in data
    assert info.key_id.encode() in data
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((keys_file.parent / "api_keys.json.lock").stat().st_mode) == 0o600
    # No temporary file is left behind.
    assert {p.name for p in keys_file.parent.iterdir()} == {"api_keys.json", "api_keys.json.lock"}


def test_revocation_by_another_instance_takes_effect_on_the_next_verify(keys_file: Path) -> None:
    server = ApiKeys(keys_file)
    cli = ApiKeys(keys_file, clock=lambda: T0)
    info, key = cli.create(tenant_id="acme", user_id="ada")
    other_info, other_key = cli.create(tenant_id="acme", user_id="bob")
    assert server.verify(key).user_id == "ada"  # the server has the file cached now
    assert cli.revoke(info.key_id) is True
    with pytest.raises(CredentialError, match=f"API key {info.key_id} is revoked"):
        server.verify(key)
    assert server.verify(other_key).user_id == "bob"
    listed = {i.key_id: i for i in server.list()}
    assert listed[info.key_id].revoked_at == T0 and not listed[info.key_id].active
    assert listed[other_info.key_id].active


def test_revoke_is_idempotent_and_false_for_unknown_ids(keys_file: Path) -> None:
    times = iter([T0, T0.replace(hour=5), T0.replace(hour=6)])
    keys = ApiKeys(keys_file, clock=lambda: next(times))
    info, _ = keys.create(tenant_id="acme", user_id="ada")
    assert keys.revoke(info.key_id) and keys.revoke(info.key_id)
    assert keys.list()[0].revoked_at == T0.replace(hour=5)  # the first revocation stands
    assert keys.revoke("AAAAAAAAAAAA") is False
    assert ApiKeys(keys_file.with_name("none.json")).revoke(info.key_id) is False


def test_verify_rereads_the_file_only_when_it_changed(keys_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = ApiKeys(keys_file)
    _, key = keys.create(tenant_id="acme", user_id="ada")
    keys.verify(key)
    reads: list[bytes] = []
    parse = keys._parse
    monkeypatch.setattr(keys, "_parse", lambda data: reads.append(data) or parse(data))
    for _ in range(5):
        keys.verify(key)
    assert reads == []
    ApiKeys(keys_file).create(tenant_id="acme", user_id="bob")
    keys.verify(key)
    assert len(reads) == 1


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: "",
        lambda k: "bwk_",
        lambda k: k[:-1][: len("bwk_") + 12 + 1 + 42],  # secret too short
        lambda k: "bwx" + k[3:],  # wrong prefix
        lambda k: k[:8] + k[9:],  # key id of 11 characters
        lambda k: k + " ",
        lambda k: f"Bearer {k}",
        lambda k: k[:-1] + "é",
        lambda k: k + "x" * 200,  # absurdly long
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(keys_file: Path, mangle: Any) -> None:
    keys = ApiKeys(keys_file)
    _, key = keys.create(tenant_id="acme", user_id="ada")
    bad = mangle(key)
    with pytest.raises(CredentialError, match="^malformed API key") as caught:
        keys.verify(bad)
    assert key[16:] not in str(caught.value)


def test_wrong_secret_and_unknown_id_are_unknown_keys(keys_file: Path) -> None:
    keys = ApiKeys(keys_file)
    _, key = keys.create(tenant_id="acme", user_id="ada")
    flipped = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in (flipped, "bwk_AAAAAAAAAAAA_" + key[17:]):
        with pytest.raises(CredentialError, match="^unknown API key$"):
            keys.verify(bad)
    with pytest.raises(CredentialError, match="^unknown API key$"):
        ApiKeys(keys_file.with_name("absent.json")).verify(key)


def test_create_validates_owner_and_scopes(keys_file: Path) -> None:
    keys = ApiKeys(keys_file)
    with pytest.raises(ValueError, match="invalid tenant id 'a.b'"):
        keys.create(tenant_id="a.b", user_id="ada")
    with pytest.raises(ValueError, match="invalid user id"):
        keys.create(tenant_id="acme", user_id="")
    with pytest.raises(ValueError, match="invalid scope 'Admin'"):
        keys.create(tenant_id="acme", user_id="ada", scopes=["Admin"])
    assert not keys_file.exists()


def test_concurrent_creates_lose_no_key(keys_file: Path) -> None:
    made: list[str] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            store = ApiKeys(keys_file)  # one instance per thread, as separate processes would
            for i in range(10):
                made.append(store.create(tenant_id="acme", user_id=f"u{n}-{i}")[1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    keys = ApiKeys(keys_file)
    assert len(keys.list()) == len(made) == 80
    assert {keys.verify(key).user_id for key in made} == {f"u{n}-{i}" for n in range(8) for i in range(10)}


def test_corrupt_key_file_is_a_server_error_not_a_credential_error(keys_file: Path) -> None:
    keys = ApiKeys(keys_file)
    _, key = keys.create(tenant_id="acme", user_id="ada")
    keys_file.write_text("{not json")
    with pytest.raises(ValueError, match="is not an API-key file") as caught:
        keys.verify(key)
    assert not isinstance(caught.value, CredentialError)


# -- JWTs: HS256 ------------------------------------------------------------------------------


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "ada", "tenant_id": "acme", "exp": int(time.time()) + 300, **extra}


def hs256(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def refused(verifier: JwtVerifier, token: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message) as caught:
        verifier.verify(token)
    assert token not in str(caught.value)


def test_hs256_token_gives_its_identity() -> None:
    verifier = JwtVerifier(secret=SECRET)
    identity = verifier.verify(hs256(claims(scope="admin read:threads", jti="t-1")))
    assert identity == Identity(
        tenant_id="acme", user_id="ada", scopes=frozenset({"admin", "read:threads"}), credential="jwt:t-1"
    )
    assert identity.is_admin
    assert verifier.verify(hs256(claims(scope=["read"]))).scopes == frozenset({"read"})
    no_scopes = verifier.verify(hs256(claims()))
    assert no_scopes.scopes == frozenset() and no_scopes.credential == "jwt:ada"


def test_expired_token_is_refused_unless_within_the_leeway() -> None:
    token = hs256(claims(exp=int(time.time()) - 60))
    refused(JwtVerifier(secret=SECRET), token, "^invalid token: expired$")
    assert JwtVerifier(secret=SECRET, leeway=120).verify(token).user_id == "ada"


def test_token_without_exp_is_refused() -> None:
    payload = claims()
    del payload["exp"]
    refused(JwtVerifier(secret=SECRET), hs256(payload), "missing the 'exp' claim")


def test_token_not_valid_yet_is_refused() -> None:
    refused(JwtVerifier(secret=SECRET), hs256(claims(nbf=int(time.time()) + 600)), "not valid yet")
    refused(JwtVerifier(secret=SECRET), hs256(claims(iat=int(time.time()) + 600)), "not valid yet")


def test_audience_is_checked_when_configured() -> None:
    verifier = JwtVerifier(secret=SECRET, audience="bulwark")
    assert verifier.verify(hs256(claims(aud="bulwark"))).user_id == "ada"
    assert verifier.verify(hs256(claims(aud=["other", "bulwark"]))).user_id == "ada"
    refused(verifier, hs256(claims(aud="other")), "audience not accepted")
    refused(verifier, hs256(claims()), "missing the 'aud' claim")
    refused(JwtVerifier(secret=SECRET), hs256(claims(aud="other")), "audience not accepted")


def test_issuer_is_checked_when_configured() -> None:
    verifier = JwtVerifier(secret=SECRET, issuer="https://idp.example")
    assert verifier.verify(hs256(claims(iss="https://idp.example"))).user_id == "ada"
    refused(verifier, hs256(claims(iss="https://evil.example")), "issuer not accepted")
    refused(verifier, hs256(claims()), "missing the 'iss' claim")


def test_wrong_secret_is_a_bad_signature() -> None:
    refused(JwtVerifier(secret=SECRET), hs256(claims(), secret=SECRET + "x"), "bad signature")


def test_unsigned_and_other_algorithm_tokens_are_refused() -> None:
    verifier = JwtVerifier(secret=SECRET)
    refused(verifier, jwt.encode(claims(), None, algorithm="none"), "algorithm not accepted")
    refused(verifier, jwt.encode(claims(), SECRET * 2, algorithm="HS512"), "algorithm not accepted")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_garbage_is_not_a_jwt(token: str) -> None:
    with pytest.raises(CredentialError, match="^invalid token"):
        JwtVerifier(secret=SECRET).verify(token)


def test_missing_or_invalid_tenant_and_user_are_refused() -> None:
    verifier = JwtVerifier(secret=SECRET)
    no_tenant = claims()
    del no_tenant["tenant_id"]
    refused(verifier, hs256(no_tenant), "no 'tenant_id' claim \\(the tenant\\)")
    no_user = claims()
    del no_user["sub"]
    refused(verifier, hs256(no_user), "no 'sub' claim \\(the user\\)")
    refused(verifier, hs256(claims(tenant_id="acme.corp")), "claim 'tenant_id' is not a valid tenant id")
    refused(verifier, hs256(claims(tenant_id=7)), "claim 'tenant_id' is not a valid tenant id")
    refused(verifier, hs256(claims(sub="ada@example.com")), "claim 'sub' is not a valid user id")


def test_scopes_claim_must_be_a_string_or_a_list_and_bad_names_are_dropped() -> None:
    verifier = JwtVerifier(secret=SECRET)
    refused(verifier, hs256(claims(scope=7)), "claim 'scope' must be")
    refused(verifier, hs256(claims(scope=["read", 7])), "claim 'scope' must be")
    kept = verifier.verify(hs256(claims(scope="read https://api.example/Write ADMIN admin")))
    assert kept.scopes == frozenset({"read", "admin"})


def test_claim_names_are_configurable() -> None:
    verifier = JwtVerifier(secret=SECRET, tenant_claim="org", user_claim="uid", scopes_claim="perms")
    token = hs256({"org": "acme", "uid": "u-7", "perms": ["admin"], "exp": int(time.time()) + 60})
    assert verifier.verify(token) == Identity(
        tenant_id="acme", user_id="u-7", scopes=frozenset({"admin"}), credential="jwt:u-7"
    )
    refused(verifier, hs256(claims()), "no 'org' claim")


def test_verifier_configuration_errors() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JwtVerifier()
    with pytest.raises(ValueError, match="exactly one"):
        JwtVerifier(secret=SECRET, jwks="keys.json")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        JwtVerifier(secret="short")
    with pytest.raises(ValueError, match="leeway"):
        JwtVerifier(secret=SECRET, leeway=-1)


def test_averify_matches_verify_for_hs256() -> None:
    verifier = JwtVerifier(secret=SECRET)
    token = hs256(claims())
    assert run(verifier.averify(token)) == verifier.verify(token)
    with pytest.raises(CredentialError, match="expired"):
        run(verifier.averify(hs256(claims(exp=1))))


# -- JWTs: RS256 / ES256 with a JWKS ----------------------------------------------------------


class Signer:
    """A private key and the public JWK the verifier is given."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.algorithm = kind
        self.jwk |= {"kid": kid, "use": "sig"}

    def sign(self, payload: dict[str, Any], *, kid: str | None = "", algorithm: str | None = None) -> str:
        headers = {} if kid is None else {"kid": kid or self.kid}
        return jwt.encode(payload, self.private, algorithm=algorithm or self.algorithm, headers=headers)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {"RS256": Signer("RS256", "rsa-1"), "ES256": Signer("ES256", "ec-1")}


@pytest.fixture
def jwks_file(tmp_path: Path, signers: dict[str, Signer]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [s.jwk for s in signers.values()]}))
    return path


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hs256(payload: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token "signed" with a public key as the HMAC secret (pyjwt will not make one)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_jwks_file_tokens_verify(jwks_file: Path, signers: dict[str, Signer], algorithm: str) -> None:
    verifier = JwtVerifier(jwks=str(jwks_file), audience="bulwark")
    token = signers[algorithm].sign(claims(aud="bulwark", scope="admin"))
    identity = verifier.verify(token)
    assert (identity.tenant_id, identity.user_id, identity.is_admin) == ("acme", "ada", True)
    assert run(verifier.averify(token)) == identity
    refused(verifier, signers[algorithm].sign(claims(aud="bulwark", exp=int(time.time()) - 5)), "expired")


def test_rs256_verifier_refuses_hs256_signed_with_the_public_key(
    jwks_file: Path, signers: dict[str, Signer]
) -> None:
    verifier = JwtVerifier(jwks=str(jwks_file))
    rsa_signer = signers["RS256"]
    for secret in (rsa_signer.public_pem(), json.dumps(rsa_signer.jwk).encode()):
        refused(verifier, forge_hs256(claims(), secret, rsa_signer.kid), "algorithm not accepted")


def test_each_jwks_key_verifies_only_its_own_algorithm(jwks_file: Path, signers: dict[str, Signer]) -> None:
    verifier = JwtVerifier(jwks=str(jwks_file))
    # Signed by the EC key but naming the RSA key, and the other way round.
    refused(verifier, signers["ES256"].sign(claims(), kid="rsa-1"), "algorithm not accepted")
    refused(verifier, signers["RS256"].sign(claims(), kid="ec-1"), "algorithm not accepted")
    refused(verifier, signers["RS256"].sign(claims(), algorithm="RS512"), "algorithm not accepted")


def test_jwks_tokens_must_name_a_known_key(jwks_file: Path, signers: dict[str, Signer]) -> None:
    verifier = JwtVerifier(jwks=str(jwks_file))
    refused(verifier, signers["RS256"].sign(claims(), kid="rsa-2"), "unknown signing key")
    refused(verifier, signers["RS256"].sign(claims(), kid=None), "no key id")
    stranger = Signer("RS256", "rsa-1")  # same kid, different key
    refused(verifier, stranger.sign(claims()), "bad signature")


def test_jwks_file_without_usable_keys_is_a_configuration_error(tmp_path: Path, signers: dict[str, Signer]) -> None:
    oct_only = tmp_path / "oct.json"
    oct_only.write_text(json.dumps({"keys": [{"kty": "oct", "k": b64(b"x" * 32), "kid": "h"}]}))
    no_kid = tmp_path / "nokid.json"
    no_kid.write_text(json.dumps({"keys": [{k: v for k, v in signers["RS256"].jwk.items() if k != "kid"}]}))
    for path in (oct_only, no_kid):
        with pytest.raises(ValueError, match="no RS256/ES256 signing key"):
            JwtVerifier(jwks=str(path))
    with pytest.raises(ValueError, match="cannot load the JWKS file"):
        JwtVerifier(jwks=str(tmp_path / "absent.json"))


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts its requests."""

    def __init__(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def jwks_server(signers: dict[str, Signer]) -> Iterator[JwksServer]:
    server = JwksServer({"keys": [s.jwk for s in signers.values()]})
    yield server
    server.close()


def test_jwks_url_is_fetched_off_the_loop_once_then_served_from_cache(
    jwks_server: JwksServer, signers: dict[str, Signer], monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counting(func: Any, /, *args: Any) -> Any:
        hops.append(func.__name__)
        return await to_thread(func, *args)

    monkeypatch.setattr(credentials.asyncio, "to_thread", counting)
    verifier = JwtVerifier(jwks=jwks_server.url)
    for token in (
        jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa-1"}),
        forge_hs256(claims(), signers["RS256"].public_pem(), "rsa-1"),
    ):
        with pytest.raises(CredentialError, match="algorithm not accepted"):
            run(verifier.averify(token))
    assert jwks_server.requests == 0  # refused on its header, before any key lookup

    async def scenario() -> list[Identity]:
        tokens = [signers[a].sign(claims(sub=f"u{i}")) for i in range(3) for a in ("RS256", "ES256")]
        return [await verifier.averify(token) for token in tokens]

    identities = run(scenario())
    assert [i.user_id for i in identities] == ["u0", "u0", "u1", "u1", "u2", "u2"]
    assert jwks_server.requests == 1
    assert len(hops) == 1  # only the first token waited for the fetch, in a worker thread
    assert verifier.verify(signers["RS256"].sign(claims())).user_id == "ada"
    assert jwks_server.requests == 1
    with pytest.raises(CredentialError, match="unknown signing key"):
        run(verifier.averify(signers["RS256"].sign(claims(), kid="rotated-away")))
    assert jwks_server.requests == 1  # pyjwt's cooldown: no refetch for every unknown kid


def test_unreachable_jwks_url_is_a_server_fault_not_a_credential_error(signers: dict[str, Signer]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = JwtVerifier(jwks=f"http://127.0.0.1:{port}/jwks.json")
    with pytest.raises(jwt.PyJWKClientConnectionError):
        run(verifier.averify(signers["RS256"].sign(claims())))


# -- authenticators ---------------------------------------------------------------------------


def test_auth_none_is_the_local_admin_without_any_check(tmp_path: Path) -> None:
    auth = authenticator(load_settings(data_dir=tmp_path))
    assert isinstance(auth, LocalAuthenticator)
    for headers in ((None, None), ("Bearer junk", "junk"), ("Basic eA==", None)):
        assert run(auth.authenticate(*headers)) == LOCAL_IDENTITY
    assert LOCAL_IDENTITY == Identity(
        tenant_id="default", user_id="anonymous", scopes=frozenset({"admin"}), credential="local"
    )


def test_auth_keys_accepts_bearer_or_x_api_key(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, auth="keys")
    info, key = ApiKeys(settings.resolved_api_keys_file).create(tenant_id="acme", user_id="ada")
    auth = authenticator(settings)
    assert isinstance(auth, ApiKeyAuthenticator)
    assert run(auth.authenticate(f"Bearer {key}", None)).credential == info.key_id
    assert run(auth.authenticate(f"bearer  {key} ", None)).user_id == "ada"
    assert run(auth.authenticate(None, key)).user_id == "ada"
    # Authorization wins: the LangGraph SDK may send a LangSmith key as X-Api-Key too.
    assert run(auth.authenticate(f"Bearer {key}", "lsv2_something")).user_id == "ada"
    for authorization, api_key, message in (
        (None, None, "^missing credentials: send Authorization: Bearer <API key> or X-Api-Key"),
        ("", "  ", "^missing credentials"),
        (f"Basic {key}", None, "^unsupported Authorization header: send Authorization: Bearer <API key>"),
        ("Bearer", None, "^unsupported Authorization header"),
        (f"Bearer {key} extra", None, "^unsupported Authorization header"),
        ("Bearer eyJhbGciOi.e30.x", None, "^malformed API key"),
    ):
        with pytest.raises(CredentialError, match=message) as caught:
            run(auth.authenticate(authorization, api_key))
        assert key not in str(caught.value)
    ApiKeys(settings.resolved_api_keys_file).revoke(info.key_id)
    with pytest.raises(CredentialError, match="revoked"):
        run(auth.authenticate(None, key))


def test_auth_jwt_takes_bearer_tokens_only(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, auth="jwt", jwt_secret=SECRET, jwt_audience="bulwark")
    auth = authenticator(settings)
    assert isinstance(auth, JwtAuthenticator)
    token = hs256(claims(aud="bulwark"))
    assert run(auth.authenticate(f"Bearer {token}", None)).tenant_id == "acme"
    with pytest.raises(CredentialError, match="^missing credentials: send Authorization: Bearer <token>$"):
        run(auth.authenticate(None, token))
    with pytest.raises(CredentialError, match="audience not accepted"):
        run(auth.authenticate(f"Bearer {hs256(claims(aud='other'))}", None))


def test_auth_jwt_with_a_jwks_file_and_custom_claims(tmp_path: Path, jwks_file: Path, signers: dict[str, Signer]) -> None:
    settings = load_settings(
        data_dir=tmp_path, auth="jwt", jwt_jwks=str(jwks_file), jwt_issuer="https://idp.example",
        jwt_tenant_claim="org", jwt_user_claim="uid", jwt_scopes_claim="roles",
    )
    token = signers["ES256"].sign(
        {"org": "acme", "uid": "u1", "roles": ["admin"], "iss": "https://idp.example", "exp": int(time.time()) + 60}
    )
    identity = run(authenticator(settings).authenticate(f"Bearer {token}", None))
    assert (identity.tenant_id, identity.user_id, identity.is_admin) == ("acme", "u1", True)


def test_unusable_jwt_settings_are_configuration_errors(tmp_path: Path, jwks_file: Path) -> None:
    with pytest.raises(ConfigError, match="BULWARK_JWT_SECRET: the HS256 secret must be at least 32 bytes"):
        authenticator(load_settings(data_dir=tmp_path, auth="jwt", jwt_secret="short"))
    with pytest.raises(ConfigError, match="needs one of BULWARK_JWT_SECRET"):
        load_settings(data_dir=tmp_path, auth="jwt", jwt_secret=SECRET, jwt_jwks=str(jwks_file))
    with pytest.raises(ConfigError, match="needs one of BULWARK_JWT_SECRET"):
        load_settings(data_dir=tmp_path, auth="jwt")
    with pytest.raises(ConfigError, match="BULWARK_JWT_JWKS: cannot load"):
        authenticator(load_settings(data_dir=tmp_path, auth="jwt", jwt_jwks=str(tmp_path / "absent.json")))


# -- bulwark keys -----------------------------------------------------------------------------


def keys_at(cwd: Path) -> ApiKeys:
    return ApiKeys(cwd / ".bulwark" / "api_keys.json")


def test_cli_create_prints_the_key_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "acme", "--user", "ada", "--scope", "admin", "--scope", "read"]) == 0
    out, err = capsys.readouterr()
    assert out.endswith("\n") and out.count("\n") == 1
    key = out.strip()
    assert KEY_PATTERN.fullmatch(key)
    assert "for user 'ada' (tenant 'acme'); store it now, it is not shown again" in err
    assert key not in err
    identity = keys_at(tmp_path).verify(key)
    assert (identity.tenant_id, identity.user_id, identity.scopes) == ("acme", "ada", frozenset({"admin", "read"}))


def test_cli_list_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "create", "--tenant", "acme", "--user", "ada", "--scope", "admin"])
    main(["keys", "create", "--user", "bob"])
    ada_key, bob_key = capsys.readouterr().out.split()
    ada_id = ada_key[4:16]
    assert main(["keys", "list"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{ada_id}  tenant=acme  user=ada  scopes=admin  created ")
    assert lines[0].endswith("active") and "tenant=default  user=bob  scopes=-" in lines[1]
    for key in (ada_key, bob_key):
        assert key[17:] not in out + err

    assert main(["keys", "revoke", ada_id]) == 0
    assert capsys.readouterr().out == f"revoked API key {ada_id}\n"
    with pytest.raises(CredentialError, match="revoked"):
        keys_at(tmp_path).verify(ada_key)
    main(["keys", "list"])
    assert " revoked 20" in capsys.readouterr().out.splitlines()[0]


def test_cli_revoke_of_an_unknown_id_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "revoke", "AAAAAAAAAAAA"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("bulwark: error: unknown API key id 'AAAAAAAAAAAA'") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "acme.corp", "--user", "ada"], "argument --tenant: invalid tenant id 'acme.corp'"),
        (["--user", "a b"], "argument --user: invalid user id 'a b'"),
        (["--user", "ada", "--scope", "Admin"], "argument --scope: invalid scope 'Admin'"),
    ],
)
def test_cli_create_with_bad_ids_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", *args])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and err.count("\n") == 1
    assert not (tmp_path / ".bulwark").exists()


@pytest.mark.slow
def test_cli_create_in_a_real_process_prints_only_the_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    result = subprocess.run(
        [sys.executable, "-m", "bulwark.cli.main", "keys", "create", "--user", "ada"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert KEY_PATTERN.fullmatch(result.stdout.removesuffix("\n"))
    assert keys_at(tmp_path).verify(result.stdout.strip()).user_id == "ada"
