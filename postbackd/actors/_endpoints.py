"""The HTTP transport of delivery actors: connects only to checked, public addresses.

Checking the host name before a request is not enough, because the name can
resolve to another address when the connection is made (DNS rebinding), and
the response's peer address is known only after the request was sent. So the
check sits in the network backend, where httpcore opens connections:
``PublicEndpointBackend`` resolves the host itself, checks every address it
gets, and connects to one of those addresses by number. The URL keeps its
host name, so the Host header and the TLS server name stay as they are.

Exception tree of this module::

    Exception
    └── PrivateEndpointError       an address of the host is not public
    httpcore.ConnectError
    └── NameResolutionError        the host name did not resolve

``PublicEndpointTransport`` maps httpcore errors to their httpx twins, with
the original error as ``__cause__``, and lets ``PrivateEndpointError``
through unchanged.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import socket
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

import httpcore
import httpx
import trio

# Time in seconds an idle connection stays in a partner's pool for reuse.
KEEPALIVE_EXPIRY = 30.0

# httpcore errors and the httpx errors they become, most specific first.
_ERROR_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)

# The well-known NAT64 prefix (RFC 6052): its last 32 bits are an IPv4 address.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")

# Resolves a host name and port to IP address strings.
Resolve = Callable[[str, int], Awaitable[list[str]]]


class PrivateEndpointError(Exception):
    """A postback endpoint resolved to an address that is not public."""


class NameResolutionError(httpcore.ConnectError):
    """The host name of a postback endpoint did not resolve."""


def non_public_kind(address: str) -> str | None:
    """Return why an IP address is not public ("loopback", "private", ...), or None when it is public.

    IPv4 addresses embedded in IPv6 ones (IPv4-mapped, 6to4 and the NAT64
    prefix 64:ff9b::/96 that DNS64 resolvers return) are checked as the IPv4
    address they lead to. Raises ValueError for text that is not an IP
    address.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return non_public_kind(str(embedded))
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        # For example 100.64.0.0/10, the address space shared by carrier-grade NATs.
        return "non-public"
    return None


async def resolve_host(host: str, port: int) -> list[str]:
    """Resolve ``host`` to its IP addresses, in the resolver's order, without duplicates."""
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(f"The host name {host!r} did not resolve: {exc.strerror}.") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise NameResolutionError(f"The host name {host!r} resolved to no address.")
    return addresses


class PublicEndpointBackend(httpcore.AsyncNetworkBackend):
    """A trio network backend that connects only to public addresses unless ``allow_private``.

    All addresses of a host are checked before any is connected to, so a
    name that resolves to one public and one private address is rejected
    instead of working only some of the time. ``inner`` opens the
    connection to a checked address; it defaults to httpcore's trio backend.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolve: Resolve = resolve_host,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self._resolve = resolve
        self._inner = inner or httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with trio.move_on_after(float("inf") if timeout is None else timeout) as scope:
            addresses = await self._resolve(host, port)
        if scope.cancelled_caught:
            raise httpcore.ConnectTimeout(f"Resolving the host name {host!r} timed out.")
        if not self.allow_private:
            for address in addresses:
                kind = non_public_kind(address)
                if kind is not None:
                    raise PrivateEndpointError(
                        f"The endpoint host {host!r} resolves to {address}, a {kind} address. Postbacks go only "
                        "to public addresses unless the daemon runs with --allow-private-endpoints."
                    )

        # NOTE: addresses are tried one after another, without the parallel
        # attempts of Happy Eyeballs, so a host whose first address is
        # unreachable costs up to one connect timeout per such address.
        last_error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PrivateEndpointError(f"Postbacks are not sent to Unix sockets such as {path!r}.")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


def _mapped(exc: Exception) -> Exception:
    """Return the httpx error for an httpcore error, or ``exc`` itself for any other error."""
    for source, target in _ERROR_MAP:
        if isinstance(exc, source):
            return target(str(exc))
    return exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()


class PublicEndpointTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one httpcore connection pool that uses ``PublicEndpointBackend``."""

    def __init__(self, *, max_connections: int, backend: PublicEndpointBackend) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_EXPIRY,
            network_backend=backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def make_client(
    *,
    concurrency: int,
    attempt_timeout: float,
    allow_private: bool,
    resolve: Resolve = resolve_host,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """Build a partner's HTTP client: a pool of ``concurrency`` connections to checked addresses.

    Redirects are not followed, and proxy settings from the environment are
    ignored (``trust_env=False``): through a proxy, the address check would
    apply to the proxy instead of the partner's endpoint.
    """
    if transport is None:
        backend = PublicEndpointBackend(allow_private=allow_private, resolve=resolve)
        transport = PublicEndpointTransport(max_connections=concurrency, backend=backend)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        timeout=httpx.Timeout(attempt_timeout),
        trust_env=False,
        # A partner's Set-Cookie must not come back on later postbacks, which
        # would let the partner link them: this jar's policy accepts no cookie.
        cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
    )
