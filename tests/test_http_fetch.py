"""http_fetch: allowlist, SSRF refusals, pinned connections, redirects and caps.

Everything runs against servers on 127.0.0.1 started here, or against ``httpx.MockTransport``;
host names are mapped to addresses by an injected resolver, so no test touches real DNS or
the internet. Loopback is refused by default, so tests that must reach the local server pass
``refuse=LOCAL_OK`` (every default category except loopback).
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from langchain_core.tools import BaseTool, ToolException

from bulwark.tools.http_fetch import (
    DEFAULT_REFUSED,
    address_problem,
    make_http_fetch,
)

LOCAL_OK = DEFAULT_REFUSED - {"loopback"}
BIG = b"x" * 100_000


class FakeResolver:
    """A DNS stand-in: a mapping from host to addresses that records every lookup."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return self.table[host]


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes for the local test server; records (path, Host header) of every request."""

    seen: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str | None = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        host = self.headers.get("Host", "")
        Handler.seen.append((self.path, host))
        port = self.server.server_address[1]
        routes = {
            "/page": lambda: self._send(200, b"<h1>hello</h1>", "text/html; charset=utf-8"),
            "/host": lambda: self._send(200, host.encode()),
            "/json": lambda: self._send(200, b'{"ok": true}', "application/json"),
            "/latin1": lambda: self._send(200, "café".encode("latin-1"),
                                          "text/plain; charset=iso-8859-1"),
            "/utf8": lambda: self._send(200, "é".encode() * 1000, "text/plain; charset=utf-8"),
            "/big": lambda: self._send(200, BIG),
            "/image": lambda: self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png"),
            "/untyped-binary": lambda: self._send(200, b"\x00\x01\x02\xff" * 10, None),
            "/untyped-text": lambda: self._send(200, b"plain words", None),
            "/missing": lambda: self._send(404, b"nope"),
            "/boom": lambda: self._send(503, b"down"),
            "/redirect": lambda: self._send(302, headers={"Location": "/page"}),
            "/redirect-abs": lambda: self._send(
                301, headers={"Location": f"http://sub.allowed.test:{port}/host"}),
            "/redirect-evil": lambda: self._send(
                302, headers={"Location": f"http://evil.test:{port}/page"}),
            "/redirect-metadata": lambda: self._send(
                302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}),
            "/redirect-file": lambda: self._send(302, headers={"Location": "file:///etc/passwd"}),
            "/redirect-private-name": lambda: self._send(
                307, headers={"Location": f"http://internal.allowed.test:{port}/page"}),
            "/loop": lambda: self._send(302, headers={"Location": "/loop"}),
            "/no-location": lambda: self._send(302),
        }
        if self.path.startswith("/chain/"):
            left = int(self.path.rsplit("/", 1)[1])
            target = "/page" if left == 0 else f"/chain/{left - 1}"
            self._send(302, headers={"Location": target})
        elif self.path == "/drip":  # a byte every 50 ms: no single read ever times out
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"d")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        elif self.path in routes:
            routes[self.path]()
        else:
            self._send(404, b"no such route")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver({
        "allowed.test": ["127.0.0.1"],
        "sub.allowed.test": ["127.0.0.1"],
        "internal.allowed.test": ["10.0.0.1"],
        "evil.test": ["127.0.0.1"],
    })


def local_tool(resolver: FakeResolver, **overrides: object) -> BaseTool:
    options: dict[str, object] = {
        "allowed_domains": ["allowed.test"],
        "max_bytes": 10_000,
        "timeout_s": 5.0,
        "resolver": resolver,
        "refuse": LOCAL_OK,
    }
    options.update(overrides)
    return make_http_fetch(**options)  # type: ignore[arg-type]


def fetch(tool: BaseTool, url: str) -> str:
    return tool.invoke({"url": url})


def refused(tool: BaseTool, url: str) -> str:
    with pytest.raises(ToolException) as info:
        tool.invoke({"url": url})
    return str(info.value)


def no_network() -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a refused URL was requested: {request.url}")

    return httpx.MockTransport(handler)


# -- success paths against the local server ---------------------------------------------------


def test_fetches_a_page_with_the_real_host_header(server: int, resolver: FakeResolver) -> None:
    tool = local_tool(resolver)
    assert tool.name == "http_fetch"
    assert fetch(tool, f"http://allowed.test:{server}/page") == "<h1>hello</h1>"
    assert fetch(tool, f"http://allowed.test:{server}/host") == f"allowed.test:{server}"
    assert fetch(tool, f"http://allowed.test:{server}/json") == '{"ok": true}'


def test_host_matching_is_case_insensitive_and_allows_subdomains(
    server: int, resolver: FakeResolver
) -> None:
    tool = local_tool(resolver, allowed_domains=["Allowed.TEST."])
    assert fetch(tool, f"http://ALLOWED.test.:{server}/host") == f"allowed.test:{server}"
    assert fetch(tool, f"http://sub.allowed.test:{server}/host") == f"sub.allowed.test:{server}"


def test_decodes_the_declared_charset_and_sniffs_untyped_text(
    server: int, resolver: FakeResolver
) -> None:
    tool = local_tool(resolver)
    assert fetch(tool, f"http://allowed.test:{server}/latin1") == "café"
    assert fetch(tool, f"http://allowed.test:{server}/untyped-text") == "plain words"


def test_follows_redirects_within_the_allowlist(server: int, resolver: FakeResolver) -> None:
    tool = local_tool(resolver)
    assert fetch(tool, f"http://allowed.test:{server}/redirect") == "<h1>hello</h1>"
    assert (
        fetch(tool, f"http://allowed.test:{server}/redirect-abs") == f"sub.allowed.test:{server}"
    )
    assert fetch(tool, f"http://allowed.test:{server}/chain/4") == "<h1>hello</h1>"  # 5 hops


def test_caps_the_body_and_says_so(server: int, resolver: FakeResolver) -> None:
    text = fetch(local_tool(resolver, max_bytes=1000), f"http://allowed.test:{server}/big")
    assert text == "x" * 1000 + "\n[truncated at 1000 bytes]"


def test_truncation_never_splits_a_character(server: int, resolver: FakeResolver) -> None:
    text = fetch(local_tool(resolver, max_bytes=999), f"http://allowed.test:{server}/utf8")
    assert text == "é" * 499 + "\n[truncated at 999 bytes]"


async def test_async_and_sync_inside_a_running_loop(server: int, resolver: FakeResolver) -> None:
    tool = local_tool(resolver)
    url = f"http://allowed.test:{server}/page"
    assert await tool.ainvoke({"url": url}) == "<h1>hello</h1>"
    assert tool.invoke({"url": url}) == "<h1>hello</h1>"  # sync call while a loop runs


# -- errors from the server -------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [("/missing", "HTTP 404"), ("/boom", "HTTP 503")])
def test_non_2xx_is_an_error_with_the_status(
    server: int, resolver: FakeResolver, path: str, expected: str
) -> None:
    assert expected in refused(local_tool(resolver), f"http://allowed.test:{server}{path}")


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/image", "binary content (image/png)"), ("/untyped-binary", "binary content")],
)
def test_binary_content_is_refused(
    server: int, resolver: FakeResolver, path: str, expected: str
) -> None:
    assert expected in refused(local_tool(resolver), f"http://allowed.test:{server}{path}")


def test_overall_timeout_covers_a_slow_drip(server: int, resolver: FakeResolver) -> None:
    tool = local_tool(resolver, timeout_s=0.5)
    started = time.monotonic()
    message = refused(tool, f"http://allowed.test:{server}/drip")
    assert "timed out" in message
    assert time.monotonic() - started < 2.0  # each read is quick; only the total is capped


def test_overall_timeout_covers_a_hung_dns_lookup() -> None:
    release = threading.Event()

    def hung(host: str, port: int) -> list[str]:
        release.wait(5)
        return ["93.184.216.34"]

    tool = make_http_fetch(
        allowed_domains=["example.com"], max_bytes=1000, timeout_s=0.3, resolver=hung,
        transport=no_network(),
    )
    started = time.monotonic()
    try:
        assert "timed out" in refused(tool, "http://example.com/")
        assert time.monotonic() - started < 1.5
    finally:
        release.set()


def test_too_many_redirects(server: int, resolver: FakeResolver) -> None:
    tool = local_tool(resolver)
    assert "too many redirects" in refused(tool, f"http://allowed.test:{server}/loop")
    assert "too many redirects" in refused(tool, f"http://allowed.test:{server}/chain/5")
    assert "Location" in refused(tool, f"http://allowed.test:{server}/no-location")


# -- redirects that leave the rules -----------------------------------------------------------


def test_redirect_to_a_disallowed_domain_is_refused_not_followed(
    server: int, resolver: FakeResolver
) -> None:
    Handler.seen.clear()
    message = refused(local_tool(resolver), f"http://allowed.test:{server}/redirect-evil")
    assert "redirect" in message and "'evil.test' is not allowed" in message
    assert "evil.test" not in resolver.calls
    assert [path for path, _ in Handler.seen] == ["/redirect-evil"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/redirect-metadata", "link-local"),
        ("/redirect-private-name", "10.0.0.1 (private"),
        ("/redirect-file", "file: URL"),
    ],
)
def test_redirect_hops_are_rechecked(
    server: int, resolver: FakeResolver, path: str, expected: str
) -> None:
    tool = local_tool(resolver, allowed_domains=["allowed.test", "169.254.169.254"])
    message = refused(tool, f"http://allowed.test:{server}{path}")
    assert "refused" in message and expected in message


# -- SSRF refusals with the default rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.0.0.1"], "private"),
        (["192.168.1.10"], "private"),
        (["169.254.169.254"], "link-local"),
        (["::1"], "loopback"),
        (["fe80::1"], "link-local"),
        (["fd00:ec2::254"], "private"),
        (["::ffff:127.0.0.1"], "embedded IPv4 127.0.0.1, loopback"),
        (["::ffff:169.254.169.254"], "link-local"),
        (["64:ff9b::a00:1"], "embedded IPv4 10.0.0.1, private"),  # NAT64
        (["2002:7f00:1::"], "embedded IPv4 127.0.0.1, loopback"),  # 6to4
        (["0.0.0.0"], "unspecified"),
        (["224.0.0.1"], "multicast"),
        (["100.100.100.200"], "not-global"),  # CGNAT range, Alibaba Cloud metadata
        (["192.0.0.192"], "192.0.0.0/24"),  # Oracle Cloud metadata
        (["93.184.216.34", "10.0.0.1"], "10.0.0.1 (private"),  # one bad answer is enough
        (["2606:2800:220:1::1", "::1"], "::1 (loopback"),
    ],
)
def test_refuses_internal_addresses_by_default(addresses: list[str], expected: str) -> None:
    resolver = FakeResolver({"allowed.test": addresses})
    tool = make_http_fetch(
        allowed_domains=["allowed.test"], max_bytes=1000, timeout_s=1,
        resolver=resolver, transport=no_network(),
    )
    message = refused(tool, "http://allowed.test/")
    assert "refused" in message and expected in message, message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:8080/"],
)
def test_refuses_internal_ip_literals_even_when_listed(url: str) -> None:
    resolver = FakeResolver({})
    tool = make_http_fetch(
        allowed_domains=["127.0.0.1", "::1", "169.254.169.254", "10.0.0.1"],
        max_bytes=1000, timeout_s=1, resolver=resolver, transport=no_network(),
    )
    assert "refused" in refused(tool, url)
    assert resolver.calls == []


def test_blocked_networks_add_to_the_categories() -> None:
    resolver = FakeResolver({"allowed.test": ["203.0.113.7"]})
    tool = make_http_fetch(
        allowed_domains=["allowed.test"], max_bytes=1000, timeout_s=1, resolver=resolver,
        refuse=(), blocked_networks=["203.0.113.0/24"], transport=no_network(),
    )
    assert "blocked network 203.0.113.0/24" in refused(tool, "http://allowed.test/")


def test_address_categories() -> None:
    public = ipaddress.ip_address("93.184.216.34")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_problem(public) is None
    assert address_problem(ipaddress.ip_address("2606:2800:220:1::1")) is None
    assert address_problem(loopback) == "loopback address"
    assert address_problem(loopback, refuse=LOCAL_OK) is None
    # IPv6 forms of a public IPv4 address pass (DNS64 networks need NAT64); Teredo does not.
    assert address_problem(ipaddress.ip_address("64:ff9b::5db8:d822")) is None
    assert address_problem(ipaddress.ip_address("::ffff:93.184.216.34")) is None
    assert address_problem(ipaddress.ip_address("2001:0:5db8:d822::1")) == "private address"


# -- URL shape and allowlist ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@allowed.test/", "credentials"),
        ("http://allowed.test\\@evil.test/", "credentials"),
        ("file:///etc/passwd", "not a file: URL"),
        ("ftp://allowed.test/x", "not a ftp: URL"),
        ("allowed.test/page", "without a scheme"),
        ("http://allowed.test:99999/", "invalid port"),
        ("http://allowed.test.evil.test/", "'allowed.test.evil.test' is not allowed"),
        ("http://evilallowed.test/", "'evilallowed.test' is not allowed"),
        ("http://evil.test/allowed.test", "'evil.test' is not allowed"),
        ("http://evil.test/?u=http://allowed.test/", "'evil.test' is not allowed"),
        ("http://0.0.1/", "'0.0.1' is not allowed"),
    ],
)
def test_refuses_bad_urls_and_other_domains(url: str, expected: str) -> None:
    resolver = FakeResolver({"allowed.test": ["93.184.216.34"]})
    tool = make_http_fetch(
        allowed_domains=["allowed.test"], max_bytes=1000, timeout_s=1,
        resolver=resolver, transport=no_network(),
    )
    message = refused(tool, url)
    assert expected in message, message
    assert resolver.calls == []


def test_empty_allowlist_refuses_everything_and_names_the_setting() -> None:
    tool = make_http_fetch(
        allowed_domains=[], max_bytes=1000, timeout_s=1, resolver=FakeResolver({}),
        transport=no_network(),
    )
    assert "BULWARK_HTTP_ALLOWED_DOMAINS" in tool.description
    assert "BULWARK_HTTP_ALLOWED_DOMAINS" in refused(tool, "https://example.com/")


def test_idna_hosts_are_normalised() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok", headers={"Content-Type": "text/plain"})

    resolver = FakeResolver({
        "xn--bcher-kva.example": ["93.184.216.34"],
        "www.xn--bcher-kva.example": ["93.184.216.34"],
    })
    tool = make_http_fetch(
        allowed_domains=["Bücher.example"], max_bytes=1000, timeout_s=1,
        resolver=resolver, transport=httpx.MockTransport(handler),
    )
    assert "xn--bcher-kva.example" in tool.description
    assert fetch(tool, "http://BÜCHER.example/") == "ok"
    assert fetch(tool, "http://www.xn--bcher-kva.example/") == "ok"
    assert [r.headers["Host"] for r in seen] == [
        "xn--bcher-kva.example",
        "www.xn--bcher-kva.example",
    ]
    assert resolver.calls == ["xn--bcher-kva.example", "www.xn--bcher-kva.example"]


def test_invalid_allowlist_entries_fail_at_build_time() -> None:
    with pytest.raises(ValueError, match="invalid allowed domain"):
        make_http_fetch(allowed_domains=["exa mple.com"], max_bytes=1, timeout_s=1)


# -- connecting to the vetted address ---------------------------------------------------------


def test_connects_to_the_vetted_ip_and_never_resolves_again() -> None:
    """DNS rebinding: a second lookup would answer 127.0.0.1, but there is none."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok", headers={"Content-Type": "text/plain"})

    tool = make_http_fetch(
        allowed_domains=["example.com"], max_bytes=1000, timeout_s=1,
        resolver=rebinding, transport=httpx.MockTransport(handler),
    )
    assert fetch(tool, "https://api.example.com/v1/items?q=1#frag") == "ok"
    assert lookups == ["api.example.com"]
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34/v1/items?q=1"
    assert request.headers["Host"] == "api.example.com"
    assert request.extensions["sni_hostname"] == "api.example.com"
    assert "cookie" not in request.headers and "authorization" not in request.headers


