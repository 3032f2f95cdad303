"""Bad input from a client is a 400 in the API's own shape, never a 500, and a
client that leaves during its upload is recorded as 499 ``client``."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.support.gateway_proc import GatewayProcess

pytestmark = pytest.mark.e2e

ODD_ROLES: list[Any] = [{"x": 1}, ["user"], 5, None]


def _post(gw: GatewayProcess, key: str, path: str, body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if path.startswith("/v1/messages"):
        headers["anthropic-version"] = "2023-06-01"
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(gw.url + path, content=content, headers=headers, timeout=10)


def _openai_400(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    return dict(err)


def _anthropic_400(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return dict(body["error"])


@pytest.mark.parametrize("role", ODD_ROLES)
def test_odd_role_in_every_api_is_a_400_in_its_shape(
    gateway: GatewayProcess, api_key: str, role: Any
) -> None:
    err = _openai_400(
        _post(
            gateway,
            api_key,
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": [{"role": role, "content": "hi"}]},
        )
    )
    assert err["param"] == "messages[0].role"
    msg = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": role, "content": "hi"}]}
    assert "role" in _anthropic_400(_post(gateway, api_key, "/v1/messages", msg))["message"]
    del msg["max_tokens"]
    counted = _post(gateway, api_key, "/v1/messages/count_tokens", msg)
    assert "role" in _anthropic_400(counted)["message"]
    if role is not None:  # an input item without a role is a plain message
        resp = _post(
            gateway,
            api_key,
            "/v1/responses",
            {"model": "gpt-4o", "input": [{"role": role, "content": "hi"}]},
        )
        assert _openai_400(resp)["param"] == "input[0].role"


def test_a_huge_role_is_quoted_bounded(gateway: GatewayProcess, api_key: str) -> None:
    role = "\x1b[31m" + "r" * 500_000
    resp = _post(
        gateway,
        api_key,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": role, "content": "hi"}]},
    )
    message = _openai_400(resp)["message"]
    assert len(message) < 300 and "\x1b" not in message


@pytest.mark.parametrize("depth", [255, 300, 2000])
def test_deep_json_is_a_400(gateway: GatewayProcess, api_key: str, depth: int) -> None:
    deep = b"[" * depth + b"]" * depth
    chat = (
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"metadata":' + deep + b"}"
    )
    err = _openai_400(_post(gateway, api_key, "/v1/chat/completions", chat))
    assert "nested" in err["message"] or "depth" in err["message"]
    msg = (
        b'{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}],'
        b'"metadata":' + deep + b"}"
    )
    _anthropic_400(_post(gateway, api_key, "/v1/messages", msg))


def test_moderately_nested_json_still_passes(gateway: GatewayProcess, api_key: str) -> None:
    nested: Any = "leaf"
    for _ in range(60):
        nested = {"n": nested}
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "x": nested}},
            }
        ],
    }
    assert _post(gateway, api_key, "/v1/chat/completions", body).status_code == 200


def test_long_model_name_is_a_400(gateway: GatewayProcess, api_key: str) -> None:
    body = {"model": "gpt-" + "x" * 300, "messages": [{"role": "user", "content": "hi"}]}
    err = _openai_400(_post(gateway, api_key, "/v1/chat/completions", body))
    assert err["param"] == "model" and "256" in err["message"]
    msg = {"model": "claude-" + "x" * 300, "max_tokens": 5, "messages": []}
    assert "256" in _anthropic_400(_post(gateway, api_key, "/v1/messages", msg))["message"]


def test_client_leaving_during_upload_is_499_client(gateway: GatewayProcess, api_key: str) -> None:
    before = gateway.stderr_text().count('"status": 499')
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + api_key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
        b'{"model":"gpt-4o","messages":['
    )
    time.sleep(0.3)
    sock.close()
    deadline = time.monotonic() + 5
    while True:
        lines = [
            orjson.loads(line)
            for line in gateway.stderr_text().splitlines()
            if line.startswith("{") and '"tokgateway.access"' in line
        ]
        gone = [r for r in lines if r.get("status") == 499 and r.get("error_class") == "client"]
        if gone:
            break
        assert time.monotonic() < deadline, f"no 499 in the access log (before: {before})"
        time.sleep(0.05)
    assert "Traceback" not in gateway.stderr_text()
    assert not [r for r in lines if r.get("status") == 500]
