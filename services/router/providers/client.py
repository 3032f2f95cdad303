"""The upstream HTTP client: pooled HTTP/1.1 keep-alive connections on asyncio
protocols, responses parsed by httptools.

It does what the provider adapters need and nothing else: POST/GET with a body
in one write; a pool per origin (scheme, host, port and connection options)
with its own limit and a bounded wait for a free slot, so one hung provider
cannot starve the others; Happy Eyeballs (:mod:`.dial`); HTTP proxies from the
environment or per provider, CONNECT-tunnelled for https (:mod:`.proxy`), and
SOCKS5 ones (:mod:`.socks`); TLS
with a provider's own CA file, client certificate or no verification; a connect
timeout, a read timeout between received bytes; gzip/deflate answers
decompressed incrementally and bounded in size like plain ones; bodies read
whole or streamed chunk by chunk with back-pressure (a whole stream bounded
too); and one retry on a fresh connection when a reused one turns out to have
been closed by the peer before it answered. Errors are the ``ClientError``
tree below; the adapters translate them into the gateway's own.

The client asks only for the codings it decodes with a bound
(:data:`ACCEPT_ENCODING`, see :mod:`.decoding`: gzip, deflate, br, zstd); an
answer in another coding is a protocol error."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from tokgateway.router.providers.decoding import DecodeError, accept_encoding, decoder_for
from tokgateway.router.providers.dial import DEFAULT_DELAY, dial
from tokgateway.router.providers.proxy import EnvProxies, Proxy, ProxyError, tunnel
from tokgateway.router.providers.socks import socks5_connect

HeaderHook = Callable[[MutableMapping[str, str]], None]

PAUSE_AT = 256 * 1024  # buffered body bytes before reading from the socket pauses
MAX_CACHED_TARGETS = 256
ACCEPT_ENCODING = accept_encoding()
DECODED_PIECE = 1 << 20  # a streamed compressed chunk is inflated at most this much at a time


class ClientError(Exception):
    """No usable answer came back; ``str()`` says why without any secret."""


class ConnectError(ClientError):
    pass


class ConnectTimeout(ClientError):
    pass


class ReadTimeout(ClientError):
    pass


class ConnectionClosed(ClientError):
    pass


class ProtocolError(ClientError):
    pass


class PoolTimeout(ClientError):
    """Every connection of the origin's pool stayed busy for the pool-wait time."""


class BodyTooLarge(ClientError):
    """The answer (decompressed) passed the client's size limit."""


