"""The upstream HTTP client: pooled HTTP/1.1 keep-alive connections on asyncio
protocols, responses parsed by httptools.

It does what the provider adapters need and nothing else: POST/GET with a body
in one write, keep-alive per origin (scheme, host, port), TLS, a connect
timeout, a read timeout between received bytes, gzip/deflate answers, bodies
read whole or streamed chunk by chunk with back-pressure, and one retry on a
fresh connection when a reused one turns out to have been closed by the peer
before it answered. Errors are the ``ClientError`` tree below; the adapters
translate them into the gateway's own."""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

HeaderHook = Callable[[MutableMapping[str, str]], None]

PAUSE_AT = 256 * 1024  # buffered body bytes before reading from the socket pauses
MAX_CACHED_TARGETS = 256


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


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class _Target:
    origin: Origin
    request_line_tail: bytes  # b" /path?query HTTP/1.1\r\nhost: ...\r\n"


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
    return _Target(Origin(scheme, host, port), tail.encode("latin-1"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection and the one exchange running on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self._loop = loop
        self.origin = origin
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


class Response:
    """An answer whose status line and headers have arrived. Read it with
    ``read()`` or ``iter_chunks()``, then ``close()`` it (both readers close it
    when they finish); closing early aborts the connection."""

    def __init__(self, conn: _Connection, client: HTTPClient) -> None:
        self._conn: _Connection | None = conn
        self._client = client
        self.status = conn.status
        encoding = conn.headers.get("content-encoding", "").strip().lower()
        self._inflate: Any = None
        if encoding in ("gzip", "deflate", "x-gzip"):
            self._inflate = zlib.decompressobj(wbits=47)  # gzip or zlib, by header
            self.headers = {
                k: v
                for k, v in conn.headers.items()
                if k not in ("content-encoding", "content-length")
            }
        else:
            self.headers = conn.headers

    async def read(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise ConnectionClosed("the response was already closed")
        try:
            while not conn.complete:
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
            data = conn.take_body()
        finally:
            self.close()
        return self._decode(data, final=True)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise ConnectionClosed("the response was already closed")
        try:
            while True:
                if conn.body:
                    data = self._decode(conn.take_body(), final=False)
                    if data:
                        yield data
                    continue
                if conn.complete:
                    tail = self._decode(b"", final=True)
                    if tail:
                        yield tail
                    return
                if conn.error is not None:
                    raise conn.error
                await conn.wait()
        finally:
            self.close()

    def _decode(self, data: bytes, *, final: bool) -> bytes:
        if self._inflate is None:
            return data
        try:
            out: bytes = self._inflate.decompress(data)
            if final:
                out += self._inflate.flush()
        except zlib.error:
            raise ProtocolError("the upstream sent a body that does not decompress") from None
        return out

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._client.release(conn)


class HTTPClient:
    """Keep-alive connections per origin, at most ``max_connections`` in use."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        keepalive: float = 60.0,
        max_connections: int = 1000,
        header_hooks: list[HeaderHook] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._slots = asyncio.Semaphore(max_connections)
        self._hooks = list(header_hooks or ())
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        body: bytes = b"",
        *,
        read_timeout: float = 0.0,
    ) -> Response:
        if self._closed:
            raise ConnectError("the HTTP client is closed")
        target = self._targets.get(url)
        if target is None:
            target = _target(url)
            if len(self._targets) >= MAX_CACHED_TARGETS:
                self._targets.clear()
            self._targets[url] = target
        for hook in self._hooks:
            hook(headers)
        data = _request_bytes(method, target, headers, body)
        await self._slots.acquire()
        conn: _Connection | None = None
        try:
            for attempt in (1, 2):
                conn, reused = await self._connection(target.origin)
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
            self._slots.release()
            raise

    def release(self, conn: _Connection) -> None:
        """Called once per exchange by ``Response.close``."""
        self._slots.release()
        if conn.reusable() and not self._closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.origin, []).append(conn)
        else:
            conn.abort()

    async def _connection(self, origin: Origin) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        stack = self._idle.get(origin)
        if stack:
            now = loop.time()
            while stack:
                conn = stack.pop()
                if not conn.closed and now - conn.idle_since < self.keepalive:
                    return conn, True
                conn.abort()
        return await self._connect(loop, origin), False

    async def _connect(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> _Connection:
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, origin),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"connecting took longer than {self.connect_timeout:g}s") from None
        except ssl.SSLError as exc:
            why = exc.reason or type(exc).__name__
            raise ConnectError(f"TLS handshake failed ({why})") from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConnectError(f"connection failed ({why})") from None
        return conn

    def pool_stats(self) -> list[tuple[str, int | None, int]]:
        """``(origin, in_use, idle)`` per origin for /metrics; this pool does not
        count connections in use per origin (None), only the idle ones."""
        return [
            (f"{o.scheme}://{o.host}:{o.port}", None, sum(not c.closed for c in stack))
            for o, stack in list(self._idle.items())
        ]

    async def close(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            for conn in stack:
                conn.abort()
        self._idle.clear()


def _request_bytes(
    method: str, target: _Target, headers: MutableMapping[str, str], body: bytes
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
    return method.encode("ascii") + target.request_line_tail + head + length + body