def test_tries_the_next_vetted_address_when_one_refuses_connections() -> None:
    tried: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == "2606:2800:220:1::1":
            raise httpx.ConnectError("unreachable", request=request)
        return httpx.Response(200, text="ok", headers={"Content-Type": "text/plain"})

    tool = make_http_fetch(
        allowed_domains=["example.com"], max_bytes=1000, timeout_s=1,
        resolver=FakeResolver({"example.com": ["2606:2800:220:1::1", "93.184.216.34"]}),
        transport=httpx.MockTransport(handler),
    )
    assert fetch(tool, "http://example.com:8080/") == "ok"
    assert tried == ["2606:2800:220:1::1", "93.184.216.34"]


# -- TLS: the certificate is checked against the host name, not the IP ----------------------


def _make_certificates(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key, issuer: str, issuer_key, *, ca: bool, san: list[str]):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Bulwark test CA", ca_key, "Bulwark test CA", ca_key, ca=True, san=[])
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(name, key, "Bulwark test CA", ca_key, ca=False, san=[name])  # no IP SAN
    pem = serialization.Encoding.PEM
    paths = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterable[tuple[int, ssl.SSLContext]]:
    ca, cert, key = _make_certificates(tmp_path, "allowed.test")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca))
    yield httpd.server_address[1], client_ctx
    httpd.shutdown()
    httpd.server_close()


def test_tls_verifies_the_host_name_while_connecting_to_the_ip(
    tls_server: tuple[int, ssl.SSLContext],
) -> None:
    port, client_ctx = tls_server
    resolver = FakeResolver({"allowed.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})

    def tool() -> BaseTool:
        return local_tool(
            resolver, allowed_domains=["allowed.test", "other.test"],
            transport=httpx.AsyncHTTPTransport(verify=client_ctx, retries=0),
        )

    # The certificate names only allowed.test (no IP): success means SNI and verification
    # used the name while the socket went to 127.0.0.1.
    assert fetch(tool(), f"https://allowed.test:{port}/host") == f"allowed.test:{port}"
    # Same IP, same certificate, but another name: verification must fail.
    message = refused(tool(), f"https://other.test:{port}/page")
    assert "could not connect" in message and "certificate" in message.lower(), message
