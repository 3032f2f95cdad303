"""Upstream calls through real SOCKS5 servers: Dante (no authentication) and
microsocks (username/password), for http and https origins, with the name
resolved here (socks5://) or by the proxy (socks5h://)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.raw_upstream import answer, ca_and_server, json_forever, read_request
from tests.support.socks import danted, microsocks
from tokgateway.router.providers.client import ConnectError, ConnectOptions, HTTPClient
from tokgateway.router.providers.proxy import Proxy, proxies_from_env


def test_socks_proxy_urls() -> None:
    plain = Proxy.parse("socks5://proxy.corp")
    assert (plain.scheme, plain.port, plain.username, plain.remote_dns) == (
        "socks5",
        1080,
        None,
        False,
    )
    named = Proxy.parse("socks5h://al%40ice:s3cret@proxy.corp:9050")
    assert (named.username, named.password, named.remote_dns) == ("al@ice", "s3cret", True)
    assert named.authorization == ""  # no HTTP Proxy-Authorization for SOCKS
    assert "s3cret" not in named.url and "s3cret" not in repr(named)
    env = proxies_from_env({"HTTPS_PROXY": "socks5h://proxy.corp:1080"})
    assert env.https is not None and env.https.is_socks


async def test_http_and_https_through_dante(
    serve: Callable[..., Awaitable[int]], tmp_path: Path
) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                seen.append(await read_request(reader))
                writer.write(answer(b'{"via": "socks"}'))
                await writer.drain()

    http_port = await serve(record)
    ca_file, server_ctx = ca_and_server(tmp_path)
    https_port = await serve(json_forever, ssl=server_ctx)
    client = HTTPClient()
    try:
        with danted(tmp_path) as proxy:
            for scheme in ("socks5", "socks5h"):
                options = ConnectOptions(proxy=proxy.url(scheme))
                # the origin's own request line: a SOCKS tunnel is not an HTTP proxy
                url = f"http://localhost:{http_port}/v1/chat?x={scheme}"
                resp = await client.request("POST", url, {}, b"{}", options=options)
                assert await resp.read() == b'{"via": "socks"}'
                assert seen[-1].startswith(f"POST /v1/chat?x={scheme} HTTP/1.1".encode())
                assert b"proxy-authorization" not in seen[-1].lower()
                tls = ConnectOptions(proxy=proxy.url(scheme), ca_file=str(ca_file))
                url = f"https://localhost:{https_port}/v1/chat"
                resp = await client.request("POST", url, {}, b"{}", options=tls)
                assert await resp.read() == b'{"ok": true}'
            log = proxy.lines()
        # Dante passed every tunnel; the CONNECTs carried the address resolved here
        # (socks5, ATYP 1) or the name for the proxy to resolve (socks5h, ATYP 3)
        for port in (http_port, https_port):
            assert f"ATYP: 1 address: 127.0.0.1.{port}" in log
            assert f"ATYP: 3 address: localhost.{port}" in log
    finally:
        await client.close()


async def test_username_and_password_through_microsocks(
    serve: Callable[..., Awaitable[int]], tmp_path: Path
) -> None:
    port = await serve(json_forever)
    url = f"http://127.0.0.1:{port}/v1/chat"
    client = HTTPClient()
    try:
        with microsocks(tmp_path, "gw", "s0cks-s3cret") as proxy:
            good = ConnectOptions(proxy=proxy.url("socks5h", ("gw", "s0cks-s3cret")))
            resp = await client.request("POST", url, {}, b"{}", options=good)
            assert await resp.read() == b'{"ok": true}'
            bad = ConnectOptions(proxy=proxy.url("socks5", ("gw", "wrong")))
            with pytest.raises(ConnectError, match="refused the username or password") as err:
                await client.request("POST", url, {}, b"{}", options=bad)
            assert "wrong" not in str(err.value)
            anonymous = ConnectOptions(proxy=proxy.url("socks5"))
            with pytest.raises(ConnectError, match="refused no authentication"):
                await client.request("POST", url, {}, b"{}", options=anonymous)
    finally:
        await client.close()


async def test_a_socks_proxy_that_cannot_connect_says_why(tmp_path: Path) -> None:
    client = HTTPClient()
    try:
        with danted(tmp_path) as proxy:
            options = ConnectOptions(proxy=proxy.url("socks5"))
            with pytest.raises(ConnectError, match=r"could not connect \(connection refused\)"):
                # nothing listens on port 9
                await client.request("POST", "http://127.0.0.1:9/v1/x", {}, b"{}", options=options)
    finally:
        await client.close()
