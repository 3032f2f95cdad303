"""The upstream client in real networks: pools per origin, size bounds with
decompression, proxies (a real tinyproxy), TLS options, Happy Eyeballs."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import resource
import socket
import ssl
import struct
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest
import zstandard

from tests.support.raw_upstream import answer, ca_and_server, json_forever, read_request
from tests.support.tinyproxy import tinyproxy
from tokgateway.router.providers import dial
from tokgateway.router.providers.client import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    ConnectError,
    ConnectionClosed,
    ConnectOptions,
    HTTPClient,
    PoolTimeout,
    ProtocolError,
    StreamTooLarge,
)
from tokgateway.router.providers.proxy import EnvProxies, Proxy, bypassed, proxies_from_env

# -- pools per origin ----------------------------------------------------------------


async def test_a_hung_origin_does_not_starve_another(
    serve: Callable[..., Awaitable[int]],
) -> None:
    hung: list[asyncio.StreamWriter] = []
    all_hung = asyncio.Event()

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        hung.append(writer)
        if len(hung) == 4:
            all_hung.set()
        await asyncio.sleep(3600)

    slow = await serve(never_answers)
    fine = await serve(json_forever)
    client = HTTPClient(max_connections=4, pool_timeout=0.3)
    try:
        stuck = [
            asyncio.ensure_future(
                client.request("POST", f"http://127.0.0.1:{slow}/v1/x", {}, b"{}")
            )
            for _ in range(20)
        ]
        await asyncio.wait_for(all_hung.wait(), 5)
        # the other provider answers at once, while 4 requests hang and 16 wait
        for _ in range(3):
            resp = await client.request("POST", f"http://127.0.0.1:{fine}/v1/x", {}, b"{}")
            assert await resp.read() == b'{"ok": true}'
        # the hung origin's waiters give up after the pool-wait time, with a clear error
        done = await asyncio.gather(*stuck[4:], return_exceptions=True)
        assert all(isinstance(e, PoolTimeout) for e in done)
        assert "all 4 connections to http://127.0.0.1:" in str(done[0])
        stats = dict((o, used) for o, used, _ in client.pool_stats())
        assert stats[f"http://127.0.0.1:{slow}"] == 4
        # cancelling the hung requests (a client left) gives every slot back
        for task in stuck[:4]:
            task.cancel()
        await asyncio.gather(*stuck[:4], return_exceptions=True)
        stats = dict((o, used) for o, used, _ in client.pool_stats())
        assert stats[f"http://127.0.0.1:{slow}"] == 0
    finally:
        await client.close()


async def test_a_cancelled_waiter_leaves_the_line_and_frees_nothing_twice(
    serve: Callable[..., Awaitable[int]],
) -> None:
    port = await serve(json_forever)
    url = f"http://127.0.0.1:{port}/v1/x"
    client = HTTPClient(max_connections=1, pool_timeout=5)
    try:
        first = await client.request("POST", url, {}, b"{}")
        waiting = [asyncio.ensure_future(client.request("POST", url, {}, b"{}")) for _ in range(3)]
        await asyncio.sleep(0.05)
        waiting[0].cancel()
        waiting[1].cancel()
        await asyncio.gather(*waiting[:2], return_exceptions=True)
        assert await first.read() == b'{"ok": true}'  # frees the one slot: the third gets it
        third = await asyncio.wait_for(waiting[2], 2)
        assert await third.read() == b'{"ok": true}'
        assert client.pool_stats()[0][1] == 0
        # a provider may have a limit of its own: a separate pool
        own = ConnectOptions(max_connections=2)
        a = await client.request("POST", url, {}, b"{}", options=own)
        b = await asyncio.wait_for(client.request("POST", url, {}, b"{}", options=own), 2)
        a.close()
        b.close()
    finally:
        await client.close()


# -- size bounds and decompression --------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB of zeros. Built fast: after a
    full flush, every MiB of zeros compresses to the same bytes, so one block is
    repeated and the trailer (CRC-32 and length) written by hand."""
    zeros = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    end = comp.flush(zlib.Z_FINISH)[:-8]  # the last (empty) block, without its trailer
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(zeros, crc)
    return head + block * 1023 + end + struct.pack("<II", crc, (1 << 30) & 0xFFFFFFFF)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_gzip_bomb_is_refused_with_bounded_memory(
    serve: Callable[..., Awaitable[int]], gzip_bomb: bytes
) -> None:
    assert len(gzip_bomb) < 1_100_000

    async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_request(reader)
                writer.write(answer(gzip_bomb, b"content-encoding: gzip"))
                await writer.drain()

    port = await serve(bomb)
    url = f"http://127.0.0.1:{port}/v1/x"
    client = HTTPClient(max_body=64 << 20)
    before = _peak_rss_mb()
    try:
        resp = await client.request("POST", url, {}, b"{}")
        with pytest.raises(BodyTooLarge, match="larger than 67108864 bytes"):
            await resp.read()
        # streamed, it comes in pieces of at most 1 MiB: the reader can stop at once
        resp = await client.request("POST", url, {}, b"{}")
        seen = 0
        async for piece in resp.iter_chunks():
            assert len(piece) <= 1 << 20
            seen += len(piece)
            if seen > 8 << 20:
                break
        resp.close()
        assert client.pool_stats()[0][1] == 0
    finally:
        await client.close()
    assert _peak_rss_mb() - before < 200


