"""The gateway process and its upstreams in a real network: a hung provider
does not starve another, bad answers are 502 in each API's shape, headers go
up and come back as configured, the environment's proxy is used (tinyproxy),
and the CLI's loopback admin calls never go through a proxy."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import MockUpstream, serve_in_thread
from tests.support.tinyproxy import tinyproxy

CHAT = "/v1/chat/completions"


def _host_address() -> str:
    for probe in (("192.0.2.1", 9), ("10.255.255.1", 9), ("8.8.8.8", 53)):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(probe)
            address = str(s.getsockname()[0])
            if not address.startswith("127."):
                return address
    raise AssertionError("this machine has no non-loopback IPv4 address")


@pytest.fixture(scope="module")
def hung_port() -> Iterator[int]:
    """A listener that never accepts: connections complete in the kernel's
    backlog, requests are written, and no answer ever comes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture(scope="module")
def net_gateway(
    mock: tuple[MockUpstream, str], hung_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    root: Path = tmp_path_factory.mktemp("netgw")
    config = f"""
[gateway]
upstream_pool_timeout = 0.5
upstream_timeout = 2
upstream_max_stream_mb = 1

[ledger]
flush_interval_ms = 50

[provider.mock]
kind = openai-compatible
base_url = {mock[1]}/v1
api_key = sk-up
headers = X-Team: search, X-Env: test

[provider.orgok]
kind = openai-compatible
base_url = {mock[1]}/v1
api_key = sk-up
forward_org_headers = true

[provider.hung]
kind = openai-compatible
base_url = http://127.0.0.1:{hung_port}/v1
max_connections = 3

[provider.mockant]
kind = anthropic
base_url = {mock[1]}
api_key = sk-ant-up

[routes]
ant-* = mockant
hung-* = hung
org-* = orgok
claude-* = mock
* = mock
"""
    gw = GatewayProcess(root, config).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def key(net_gateway: GatewayProcess) -> str:
    return str(net_gateway.create_key("net")["key"])


def _chat(gw: GatewayProcess, key: str, model: str, **kw: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **kw.pop("headers", {})}  # type: ignore[dict-item]
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}
    return httpx.post(gw.url + CHAT, json=body, headers=headers, timeout=30)