class StreamTooLarge(ClientError):
    """A streamed answer (decompressed) passed the client's limit for a whole
    stream: an upstream that never stops is cut off, not relayed forever."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectOptions:
    """How one provider reaches its origin. Hashable: together with the origin
    it names the pool, so providers with different TLS or proxy settings never
    share a connection. ``proxy`` None follows the environment, ``"none"``
    (or "") goes direct, anything else is the proxy URL."""

    proxy: str | None = None
    ca_file: str = ""
    tls_verify: bool = True
    cert_file: str = ""
    key_file: str = ""
    max_connections: int = 0  # 0: the client's per-origin default


DIRECT = ConnectOptions()


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class _Target:
    origin: Origin
    request_line_tail: bytes  # b" /path?query HTTP/1.1\r\nhost: ...\r\n"
    absolute_tail: bytes  # the same with the absolute URI, for a plain-http proxy


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError(f"unsupported upstream URL scheme {scheme or '(none)'!r}")
    default = 443 if scheme == "https" else 80
    try:
        port = parts.port or default
    except ValueError:
        raise ConnectError("the upstream URL has an invalid port") from None
    host = parts.hostname
    host_header = host if ":" not in host else f"[{host}]"
    if port != default:
        host_header = f"{host_header}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    tail = f" {path} HTTP/1.1\r\nhost: {host_header}\r\n"
    absolute = f" {scheme}://{host_header}{path} HTTP/1.1\r\nhost: {host_header}\r\n"
    return _Target(Origin(scheme, host, port), tail.encode("latin-1"), absolute.encode("latin-1"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection and the one exchange running on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: _Pool) -> None:
        self._loop = loop
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._activity = 0.0
        self._paused = False
        self._informational = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.received = False
        self.keep_alive = True
        self.close_delimited = False
        self.error: ClientError | None = None

    # -- asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._activity = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP response ({type(exc).__name__})"))
            self.abort()
            return
        if self.buffered > PAUSE_AT and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and self.close_delimited and exc is None:
            self.complete = True  # a body without length ends where the connection does
            self.keep_alive = False
            self._wake()
        elif not self.complete:
            self._fail(ConnectionClosed("the upstream closed the connection"))

    # -- httptools callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._informational = True  # 100 Continue and friends: wait for the real one
            self.headers = {}
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        self.close_delimited = (
            "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.complete = True
        self.keep_alive = self.keep_alive and self._parser.should_keep_alive()
        self._disarm()
        self._wake()

    # -- the exchange ------------------------------------------------------------------
    def send(self, data: bytes, timeout: float) -> None:
        assert self.transport is not None
        self._reset()
        self.transport.write(data)
        self._timeout = timeout
        if timeout > 0:
            self._activity = self._loop.time()
            self._timer = self._loop.call_at(self._activity + timeout, self._check_timeout)

    async def wait(self) -> None:
        """Until something arrives: headers, body bytes, the end, or an error."""
        if self._paused and self.transport is not None:
            self._paused = False
            self._activity = self._loop.time()
            self.transport.resume_reading()
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def take_body(self) -> bytes:
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.buffered = 0
        return data

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: ClientError) -> None:
        if self.error is None:
            self.error = error
        self._disarm()
        self._wake()

    def _check_timeout(self) -> None:
        self._timer = None
        if self.complete or self.error is not None:
            return
        due = self._activity + self._timeout
        if self._paused or self._loop.time() < due:
            # still receiving, or the reader is behind: look again later
            self._timer = self._loop.call_at(
                max(due, self._loop.time() + 0.01), self._check_timeout
            )
            return
        self._fail(ReadTimeout("the upstream sent nothing within the read timeout"))
        self.abort()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abort(self) -> None:
        self._disarm()
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None


class _Pool:
    """The connections of one origin under one set of options: at most ``limit``
    exchanges at a time, the rest wait in line (FIFO) for at most the pool-wait
    time. A waiter that is cancelled leaves the line, and gives back a slot
    that was handed to it just before."""

    def __init__(self, origin: Origin, options: ConnectOptions, limit: int) -> None:
        self.origin = origin
        self.options = options
        self.limit = max(1, limit)
        self.in_use = 0
        self.idle: list[_Connection] = []
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def label(self) -> str:
        o = self.origin
        return f"{o.scheme}://{o.host}:{o.port}"

    async def acquire(self, wait: float) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait if wait > 0 else None):
                await waiter
        except TimeoutError:
            self._leave(waiter)
            raise PoolTimeout(
                f"all {self.limit} connections to {self.label} stayed busy for {wait:g}s"
            ) from None
        except BaseException:
            self._leave(waiter)
            raise

    def _leave(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            self.release()  # the slot came just as we gave up: pass it on
        else:
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self.in_use -= 1


class Response:
    """An answer whose status line and headers have arrived. Read it with
    ``read()`` or ``iter_chunks()``, then ``close()`` it (both readers close it
    when they finish); closing early aborts the connection."""

    def __init__(self, conn: _Connection, client: HTTPClient) -> None:
        self._conn: _Connection | None = conn
        self._client = client
        self.status = conn.status
        self.max_body = client.max_body
        self.max_stream = client.max_stream
        self._coding_error = ""
        self._decoder = None
        coding = conn.headers.get("content-encoding")
        if coding is not None:
            try:
                self._decoder = decoder_for(coding)
            except DecodeError as exc:
                self._coding_error = str(exc)
        if self._decoder is not None:
            self.headers = {
                k: v
                for k, v in conn.headers.items()
                if k not in ("content-encoding", "content-length")
            }
        else:
            self.headers = conn.headers

    def _check_encoding(self) -> None:
        if self._coding_error:
            self.close(abort=True)
            raise ProtocolError(self._coding_error)

    async def read(self) -> bytes:
        """The whole body, decompressed as it arrives; ``BodyTooLarge`` as soon
        as it passes ``max_body`` (the connection is then dropped)."""
        conn = self._conn
        if conn is None:
            raise ConnectionClosed("the response was already closed")
        self._check_encoding()
        out: list[bytes] = []
        size = 0
        plain = self._decoder is None
        try:
            while True:
                if conn.body:
                    data = conn.take_body()
                    pieces = (data,) if plain else self._decoded(data, DECODED_PIECE)
                    for piece in pieces:
                        size += len(piece)
                        if size > self.max_body:
                            raise BodyTooLarge(f"the answer is larger than {self.max_body} bytes")
                        out.append(piece)
                    continue
                if conn.complete:
                    if not plain:
                        out.append(self._finish())
                        size += len(out[-1])
                        if size > self.max_body:
                            raise BodyTooLarge(f"the answer is larger than {self.max_body} bytes")
                    break
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        except BaseException:
            self.close(abort=True)
            raise
        self.close()
        return out[0] if len(out) == 1 else b"".join(out)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. A compressed chunk is inflated in pieces of
        about :data:`DECODED_PIECE`, so a bomb never sits in memory whole; the
        caller bounds each event, this bounds the whole: ``StreamTooLarge`` once
        more than ``max_stream`` bytes came (the connection is then dropped)."""
        conn = self._conn
        if conn is None:
            raise ConnectionClosed("the response was already closed")
        self._check_encoding()
        total = 0
        try:
            while True:
                if conn.body:
                    for piece in self._decoded(conn.take_body(), DECODED_PIECE):
                        if piece:
                            total += len(piece)
                            self._check_stream(total)
                            yield piece
                    continue
                if conn.complete:
                    tail = self._finish()
                    if tail:
                        self._check_stream(total + len(tail))
                        yield tail
                    return
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        except StreamTooLarge:
            self.close(abort=True)
            raise
        finally:
            self.close()

    def _check_stream(self, total: int) -> None:
        if total > self.max_stream:
            raise StreamTooLarge(f"the stream is larger than {self.max_stream} bytes")

    def _decoded(self, data: bytes, limit: int) -> Iterator[bytes]:
        decoder = self._decoder
        if decoder is None:
            yield data
            return
        try:
            yield decoder.decode(data, limit)
            while decoder.pending():
                yield decoder.decode(b"", limit)
        except DecodeError as exc:
            raise ProtocolError(str(exc)) from None

    def _finish(self) -> bytes:
        if self._decoder is None:
            return b""
        try:
            return self._decoder.finish()
        except DecodeError as exc:
            raise ProtocolError(str(exc)) from None

    def close(self, *, abort: bool = False) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if abort:
            conn.abort()
        self._client.release(conn)


