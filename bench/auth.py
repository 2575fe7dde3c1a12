"""Latency of authenticating one request, per credential kind.

Times ``Authenticator.authenticate`` (what the server runs on every request) for an API
key (``BULWARK_AUTH=keys``, a key file of ``--keys`` keys), an HS256 JWT, and RS256 and
ES256 JWTs checked against a JWKS file; and, in the same run, a baseline of a bare dict
lookup plus ``hashlib.sha256`` of a key secret, the least any key check costs, and pyjwt's
``jwt.decode`` of the HS256 token alone, the least any JWT check costs. Each row is
warmed up, then timed over ``--n`` calls, one awaited call at a time; the table gives p50
and p99 in microseconds and the p50 as a multiple of the baseline's.

    .venv/bin/python bench/auth.py [--n 20000] [--keys 100]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cryptography
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bulwark.server.credentials import ApiKeys, authenticator
from bulwark.settings import load_settings

SECRET = secrets.token_urlsafe(32)
CLAIMS = {"sub": "ada", "tenant_id": "acme", "scope": "admin read"}


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49], q[98]


def timed_sync(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(n // 10, 1000)):  # warm-up
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


async def timed_async(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(min(n // 10, 1000)):
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def baseline(n: int) -> list[float]:
    """A dict lookup by key id and the SHA-256 of the secret: the floor of any key check."""
    table = {secrets.token_hex(6): secrets.token_hex(32) for _ in range(100)}
    key_id = next(iter(table))
    secret = secrets.token_urlsafe(32).encode()

    def check() -> bool:
        return table[key_id] == hashlib.sha256(secret).hexdigest()

    return timed_sync(check, n)


def jwks_signers(directory: Path) -> tuple[Path, dict[str, Any]]:
    """A JWKS file with one RSA (2048) and one P-256 key, and their private keys by algorithm."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True) | {"kid": "rsa", "use": "sig"},
        ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True) | {"kid": "ec", "use": "sig"},
    ]
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return path, {"RS256": rsa_key, "ES256": ec_key}


async def rows(directory: Path, *, n: int, key_count: int) -> list[tuple[str, list[float]]]:
    settings = load_settings(data_dir=directory, auth="keys")
    api_keys = authenticator(settings)
    store = ApiKeys(settings.resolved_api_keys_file)
    key = ""
    for i in range(key_count):
        key = store.create(tenant_id="acme", user_id=f"user-{i}", scopes=["read"])[1]
    exp = {"exp": int(time.time()) + 3600}
    hs = authenticator(load_settings(data_dir=directory, auth="jwt", jwt_secret=SECRET))
    hs_token = jwt.encode(CLAIMS | exp, SECRET, algorithm="HS256")
    jwks, private = jwks_signers(directory)
    asym = authenticator(load_settings(data_dir=directory, auth="jwt", jwt_jwks=str(jwks)))
    rs_token = jwt.encode(CLAIMS | exp, private["RS256"], algorithm="RS256", headers={"kid": "rsa"})
    es_token = jwt.encode(CLAIMS | exp, private["ES256"], algorithm="ES256", headers={"kid": "ec"})
    return [
        ("baseline: dict lookup + SHA-256", baseline(n)),
        (f"API key (`Bearer bwk_...`, file of {key_count} keys)",
         await timed_async(lambda: api_keys.authenticate(f"Bearer {key}", None), n)),
        ("HS256 JWT", await timed_async(lambda: hs.authenticate(f"Bearer {hs_token}", None), n)),
        ("reference: `jwt.decode` of the HS256 JWT alone",
         timed_sync(lambda: jwt.decode(hs_token, SECRET, algorithms=["HS256"]), n)),
        ("RS256 JWT (RSA 2048, JWKS file)",
         await timed_async(lambda: asym.authenticate(f"Bearer {rs_token}", None), n)),
        ("ES256 JWT (P-256, JWKS file)",
         await timed_async(lambda: asym.authenticate(f"Bearer {es_token}", None), n)),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="timed calls per row")
    parser.add_argument("--keys", type=int, default=100, help="keys in the API-key file")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as directory:
        results = asyncio.run(rows(Path(directory), n=args.n, key_count=args.keys))
    print(
        f"Authentication latency, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
        f"({platform.machine()}), Python {platform.python_version()}, pyjwt {jwt.__version__}, "
        f"cryptography {cryptography.__version__}; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after. N = {args.n} calls per row.\n"
    )
    base_p50 = percentiles(results[0][1])[0]
    print("| credential | p50 µs | p99 µs | p50 / baseline |\n|---|---:|---:|---:|")
    for label, samples in results:
        p50, p99 = percentiles(samples)
        print(f"| {label} | {p50:.1f} | {p99:.1f} | {p50 / base_p50:.1f}x |")


if __name__ == "__main__":
    main()