async def test_a_stream_that_never_ends_is_cut_off_at_the_stream_limit(
    serve: Callable[..., Awaitable[int]],
) -> None:
    gone = asyncio.Event()

    async def forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        event = b'data: {"choices": [{"delta": {"content": "' + b"x" * 4000 + b'"}}]}\n\n'
        try:
            while True:
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
        except ConnectionError:
            gone.set()

    port = await serve(forever)
    client = HTTPClient(max_stream=1 << 20)
    try:
        resp = await client.request("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}")
        seen = 0
        with pytest.raises(StreamTooLarge, match="larger than 1048576 bytes"):
            async for piece in resp.iter_chunks():
                seen += len(piece)
        assert 1 << 19 < seen <= 1 << 20  # what came before the piece that passed it
        await asyncio.wait_for(gone.wait(), 5)  # the connection was dropped, not kept
        assert client.pool_stats()[0][1:] == (0, 0)
    finally:
        await client.close()


async def test_plain_answers_are_bounded_too_and_codings_are_checked(
    serve: Callable[..., Awaitable[int]],
) -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if b"/lzw" in request.split(b"\r\n", 1)[0]:  # a coding the client never asks for
            writer.write(answer(b"\x1f\x9d\x90", b"content-encoding: compress"))
        else:
            writer.write(answer(b"x" * 5000))
        await writer.drain()
        writer.close()

    port = await serve(big)
    client = HTTPClient(max_body=4096)
    try:
        resp = await client.request("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}")
        with pytest.raises(BodyTooLarge):
            await resp.read()
        resp = await client.request("POST", f"http://127.0.0.1:{port}/lzw", {}, b"{}")
        with pytest.raises(ProtocolError, match="content coding"):
            await resp.read()
    finally:
        await client.close()


