"""``http_fetch``: a built-in tool that GETs a page or API from an allow-listed domain.

A model-driven HTTP client is a classic server-side request forgery (SSRF) vector: the
model (or text it read) picks the URL, and the request leaves from inside the deployment's
network. The security choices, in the order they are applied to every URL, including
each redirect hop:

* **Scheme and shape.** Only ``http`` and ``https``; no ``user:password@`` userinfo (it
  hides the real host from a human reader and would send credentials); ports 1-65535;
  host names made of DNS labels only. The URL is parsed once, with httpx's parser, and
  everything below uses that one parse, so no second parser can read a different host.
* **Allowlist.** The host must equal an allowed domain or be a subdomain of one
  (``api.example.com`` matches ``example.com``; ``example.com.evil.net`` and
  ``evilexample.com`` do not). Hosts and allowlist entries are compared lower-cased,
  without a trailing dot and IDNA-encoded (``bücher.example`` is
  ``xn--bcher-kva.example``). An empty allowlist refuses everything: the deployment must
  opt in with ``BULWARK_HTTP_ALLOWED_DOMAINS``.
* **Addresses.** The host is resolved (through an injectable resolver) and the request is
  refused if *any* address is loopback, private, link-local (169.254.0.0/16, which holds
  the cloud metadata service, and fe80::/10), multicast, reserved, unspecified or
  otherwise not globally routable, or falls in ``blocked_networks`` (by default a few
  globally-routable-looking ranges that cloud providers use for metadata/host services).
  IPv6 forms that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64
  ``64:ff9b::/96``) are judged by the embedded address; Teredo counts as non-global.
  Refusing when any address is bad (not just the first) stops a name that resolves to a
  mix of public and private addresses.
* **No DNS rebinding.** The connection goes to the vetted IP address itself
  (``http(s)://<ip>:<port>/path``), never to the name again, so a second DNS answer cannot
  swap in an internal address between the check and the connection. The ``Host`` header
  carries the real name, and for HTTPS the ``sni_hostname`` request extension makes
  httpcore send that name as TLS SNI *and* verify the certificate against it (it becomes
  ``server_hostname`` of :meth:`ssl.SSLContext.wrap_socket`, with ``check_hostname`` on),
  so TLS still authenticates the real site.
* **Redirects** are followed by hand, at most :data:`MAX_REDIRECTS`, and every hop goes
  through all the checks above; a hop that fails is refused, not followed.
* **Caps.** The body is streamed and reading stops at ``max_bytes`` (the text that fits is
  returned with a ``[truncated at N bytes]`` note); the whole call, DNS included, is bounded
  by ``timeout_s``. Non-2xx answers are errors carrying the status code. Binary content
  types (images, PDFs, archives...) are refused without reading the body: the tool returns
  text only. ``Accept-Encoding: identity`` is requested so the cap measures roughly what
  crossed the wire (a server may still compress; the cap then applies to decoded bytes).
* **Nothing ambient.** No cookies, no credentials, no proxies from the environment
  (``HTTP_PROXY`` would otherwise re-resolve the name on the proxy), one fresh connection
  pool per call with keep-alive off, GET only.

Each refusal raises :class:`~langchain_core.tools.ToolException` with a reason the model
can act on (fix the URL, pick an allowed domain, ask the operator to extend the allowlist).
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import httpx
from langchain_core.tools import BaseTool, StructuredTool, ToolException

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Iterable[str]]
"""``(host, port) -> IP address strings``; raises :class:`OSError` when the name is unknown."""

AddressCategory = Literal[
    "unspecified", "loopback", "link_local", "multicast", "private", "reserved", "not_global"
]
"""The kind of non-public address an IP is; see :func:`classify_address`."""

DEFAULT_REFUSED: Final[frozenset[AddressCategory]] = frozenset(
    {"unspecified", "loopback", "link_local", "multicast", "private", "reserved", "not_global"}
)
"""Every non-public category: the safe default of ``make_http_fetch(refuse=...)``."""

DEFAULT_BLOCKED_NETWORKS: Final[tuple[str, ...]] = (
    "100.64.0.0/10",  # shared address space (CGNAT); Alibaba Cloud metadata 100.100.100.200
    "192.0.0.0/24",  # IETF protocol assignments; Oracle Cloud metadata 192.0.0.192
    "168.63.129.16/32",  # Azure host services (WireServer), a public-looking address
    "198.18.0.0/15",  # benchmarking networks, often used inside data centres
    "64:ff9b:1::/48",  # local-use NAT64 prefix (translates to internal IPv4)
)
"""Extra networks refused by default, beyond :data:`DEFAULT_REFUSED` categories."""

MAX_REDIRECTS: Final = 5
USER_AGENT: Final = "bulwark-http-fetch/0.1"
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
ALLOWLIST_SETTING: Final = "BULWARK_HTTP_ALLOWED_DOMAINS"
TEXT_TYPES: Final = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/x-ndjson",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/graphql",
        "application/sql",
        "image/svg+xml",
    }
)
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_T = TypeVar("_T")
# Lookups run here, not in the loop's default executor: ``asyncio.run`` (the sync path)
# waits for that executor on exit, so a hung lookup would outlast ``timeout_s``.
_DNS_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http_fetch-dns")


def resolve_host(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (:func:`socket.getaddrinfo`).

    Returns every distinct address, IPv4 and IPv6, in resolver order.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def classify_address(ip: IPAddress) -> AddressCategory | None:
    """Return the first non-public category ``ip`` belongs to, or ``None`` if it is public.

    The categories are checked from most to least specific, so ``127.0.0.1`` is
    ``loopback`` (not ``private``, which Python's :mod:`ipaddress` also calls it) and
    ``169.254.169.254`` is ``link_local``. ``not_global`` catches the rest of what
    :attr:`~ipaddress.IPv4Address.is_global` rejects (e.g. 100.64.0.0/10).
    """
    checks: tuple[tuple[AddressCategory, bool], ...] = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not_global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96).

    Teredo (2001::/32) is not unwrapped: Python already counts it as non-global.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(
    ip: IPAddress,
    *,
    refuse: Collection[AddressCategory] = DEFAULT_REFUSED,
    blocked_networks: Sequence[IPNetwork] = (),
) -> str | None:
    """Why ``ip`` must not be contacted (e.g. ``"loopback address"``), or ``None``.

    An IPv6 address that embeds an IPv4 one is judged by the IPv4 address (the IPv6 form
    only says how packets get there); both forms are checked against ``blocked_networks``.
    """
    embedded = embedded_ipv4(ip)
    judged: IPAddress = embedded if embedded is not None else ip
    shown = f"embedded IPv4 {embedded}, " if embedded is not None else ""
    category = classify_address(judged)
    if category is not None and category in refuse:
        return f"{shown}{category.replace('_', '-')} address"
    for candidate in dict.fromkeys((ip, judged)):
        for network in blocked_networks:
            if candidate.version == network.version and candidate in network:
                return f"{shown}in blocked network {network}"
    return None


def normalise_domain(domain: str) -> str:
    """Lower-case, IDNA-encode and strip one allowlist entry (``*.`` and dots allowed).

    Raises:
        ValueError: the entry is not a domain name or IP address.
    """
    entry = domain.strip().removeprefix("*.").strip(".")
    literal = _ip_or_none(entry.strip("[]"))
    if literal is not None:
        return str(literal)
    try:
        host = httpx.URL(f"http://{entry}/").raw_host.decode("ascii").rstrip(".")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"invalid allowed domain {domain!r}: {exc}") from None
    if not host or not _valid_host(host):
        raise ValueError(f"invalid allowed domain {domain!r}: expected a name like example.com")
    return host


def _valid_host(host: str) -> bool:
    if _ip_or_none(host) is not None:
        return True
    return all(_LABEL.match(label) for label in host.split("."))


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class _Target:
    """A vetted hop: the logical URL plus the address to connect to."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name, or an IP literal
    port: int
    addresses: tuple[IPAddress, ...]


class _HttpFetcher:
    """The configured fetcher behind the tool; one instance per tool."""

    def __init__(
        self,
        *,
        allowed_domains: Iterable[str],
        max_bytes: int,
        timeout_s: float,
        resolver: Resolver,
        blocked_networks: Iterable[str | IPNetwork],
        refuse: Collection[AddressCategory],
        transport: httpx.AsyncBaseTransport | None,
        max_redirects: int,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        unknown = set(refuse) - DEFAULT_REFUSED
        if unknown:
            raise ValueError(f"unknown address categories {sorted(unknown)}")
        self.allowed = tuple(dict.fromkeys(normalise_domain(d) for d in allowed_domains))
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.resolver = resolver
        self.blocked = tuple(ipaddress.ip_network(n, strict=False) for n in blocked_networks)
        self.refuse = frozenset(refuse)
        self.transport = transport
        self.max_redirects = max_redirects

    # -- checks ---------------------------------------------------------------------------

    def _host_allowed(self, host: str) -> bool:
        if _ip_or_none(host) is not None:  # an IP literal must be listed exactly
            return host in self.allowed
        return any(host == d or host.endswith("." + d) for d in self.allowed)

    def _parse(self, url: httpx.URL | str) -> tuple[httpx.URL, str, int]:
        """Check scheme, userinfo, port and allowlist; return the URL, host and port."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
            host = parsed.raw_host.decode("ascii").rstrip(".").lower()
        except (httpx.InvalidURL, UnicodeError) as exc:
            raise ToolException(f"invalid URL {str(url)[:200]!r}: {exc}") from None
        scheme = parsed.scheme
        if scheme not in DEFAULT_PORTS:
            shown = f"a {scheme}: URL" if scheme else "a URL without a scheme"
            raise ToolException(
                f"only http:// and https:// URLs can be fetched, not {shown}; "
                "give a full URL such as https://example.com/page"
            )
        if parsed.userinfo:
            raise ToolException(
                "URLs with credentials (user:password@host) are not allowed; "
                "remove the part before @"
            )
        if not host or not _valid_host(host):
            raise ToolException(f"invalid host in URL {str(parsed)[:200]!r}")
        port = parsed.port or DEFAULT_PORTS[scheme]
        if not 1 <= port <= 65535:
            raise ToolException(f"invalid port {port} in URL: use 1-65535")
        if not self.allowed:
            raise ToolException(
                "http_fetch is disabled: no domains are allowed. The operator must list "
                f"them in {ALLOWLIST_SETTING} (e.g. '[\"example.com\"]')"
            )
        if not self._host_allowed(host):
            raise ToolException(
                f"domain {host!r} is not allowed; allowed domains (and their subdomains): "
                f"{', '.join(self.allowed)}. Ask the operator to add it to {ALLOWLIST_SETTING}"
            )
        return parsed.copy_with(fragment=None), host, port

    async def _vet(self, url: httpx.URL | str) -> _Target:
        """Run every check on one hop and resolve its host to safe addresses."""
        parsed, host, port = self._parse(url)
        literal = _ip_or_none(host)
        if literal is not None:
            answers: list[str] = [str(literal)]
        else:
            try:
                loop = asyncio.get_running_loop()
                found = await loop.run_in_executor(_DNS_POOL, self.resolver, host, port)
                answers = list(found)
            except OSError as exc:
                raise ToolException(f"could not resolve host {host!r}: {exc}") from None
        if not answers:
            raise ToolException(f"could not resolve host {host!r}: no addresses")
        addresses: list[IPAddress] = []
        for answer in answers:
            ip = _ip_or_none(answer)
            if ip is None:
                raise ToolException(f"host {host!r} resolved to an invalid address {answer!r}")
            problem = address_problem(ip, refuse=self.refuse, blocked_networks=self.blocked)
            if problem is not None:
                raise ToolException(
                    f"refused: {host!r} resolves to {ip} ({problem}); http_fetch only "
                    "reaches public internet addresses"
                )
            addresses.append(ip)
        return _Target(parsed, host, port, tuple(dict.fromkeys(addresses)))

    # -- fetching -------------------------------------------------------------------------

    def _request(self, target: _Target, ip: IPAddress) -> httpx.Request:
        """A GET to ``ip`` itself, carrying the real name in Host and in TLS SNI."""
        scheme = target.url.scheme
        pinned = target.url.copy_with(host=str(ip), port=target.port)
        name = f"[{target.host}]" if ":" in target.host else target.host
        host_header = name if target.port == DEFAULT_PORTS[scheme] else f"{name}:{target.port}"
        extensions: dict[str, Any] = {"timeout": httpx.Timeout(self.timeout_s).as_dict()}
        if scheme == "https" and _ip_or_none(target.host) is None:
            extensions["sni_hostname"] = target.host
        headers = {
            "Host": host_header,
            "User-Agent": USER_AGENT,
            "Accept": "text/html, application/json, text/*;q=0.9, */*;q=0.5",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }
        return httpx.Request("GET", pinned, headers=headers, extensions=extensions)

    async def _send(self, transport: httpx.AsyncBaseTransport, target: _Target) -> httpx.Response:
        """Send to the vetted addresses in turn until one accepts the connection."""
        failure: httpx.ConnectError | None = None
        for ip in target.addresses:
            request = self._request(target, ip)
            try:
                response = await transport.handle_async_request(request)
            except httpx.ConnectError as exc:
                failure = exc
                continue
            response.request = request
            return response
        raise ToolException(f"could not connect to {target.host!r}: {failure}")

    async def fetch(self, url: str) -> str:
        """Fetch ``url`` under every rule; the whole call is bounded by ``timeout_s``."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self.transport is not None:
                    return await self._follow(self.transport, url)
                transport = httpx.AsyncHTTPTransport(
                    retries=0, limits=httpx.Limits(max_keepalive_connections=0)
                )
                async with transport:
                    return await self._follow(transport, url)
        except (TimeoutError, httpx.TimeoutException):
            raise ToolException(
                f"timed out after {time.monotonic() - started:.1f}s fetching {url[:200]!r} "
                f"(limit {self.timeout_s:g}s)"
            ) from None
        except httpx.HTTPError as exc:
            raise ToolException(f"request to {url[:200]!r} failed: {exc}") from None

    async def _follow(self, transport: httpx.AsyncBaseTransport, url: str) -> str:
        """Request ``url`` and follow redirects by hand, vetting every hop."""
        target = await self._vet(url)
        for hop in range(self.max_redirects + 1):
            response = await self._send(transport, target)
            try:
                if response.status_code not in REDIRECT_STATUSES:
                    return await self._read(response, target)
                location = response.headers.get("Location")
            finally:
                await response.aclose()
            if not location:
                raise ToolException(
                    f"HTTP {response.status_code} redirect without a Location header "
                    f"from {target.url}"
                )
            if hop == self.max_redirects:
                raise ToolException(f"too many redirects: stopped after {self.max_redirects}")
            try:
                next_url = target.url.join(location)
                target = await self._vet(next_url)
            except (ToolException, httpx.InvalidURL) as exc:
                raise ToolException(
                    f"redirect from {target.url} to {location[:200]!r} refused: {exc}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, response: httpx.Response, target: _Target) -> str:
        """Check status and type, then stream the body up to ``max_bytes``."""
        status = response.status_code
        if not 200 <= status < 300:
            reason = response.reason_phrase or ""
            raise ToolException(f"HTTP {status} {reason} from {target.url}".replace("  ", " "))
        content_type = response.headers.get("Content-Type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media and not _is_text(media):
            raise ToolException(
                f"refused: {target.url} returned binary content ({media}); http_fetch "
                "only returns text such as HTML, JSON, XML or plain text"
            )
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            room = self.max_bytes - len(body)
            if len(chunk) > room:
                body += chunk[:room]
                truncated = True
                break
            body += chunk
        raw = bytes(body)
        if not media and _looks_binary(raw):
            raise ToolException(
                f"refused: {target.url} returned binary content (no Content-Type, "
                "not UTF-8 text); http_fetch only returns text"
            )
        text = _decode(raw, response.charset_encoding, final=not truncated)
        if truncated:
            text += f"\n[truncated at {self.max_bytes} bytes]"
        return text


def _is_text(media: str) -> bool:
    return (
        media.startswith("text/")
        or media in TEXT_TYPES
        or media.endswith(("+json", "+xml"))
    )


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _decode(data: bytes, charset: str | None, *, final: bool) -> str:
    """Decode with the declared charset (UTF-8 if absent or unknown); a multi-byte
    character cut by truncation is dropped rather than shown as garbage."""
    try:
        decoder = codecs.getincrementaldecoder(charset or "utf-8")(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data, final=final)


def _run_blocking(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="http_fetch") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def make_http_fetch(
    *,
    allowed_domains: Iterable[str],
    max_bytes: int,
    timeout_s: float,
    resolver: Resolver = resolve_host,
    blocked_networks: Iterable[str | IPNetwork] = DEFAULT_BLOCKED_NETWORKS,
    refuse: Collection[AddressCategory] = DEFAULT_REFUSED,
    transport: httpx.AsyncBaseTransport | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> BaseTool:
    """Build the ``http_fetch`` tool (sync ``invoke`` and async ``ainvoke``).

    Args:
        allowed_domains: domains the tool may reach; each also allows its subdomains
            (``settings.http_allowed_domains``). Empty refuses every call.
        max_bytes: body size cap; longer bodies are cut with a note
            (``settings.http_max_bytes``).
        timeout_s: limit for the whole call, DNS and redirects included
            (``settings.http_timeout_s``).
        resolver: ``(host, port) -> addresses``; the system resolver by default, a
            mapping in tests so no real DNS is used.
        blocked_networks: networks refused on top of ``refuse`` (CIDR strings or
            networks); :data:`DEFAULT_BLOCKED_NETWORKS` by default.
        refuse: address categories refused (see :func:`classify_address`); all
            non-public ones by default. Tests drop ``"loopback"`` to reach a local server.
        transport: httpx transport to send through; by default a fresh
            :class:`httpx.AsyncHTTPTransport` per call (no keep-alive, no env proxies).
            An injected transport is shared by all calls and never closed here; sync
            ``invoke`` runs each call on its own event loop, so it must not hold
            loop-bound state across calls (``httpx.MockTransport`` is fine).
        max_redirects: redirects followed before giving up.

    Raises:
        ValueError: an allowlist entry, network or limit is invalid.
    """
    fetcher = _HttpFetcher(
        allowed_domains=allowed_domains,
        max_bytes=max_bytes,
        timeout_s=timeout_s,
        resolver=resolver,
        blocked_networks=blocked_networks,
        refuse=refuse,
        transport=transport,
        max_redirects=max_redirects,
    )

    def http_fetch(url: str) -> str:
        """Fetch a web page or API over HTTP(S) from an allowed domain and return its text.

        Args:
            url: full http:// or https:// URL, e.g. https://example.com/page?q=1.
        """
        return _run_blocking(lambda: fetcher.fetch(url))

    async def ahttp_fetch(url: str) -> str:
        """Fetch a web page or API over HTTP(S) from an allowed domain and return its text.

        Args:
            url: full http:// or https:// URL, e.g. https://example.com/page?q=1.
        """
        return await fetcher.fetch(url)

    if fetcher.allowed:
        scope = f"Allowed domains (and their subdomains): {', '.join(fetcher.allowed)}."
    else:
        scope = (
            f"No domain is allowed yet ({ALLOWLIST_SETTING} is empty), so every call is "
            "refused."
        )
    description = (
        "Fetch a web page or API over HTTP(S) from an allowed domain with GET and return "
        f"the response text (HTML, JSON, XML, plain text). {scope} Bodies over "
        f"{max_bytes} bytes are truncated; binary content (images, PDFs, archives) is "
        "refused; private and internal addresses are never reached."
    )
    return StructuredTool.from_function(
        func=http_fetch,
        coroutine=ahttp_fetch,
        name="http_fetch",
        description=description,
        parse_docstring=True,
        handle_tool_error=False,
    )