class HTTPClient:
    """Keep-alive connections in a pool per origin and options, each with at
    most ``max_connections`` exchanges at a time (``ConnectOptions`` may set
    another limit) and a wait of at most ``pool_timeout`` for a free one."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        keepalive: float = 60.0,
        max_connections: int = 100,
        pool_timeout: float = 30.0,
        max_body: int = 64 << 20,
        max_event: int = 8 << 20,
        max_stream: int = 64 << 20,
        happy_eyeballs_delay: float = DEFAULT_DELAY,
        proxies: EnvProxies | None = None,
        header_hooks: list[HeaderHook] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.max_body = max_body
        self.max_event = max_event  # read by the adapters, which see the events
        self.max_stream = max_stream
        self.happy_eyeballs_delay = happy_eyeballs_delay
        self._proxies = proxies or EnvProxies()
        self._hooks = list(header_hooks or ())
        self._ssl = ssl_context
        self._contexts: dict[tuple[str, bool, str, str], ssl.SSLContext] = {}
        self._pools: dict[tuple[Origin, ConnectOptions], _Pool] = {}
        self._routes: dict[tuple[str, ConnectOptions], tuple[_Target, _Pool, Proxy | None]] = {}
        self._closed = False

    def _pool(self, origin: Origin, options: ConnectOptions) -> _Pool:
        pool = self._pools.get((origin, options))
        if pool is None:
            limit = options.max_connections or self.max_connections
            pool = self._pools[(origin, options)] = _Pool(origin, options, limit)
        return pool

    def _route(self, url: str, options: ConnectOptions) -> tuple[_Target, _Pool, Proxy | None]:
        """What a URL and options resolve to, worked out once (per URL, bounded)."""
        target = _target(url)
        route = (target, self._pool(target.origin, options), self._proxy(target.origin, options))
        if len(self._routes) >= MAX_CACHED_TARGETS:
            self._routes.clear()
        self._routes[(url, options)] = route
        return route

    def _proxy(self, origin: Origin, options: ConnectOptions) -> Proxy | None:
        if options.proxy is None:
            return self._proxies.for_origin(origin.scheme, origin.host)
        if options.proxy.strip().lower() in ("", "none"):
            return None
        try:
            return Proxy.parse(options.proxy)
        except ValueError as exc:
            raise ConnectError(str(exc)) from None

    async def request(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        body: bytes = b"",
        *,
        read_timeout: float = 0.0,
        options: ConnectOptions = DIRECT,
    ) -> Response:
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        route = self._routes.get((url, options))
        if route is None:
            route = self._route(url, options)
        target, pool, proxy = route
        for hook in self._hooks:
            hook(headers)
        if proxy is not None and not proxy.is_socks and target.origin.scheme == "http":
            if proxy.authorization:
                headers["proxy-authorization"] = proxy.authorization
            data = _request_bytes(method, target.absolute_tail, headers, body)
        else:
            data = _request_bytes(method, target.request_line_tail, headers, body)
        await pool.acquire(self.pool_timeout)
        conn: _Connection | None = None
        try:
            for attempt in (1, 2):
                conn, reused = await self._connection(pool, proxy)
                conn.send(data, read_timeout)
                while not conn.headers_done:
                    if conn.error is not None:
                        break
                    await conn.wait()
                if conn.headers_done:
                    return Response(conn, self)
                error = conn.error
                conn.abort()
                stale = isinstance(error, ConnectionClosed) and not conn.received
                if reused and attempt == 1 and stale:
                    continue  # the peer had closed the idle connection: once more, fresh
                assert error is not None
                raise error
            raise AssertionError("unreachable")
        except BaseException:
            if conn is not None:
                conn.abort()
            pool.release()
            raise

    def release(self, conn: _Connection) -> None:
        """Called once per exchange by ``Response.close``."""
        pool = conn.pool
        pool.release()
        if conn.reusable() and not self._closed:
            conn.idle_since = asyncio.get_running_loop().time()
            pool.idle.append(conn)
        else:
            conn.abort()

    async def _connection(self, pool: _Pool, proxy: Proxy | None) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        stack = pool.idle
        if stack:
            now = loop.time()
            while stack:
                conn = stack.pop()
                if not conn.closed and now - conn.idle_since < self.keepalive:
                    return conn, True
                conn.abort()
        return await self._connect(loop, pool, proxy), False

    def _ssl_context(self, options: ConnectOptions) -> ssl.SSLContext:
        key = (options.ca_file, options.tls_verify, options.cert_file, options.key_file)
        if key == ("", True, "", "") and self._ssl is not None:
            return self._ssl
        context = self._contexts.get(key)
        if context is None:
            try:
                context = ssl.create_default_context(cafile=options.ca_file or None)
                if not options.tls_verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if options.cert_file:
                    context.load_cert_chain(options.cert_file, options.key_file or None)
            except (OSError, ssl.SSLError) as exc:
                why = getattr(exc, "strerror", None) or type(exc).__name__
                raise ConnectError(f"the TLS files could not be loaded ({why})") from None
            self._contexts[key] = context
        return context

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, pool: _Pool, proxy: Proxy | None
    ) -> _Connection:
        origin = pool.origin
        context = self._ssl_context(pool.options) if origin.scheme == "https" else None
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if proxy is None:
                    sock = await dial(origin.host, origin.port, delay=self.happy_eyeballs_delay)
                else:
                    sock = await dial(proxy.host, proxy.port, delay=self.happy_eyeballs_delay)
                    if proxy.is_socks:
                        await socks5_connect(sock, proxy, origin.host, origin.port)
                    elif origin.scheme == "https":
                        await tunnel(sock, proxy, origin.host, origin.port)
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, pool),
                    sock=sock,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout(
                    f"connecting took longer than {self.connect_timeout:g}s"
                ) from None
            if isinstance(exc, ssl.SSLError):
                why = exc.reason or type(exc).__name__
                raise ConnectError(f"TLS handshake failed ({why})") from None
            if isinstance(exc, ProxyError):
                raise ConnectError(str(exc)) from None
            if isinstance(exc, OSError):
                why = exc.strerror or str(exc) or type(exc).__name__
                via = f" through the proxy {proxy.url}" if proxy is not None else ""
                raise ConnectError(f"connection failed{via} ({why})") from None
            raise
        return conn

    def pool_stats(self) -> list[tuple[str, int | None, int]]:
        """``(origin, in_use, idle)`` per origin for /metrics."""
        totals: dict[str, list[int]] = {}
        for pool in list(self._pools.values()):
            row = totals.setdefault(pool.label, [0, 0])
            row[0] += pool.in_use
            row[1] += sum(not c.closed for c in pool.idle)
        return [(label, used, idle) for label, (used, idle) in totals.items()]

    async def close(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.abort()
            pool.idle.clear()


def _request_bytes(
    method: str, tail: bytes, headers: MutableMapping[str, str], body: bytes
) -> bytes:
    lines = []
    for k, v in headers.items():
        if "\n" in v or "\r" in v or "\n" in k or "\r" in k:
            raise ProtocolError(f"the request header {k.strip()!r} contains a line break")
        lines.append(f"{k}: {v}\r\n")
    text = "".join(lines)
    try:
        head = text.encode("latin-1")
    except UnicodeEncodeError:
        raise ProtocolError("a request header is not Latin-1 text") from None
    length = b"content-length: %d\r\n\r\n" % len(body) if body or method != "GET" else b"\r\n"
    return method.encode("ascii") + tail + head + length + body