async def test_brotli_answers_are_decoded_and_bounded(
    serve: Callable[..., Awaitable[int]],
) -> None:
    small = b'{"text": "' + b"hello " * 1000 + b'"}'
    bomb = brotli.compress(bytes(64 << 20), quality=5)  # a few hundred bytes, 64 MiB inflated

    async def br(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                request = await read_request(reader)
                body = bomb if b"/bomb" in request.split(b"\r\n", 1)[0] else small
                writer.write(
                    answer(
                        brotli.compress(body) if body is small else body, b"content-encoding: br"
                    )
                )
                await writer.drain()

    port = await serve(br)
    client = HTTPClient(max_body=16 << 20)
    before = _peak_rss_mb()
    try:
        resp = await client.request("POST", f"http://127.0.0.1:{port}/v1/x", {}, b"{}")
        assert "content-encoding" not in resp.headers
        assert await resp.read() == small
        resp = await client.request("POST", f"http://127.0.0.1:{port}/bomb", {}, b"{}")
        with pytest.raises(BodyTooLarge):
            await resp.read()
        resp = await client.request("POST", f"http://127.0.0.1:{port}/bomb", {}, b"{}")
        got = 0
        async for piece in resp.iter_chunks():
            assert len(piece) <= 4 << 20
            got += len(piece)
            if got > 8 << 20:
                break
        resp.close()
    finally:
        await client.close()
    assert _peak_rss_mb() - before < 150


async def test_zstd_answers_are_decoded_and_a_zstd_bomb_is_refused(
    serve: Callable[..., Awaitable[int]],
) -> None:
    small = b'{"text": "' + b"hello " * 1000 + b'"}'
    two_frames = zstandard.ZstdCompressor().compress(small[:100])
    two_frames += zstandard.ZstdCompressor().compress(small[100:])
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(1 << 30))  # 32 KiB, 1 GiB inflated
    assert len(bomb) < 64 * 1024
    bodies = {b"/v1/x": two_frames, b"/bomb": bomb, b"/broken": b"\x28\xb5\x2f\xfd" + b"junk" * 9}

    async def zstd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                request = await read_request(reader)
                path = request.split(b" ", 2)[1]
                writer.write(answer(bodies[path], b"content-encoding: zstd"))
                await writer.drain()

    assert "zstd" in ACCEPT_ENCODING.split(", ")
    port = await serve(zstd)
    url = f"http://127.0.0.1:{port}"
    client = HTTPClient(max_body=16 << 20)
    before = _peak_rss_mb()
    try:
        resp = await client.request("POST", url + "/v1/x", {}, b"{}")
        assert "content-encoding" not in resp.headers
        assert await resp.read() == small
        resp = await client.request("POST", url + "/bomb", {}, b"{}")
        with pytest.raises(BodyTooLarge, match="larger than 16777216 bytes"):
            await resp.read()
        # streamed, it comes in pieces of about 1 MiB: the reader can stop at once
        resp = await client.request("POST", url + "/bomb", {}, b"{}")
        got = 0
        async for piece in resp.iter_chunks():
            assert len(piece) <= 2 << 20
            got += len(piece)
            if got > 32 << 20:
                break
        resp.close()
        resp = await client.request("POST", url + "/broken", {}, b"{}")
        with pytest.raises(ProtocolError, match="does not decompress"):
            await resp.read()
    finally:
        await client.close()
    assert _peak_rss_mb() - before < 150


# -- proxies ------------------------------------------------------------------------


def test_proxy_settings_from_the_environment() -> None:
    env = proxies_from_env(
        {
            "HTTPS_PROXY": "http://upper:8080",
            "https_proxy": "http://alice:s3cret@lower:3128",
            "HTTP_PROXY": "proxy.corp:8080",
            "no_proxy": "internal.example, .corp.example,10.0.0.0/8, 192.168.1.7",
        }
    )
    assert env.https is not None and env.https.host == "lower"  # lowercase wins, as curl
    assert env.https.authorization.startswith("Basic ")
    assert "s3cret" not in env.https.url and "s3cret" not in repr(env.https)
    assert env.http == Proxy("proxy.corp", 8080)
    assert env.for_origin("https", "api.openai.com") == env.https
    assert env.for_origin("http", "api.openai.com") == env.http
    for host in ("internal.example", "a.internal.example", "x.corp.example", "10.1.2.3"):
        assert env.for_origin("https", host) is None, host
    assert env.for_origin("https", "192.168.1.8") == env.https
    for loopback in ("127.0.0.1", "localhost", "::1"):
        assert env.for_origin("http", loopback) is None  # local model servers go direct
    assert bypassed("anything", ("*",))
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        proxies_from_env({"HTTPS_PROXY": "ftp://p:21"})
    assert proxies_from_env({}) == EnvProxies()