def test_a_hung_provider_does_not_starve_another(net_gateway: GatewayProcess, key: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        stuck = [pool.submit(_chat, net_gateway, key, "hung-model") for _ in range(8)]
        # 3 hang on the hung provider's 3 connections; the rest get a clear 503 soon
        deadline = time.monotonic() + 20
        while sum(f.done() for f in stuck) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        ok = _chat(net_gateway, key, "gpt-4o")
        assert ok.status_code == 200, ok.text
        assert sum(not f.done() for f in stuck) == 3  # answered while those still hang
        busy = [f.result() for f in stuck if f.done()]
        assert len(busy) == 5, "the requests over the limit give up after 0.5 s"
        resp = busy[0]
        assert resp.status_code == 503
        error = resp.json()["error"]
        assert error["type"] == "upstream_busy"
        assert "busy" in error["message"]
        assert resp.headers["retry-after"] == "1"
        # the hung ones end at the read timeout (504) and give their connections back
        codes = sorted(f.result(timeout=30).status_code for f in stuck)
        assert codes == [503] * 5 + [504] * 3
    again = _chat(net_gateway, key, "hung-model")
    assert again.status_code == 504  # it got a connection: not busy any more


def test_a_200_html_page_is_a_502(net_gateway: GatewayProcess, key: str) -> None:
    resp = _chat(net_gateway, key, "gpt-html")
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["type"] == "upstream_unavailable"
    assert "HTML page" in error["message"]
    streamed = _chat(net_gateway, key, "gpt-html", stream=True)
    assert streamed.status_code == 502
    assert streamed.json()["error"]["type"] == "upstream_unavailable"
    # an event stream without one event: an error event, not a bare [DONE]
    with httpx.stream(
        "POST",
        net_gateway.url + CHAT,
        json={
            "model": "gpt-nostream",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as stream:
        text = b"".join(stream.iter_bytes())
    assert b'"type":"upstream_unavailable"' in text
    assert b"without one valid event" in text
    ant = httpx.post(
        net_gateway.url + "/v1/messages",
        json={
            "model": "claude-html",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert ant.status_code == 502
    assert ant.json()["type"] == "error" and ant.json()["error"]["type"] == "api_error"


@pytest.mark.parametrize(
    ("path", "model"),
    [(CHAT, "gpt-4o-forever"), ("/v1/messages", "ant-forever"), (CHAT, "ant-forever")],
    ids=["openai", "anthropic", "anthropic-translated"],
)
def test_a_stream_that_never_ends_is_cut_off(
    net_gateway: GatewayProcess, key: str, path: str, model: str
) -> None:
    """upstream_max_stream_mb = 1: the mock streams 4 KiB events forever; the
    client gets what came, then an error event in its API's own shape."""
    body = {
        "model": model,
        "stream": True,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }
    headers = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    with httpx.stream(
        "POST", net_gateway.url + path, json=body, headers=headers, timeout=30
    ) as stream:
        assert stream.status_code == 200
        raw = b"".join(stream.iter_bytes())
        request_id = stream.headers["x-request-id"]
    assert (1 << 19) < len(raw) < (2 << 20)
    events = [e for e in raw.rstrip().split(b"\n\n") if e != b"data: [DONE]"]
    last = events[-1]
    if path == CHAT:
        error = orjson.loads(last.removeprefix(b"data: "))["error"]
    else:
        event, data = last.split(b"\n", 1)
        assert event == b"event: error"
        doc = orjson.loads(data.removeprefix(b"data: "))
        assert doc["type"] == "error"
        error = doc["error"]
    assert "streamed too much" in error["message"] and "1048576 bytes" in error["message"]
    row = net_gateway.ledger_row(request_id)
    assert (row["status"], row["error_class"]) == (502, "upstream")


def test_headers_up_and_back(
    net_gateway: GatewayProcess, key: str, mock: tuple[MockUpstream, str]
) -> None:
    upstream = mock[0]
    org = {"openai-organization": "org-theirs", "openai-project": "proj-theirs"}
    resp = _chat(net_gateway, key, "gpt-4o", headers=org)
    assert resp.status_code == 200
    sent = upstream.rec.headers[-1]
    assert "openai-organization" not in sent and "openai-project" not in sent
    assert sent["x-team"] == "search" and sent["x-env"] == "test"
    assert resp.headers["x-upstream-request-id"] == "req_mock_ok"
    assert resp.headers["x-ratelimit-remaining-tokens"] == "9999"
    assert resp.headers["x-request-id"] != "req_mock_ok"  # the gateway's own id stays

    resp = _chat(net_gateway, key, "org-gpt-4o", headers=org)
    assert resp.status_code == 200
    sent = upstream.rec.headers[-1]
    assert sent["openai-organization"] == "org-theirs"
    assert sent["openai-project"] == "proj-theirs"

    with httpx.stream(
        "POST",
        net_gateway.url + CHAT,
        json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as stream:
        assert stream.headers["x-upstream-request-id"] == "req_mock_ok"
        assert b"[DONE]" in b"".join(stream.iter_bytes())

    # a key with its own rpm: the gateway's request limits win, the upstream's
    # token figures (which the gateway does not limit for this key) still pass
    own = str(net_gateway.create_key("rpm-key", "--rpm", "500")["key"])
    resp = _chat(net_gateway, own, "gpt-4o")
    assert resp.headers["x-ratelimit-limit-requests"] == "500"
    assert resp.headers["x-ratelimit-remaining-tokens"] == "9999"

    limited = _chat(net_gateway, key, "gpt-4o-ratelimited")
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-remaining-requests"] == "41"
    assert limited.headers["x-upstream-request-id"] == "req_mock_123"


def test_upstream_calls_use_the_environment_proxy_and_admin_calls_do_not(
    tmp_path: Path,
) -> None:
    upstream = MockUpstream()
    host = _host_address()
    with (
        tinyproxy(tmp_path) as proxy,
        serve_in_thread(upstream.app, host=host) as url,
    ):
        config = f"""
[provider.far]
kind = openai-compatible
base_url = {url}/v1
api_key = sk-far

[routes]
* = far
"""
        # a dead proxy for https and a real one for http: the CLI's admin calls to
        # 127.0.0.1 must go direct, or "keys create" below fails
        env = {"HTTP_PROXY": proxy.url, "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
        gw = GatewayProcess(tmp_path / "gw", config, env=env).start()
        try:
            secret = str(gw.create_key("proxied")["key"])
            resp = _chat(gw, secret, "gpt-4o")
            assert resp.status_code == 200, resp.text
        finally:
            gw.stop()
        assert f"POST {url}/v1/chat/completions HTTP/1.1" in proxy.lines()
        assert "127.0.0.1:" + str(gw.port) not in proxy.lines()


def test_a_provider_added_through_the_admin_api_uses_its_own_proxy(tmp_path: Path) -> None:
    """No [provider.far] in any INI file: its proxy (with credentials the
    proxy demands) comes with the record the admin API stored."""
    upstream = MockUpstream()
    host = _host_address()
    with (
        tinyproxy(tmp_path, auth=("gw", "pr0xy-s3cret")) as proxy,
        serve_in_thread(upstream.app, host=host) as url,
    ):
        gw = GatewayProcess(tmp_path / "gw", "[gateway]\nlog_level = info\n").start()
        try:
            admin = {"authorization": f"Bearer {gw.admin_token()}"}
            provider = {
                "name": "far",
                "kind": "openai-compatible",
                "base_url": f"{url}/v1",
                "api_key": "sk-far",
                "proxy": proxy.url,
                "headers": "X-Via: admin-api",
            }
            made = httpx.post(gw.url + "/admin/providers", json=provider, headers=admin)
            assert made.status_code == 201, made.text
            assert made.json()["network"]["proxy"].startswith("http://****@127.0.0.1:")
            route = {"pattern": "*", "targets": "far"}
            assert httpx.post(gw.url + "/admin/routes", json=route, headers=admin).is_success
            listed = httpx.get(gw.url + "/admin/providers", headers=admin)
            assert "pr0xy-s3cret" not in listed.text
            secret = str(gw.create_key("via-api")["key"])
            resp = _chat(gw, secret, "gpt-4o")
            assert resp.status_code == 200, resp.text
            assert upstream.rec.headers[-1]["x-via"] == "admin-api"
            # the CLI changes one option; the proxy (not named) is kept
            base = ("providers", "set", "far", "--kind", "openai-compatible", "--base-url")
            gw.cli(*base, f"{url}/v1", "--header", "X-Via: cli")
            assert _chat(gw, secret, "gpt-4o").status_code == 200
            assert upstream.rec.headers[-1]["x-via"] == "cli"
            assert proxy.lines().count(f"POST {url}/v1/chat/completions HTTP/1.1") == 2

            refused = {**provider, "proxy": "http://gw:wrong@" + proxy.url.rsplit("@", 1)[1]}
            assert httpx.post(gw.url + "/admin/providers", json=refused, headers=admin).is_success
            denied = _chat(gw, secret, "gpt-4o")
            assert denied.status_code == 502, denied.text  # the proxy said 401
        finally:
            gw.stop()
        assert f"POST {url}/v1/chat/completions HTTP/1.1" in proxy.lines()
        assert "pr0xy-s3cret" not in gw.stderr_text() + gw.stdout_text()
