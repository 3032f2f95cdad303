"""The upstream HTTP client against raw TCP servers that answer exactly as each
test scripts them: lengths, chunks, closes, stalls, garbage. Each test runs on
both asyncio's loop and uvloop (the gateway's), see conftest.py."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tokgateway.router.providers.client import (
    ConnectError,
    ConnectionClosed,
    HTTPClient,
    ProtocolError,
    ReadTimeout,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    handler: Handler
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_peer: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and body); None when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_peer.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        state = Server(handler)
        server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        state.url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return state

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def client() -> AsyncIterator[HTTPClient]:
    c = HTTPClient(connect_timeout=2.0)
    yield c
    await c.close()


def answer(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    head += b"".join(h + b"\r\n" for h in extra)
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


async def keep_alive_json(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server
) -> None:
    while await s.read_request(reader) is not None:
        writer.write(answer(b'{"n": %d}' % len(s.requests), b"x-Upstream: yes"))
        await writer.drain()


async def test_request_bytes_and_keep_alive(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(keep_alive_json)
    seen: list[str] = []

    def hook(headers: dict[str, str]) -> None:
        seen.append("hook")
        headers["traceparent"] = "00-abc-def-01"

    client = HTTPClient(header_hooks=[hook])
    try:
        for i in (1, 2, 3):
            resp = await client.request(
                "POST", server.url, {"authorization": "Bearer k"}, b'{"a":1}', read_timeout=5
            )
            assert resp.status == 200
            assert resp.headers["x-upstream"] == "yes"
            assert await resp.read() == b'{"n": %d}' % i
    finally:
        await client.close()
    assert server.connections == 1  # one connection, reused
    first = server.requests[0]
    assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in first
    assert b"\r\nauthorization: Bearer k\r\n" in first
    assert b"\r\ntraceparent: 00-abc-def-01\r\n" in first
    assert first.endswith(b'\r\ncontent-length: 7\r\n\r\n{"a":1}')
    assert seen == ["hook"] * 3


async def test_chunked_stream_arrives_before_the_end(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    release = asyncio.Event()

    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        w.write(b"6\r\ndata:1\r\n")
        await w.drain()
        await release.wait()
        w.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await w.drain()
        await s.read_request(r)

    server = await serve(chunked)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    chunks = resp.iter_chunks()
    assert await chunks.__anext__() == b"data:1"  # before the server sent the rest
    release.set()
    assert [c async for c in chunks] == [b"data:2"]


async def test_body_delimited_by_close(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    async def http10(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart one, ")
        await w.drain()
        w.write(b"part two")
        await w.drain()

    server = await serve(http10)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    assert await resp.read() == b"part one, part two"
    # the connection was not pooled: the next request opens a new one
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    assert await resp.read() == b"part one, part two"
    assert server.connections == 2


async def test_gzip_answer_is_decoded(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    payload = b'{"text": "' + b"hello " * 500 + b'"}'

    async def gz(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(answer(gzip.compress(payload), b"content-encoding: gzip"))
        await w.drain()
        await s.read_request(r)

    server = await serve(gz)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    assert "content-encoding" not in resp.headers
    assert await resp.read() == payload


async def test_stale_idle_connection_is_replaced_once(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    async def one_per_connection(
        r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server
    ) -> None:
        await s.read_request(r)
        w.write(answer(b"ok"))  # says keep-alive, then closes anyway
        await w.drain()

    server = await serve(one_per_connection)
    for _ in range(3):
        resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
        assert await resp.read() == b"ok"
    assert server.connections == 3
    assert len(server.requests) == 3  # no request was sent twice


async def test_read_timeout(serve: Callable[..., Awaitable[Server]], client: HTTPClient) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        await s.read_request(r)  # until the client gives up

    server = await serve(silent)
    with pytest.raises(ReadTimeout):
        await client.request("POST", server.url, {}, b"{}", read_timeout=0.2)
    await asyncio.wait_for(server.closed_by_peer.wait(), 5)
    assert len(server.requests) == 1  # a timeout is not retried


async def test_read_timeout_mid_stream(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    async def stalls(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await w.drain()
        await s.read_request(r)

    server = await serve(stalls)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=0.2)
    got: list[bytes] = []
    with pytest.raises(ReadTimeout):
        async for chunk in resp.iter_chunks():
            got.append(chunk)
    assert got == [b"abc"]


async def test_connect_error(client: HTTPClient) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(ConnectError, match="connection failed"):
        await client.request("POST", f"http://127.0.0.1:{port}/x", {}, b"{}")


async def test_close_mid_body_and_garbage(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    async def cut(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly some")
        await w.drain()

    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"SMTP READY\r\n\r\n")
        await w.drain()
        await s.read_request(r)

    server = await serve(cut)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    with pytest.raises(ConnectionClosed):
        await resp.read()
    server = await serve(garbage)
    with pytest.raises(ProtocolError):
        await client.request("POST", server.url, {}, b"{}", read_timeout=5)


async def test_header_with_line_break_is_refused(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    server = await serve(keep_alive_json)
    with pytest.raises(ProtocolError, match="'x-api-key'"):
        await client.request("POST", server.url, {"x-api-key": "k\r\nx-evil: 1"}, b"{}")
    assert server.connections == 0


async def test_leaving_a_stream_early_aborts_and_frees_the_slot(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    async def endless(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        if await s.read_request(r) is None:
            return
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:
            w.write(b"5\r\nhello\r\n")
            await w.drain()
            await asyncio.sleep(0.01)

    server = await serve(endless)
    client = HTTPClient(max_connections=1)
    try:
        resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
        async for _ in resp.iter_chunks():
            break
        resp.close()
        # the one slot is free again, and the aborted connection was not pooled
        resp = await asyncio.wait_for(client.request("POST", server.url, {}, b"{}"), 2)
        resp.close()
    finally:
        await client.close()
    assert server.connections == 2


async def test_large_body_with_a_slow_reader(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    block = bytes(range(256)) * 256  # 64 KiB

    async def big(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (len(block) * 32))
        for _ in range(32):
            w.write(block)
            await w.drain()
        await s.read_request(r)

    server = await serve(big)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    received = bytearray()
    async for chunk in resp.iter_chunks():
        received += chunk
        await asyncio.sleep(0.005)
    assert bytes(received) == block * 32


async def test_informational_answer_is_skipped(
    serve: Callable[..., Awaitable[Server]], client: HTTPClient
) -> None:
    async def cont(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await s.read_request(r)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"done"))
        await w.drain()
        await s.read_request(r)

    server = await serve(cont)
    resp = await client.request("POST", server.url, {}, b"{}", read_timeout=5)
    assert resp.status == 200
    assert await resp.read() == b"done"


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for localhost and a client context trusting only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def test_https_with_hostname_check(tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    state = Server(keep_alive_json)
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client = HTTPClient(ssl_context=client_ctx)
    try:
        for _ in range(2):
            resp = await client.request("POST", f"https://localhost:{port}/v1/x", {}, b"{}")
            assert resp.status == 200
            assert await resp.read() == b'{"n": %d}' % len(state.requests)
        assert state.connections == 1  # TLS connections are pooled too
        assert state.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nhost: localhost:")
        # the certificate names localhost, not 127.0.0.1: refused, without secrets
        with pytest.raises(ConnectError, match="TLS handshake failed"):
            await client.request("POST", f"https://127.0.0.1:{port}/v1/x", {}, b"{}")
        # and the system trust store does not know the self-signed certificate
        strict = HTTPClient()
        with pytest.raises(ConnectError, match="TLS handshake failed"):
            await strict.request("POST", f"https://localhost:{port}/v1/x", {}, b"{}")
        await strict.close()
    finally:
        await client.close()
        server.close()