def _host_address() -> str:
    """This machine's non-loopback IPv4 address (no packet is sent)."""
    for probe in (("192.0.2.1", 9), ("10.255.255.1", 9), ("8.8.8.8", 53)):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(probe)
            address = str(s.getsockname()[0])
            if not ipaddress.ip_address(address).is_loopback:
                return address
    raise AssertionError("this machine has no non-loopback IPv4 address")


async def test_http_through_the_environment_proxy(
    serve: Callable[..., Awaitable[int]], tmp_path: Path
) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                seen.append(await read_request(reader))
                writer.write(answer(b'{"via": "proxy"}'))
                await writer.drain()

    host = _host_address()
    port = await serve(record, host)
    with tinyproxy(tmp_path) as proxy:
        client = HTTPClient(proxies=proxies_from_env({"HTTP_PROXY": proxy.url}))
        try:
            resp = await client.request(
                "POST", f"http://{host}:{port}/v1/chat?x=1", {"authorization": "Bearer k"}, b"{}"
            )
            assert await resp.read() == b'{"via": "proxy"}'
        finally:
            await client.close()
        # the request line had the absolute URI, and tinyproxy logged it
        assert f"POST http://{host}:{port}/v1/chat?x=1 HTTP/1.1" in proxy.lines()
    assert seen and seen[0].startswith(b"POST /v1/chat?x=1 HTTP/1.1")


async def test_https_through_a_connect_tunnel_with_a_private_ca(
    serve: Callable[..., Awaitable[int]], tmp_path: Path
) -> None:
    ca_file, server_ctx = ca_and_server(tmp_path)
    port = await serve(json_forever, ssl=server_ctx)
    url = f"https://127.0.0.1:{port}/v1/chat"
    client = HTTPClient()
    try:
        with tinyproxy(tmp_path) as proxy:
            options = ConnectOptions(proxy=proxy.url, ca_file=str(ca_file))
            for _ in range(2):
                resp = await client.request("POST", url, {}, b"{}", options=options)
                assert await resp.read() == b'{"ok": true}'
            log = proxy.lines()
            assert f"CONNECT 127.0.0.1:{port} HTTP/1.1" in log
            assert log.count("CONNECT 127.0.0.1") == 1  # the tunnel is kept alive and reused
            # without the CA the certificate is refused, through the tunnel as well
            with pytest.raises(ConnectError, match="TLS handshake failed"):
                await client.request(
                    "POST", url, {}, b"{}", options=ConnectOptions(proxy=proxy.url)
                )
            # tls_verify = false accepts it (for a lab; never the default)
            lax = ConnectOptions(proxy=proxy.url, tls_verify=False)
            resp = await client.request("POST", url, {}, b"{}", options=lax)
            assert await resp.read() == b'{"ok": true}'
        # "none" goes direct even with a proxy in the environment
        direct = HTTPClient(proxies=proxies_from_env({"HTTPS_PROXY": "http://127.0.0.1:9"}))
        try:
            options = ConnectOptions(proxy="none", ca_file=str(ca_file))
            resp = await direct.request("POST", url, {}, b"{}", options=options)
            assert await resp.read() == b'{"ok": true}'
        finally:
            await direct.close()
    finally:
        await client.close()


async def test_a_refusing_proxy_is_a_clear_connect_error(tmp_path: Path) -> None:
    client = HTTPClient()
    try:
        with tinyproxy(tmp_path) as proxy:
            options = ConnectOptions(proxy=proxy.url)
            with pytest.raises(ConnectError, match="refused the tunnel"):
                # nothing listens on port 9: tinyproxy answers the CONNECT with an error
                await client.request("POST", "https://127.0.0.1:9/v1/x", {}, b"{}", options=options)
    finally:
        await client.close()


async def test_client_certificates_are_presented(
    serve: Callable[..., Awaitable[int]], tmp_path: Path
) -> None:
    ca_file, server_ctx = ca_and_server(tmp_path)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(ca_file))
    port = await serve(json_forever, ssl=server_ctx)
    url = f"https://127.0.0.1:{port}/v1/chat"
    client = HTTPClient()
    try:
        # the server's own certificate was signed by the CA: use it as the client's
        mtls = ConnectOptions(
            ca_file=str(ca_file),
            cert_file=str(tmp_path / "server.pem"),
            key_file=str(tmp_path / "server-key.pem"),
        )
        resp = await client.request("POST", url, {}, b"{}", options=mtls)
        assert await resp.read() == b'{"ok": true}'
        # without one the server refuses (TLS 1.3: after the handshake, so a close)
        no_cert = ConnectOptions(ca_file=str(ca_file))
        with pytest.raises((ConnectError, ConnectionClosed)):
            resp = await client.request("POST", url, {}, b"{}", options=no_cert)
            await resp.read()
        with pytest.raises(ConnectError, match="TLS files could not be loaded"):
            await client.request(
                "POST", url, {}, b"{}", options=ConnectOptions(ca_file=str(tmp_path / "nope.pem"))
            )
    finally:
        await client.close()


# -- Happy Eyeballs ---------------------------------------------------------------


def test_addresses_are_interleaved_by_family() -> None:
    v6 = [(socket.AF_INET6, ("::1", 1, 0, 0)), (socket.AF_INET6, ("::2", 1, 0, 0))]
    v4 = [(socket.AF_INET, ("10.0.0.1", 1)), (socket.AF_INET, ("10.0.0.2", 1))]
    got = dial.interleave([*v6, *v4])
    assert got == [v6[0], v4[0], v6[1], v4[1]]
    assert dial.interleave([v4[0], *v6]) == [v4[0], v6[0], v6[1]]


async def test_a_silent_first_address_loses_to_the_next(
    serve: Callable[..., Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = await serve(json_forever)
    # 192.0.2.0/24 is TEST-NET: a SYN there gets no answer here, or fails fast
    blackhole = (socket.AF_INET, ("192.0.2.254", port))
    real = (socket.AF_INET, ("127.0.0.1", port))

    async def fake_resolve(host: str, p: int) -> list[tuple[int, tuple[object, ...]]]:
        return [blackhole, real]

    monkeypatch.setattr(dial, "resolve", fake_resolve)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sock = await asyncio.wait_for(dial.dial("dual.example", port, delay=0.05), 5)
    try:
        assert sock.getpeername() == ("127.0.0.1", port)
        assert loop.time() - started < 4  # did not wait for the first attempt to time out
    finally:
        sock.close()
    # every address failing is one OSError
    monkeypatch.setattr(
        dial, "resolve", lambda h, p: _resolved([(socket.AF_INET, ("127.0.0.1", 1))] * 2)
    )
    with pytest.raises(OSError):
        await dial.dial("dual.example", 1)


async def _resolved(
    value: list[tuple[int, tuple[object, ...]]],
) -> list[tuple[int, tuple[object, ...]]]:
    return value


async def test_idle_connections_are_kept_for_the_keepalive_time_only(
    serve: Callable[..., Awaitable[int]],
) -> None:
    connections = 0

    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await json_forever(reader, writer)

    port = await serve(counting)
    url = f"http://127.0.0.1:{port}/v1/x"
    short = HTTPClient(keepalive=0.05)
    try:
        for _ in range(2):
            resp = await short.request("POST", url, {}, b"{}")
            await resp.read()
            await asyncio.sleep(0.1)  # longer than the keep-alive: the next one dials anew
        assert connections == 2
    finally:
        await short.close()
    long = HTTPClient(keepalive=60)
    try:
        for _ in range(2):
            resp = await long.request("POST", url, {}, b"{}")
            await resp.read()
            await asyncio.sleep(0.1)
        assert connections == 3
    finally:
        await long.close()
