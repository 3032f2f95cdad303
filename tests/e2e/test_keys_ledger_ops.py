"""Keys, limits, the ledger, metrics and logs, through the real CLI and HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import UPSTREAM_ANTHROPIC_SECRET, UPSTREAM_OPENAI_SECRET, gateway_config
from tests.support.gateway_proc import GatewayProcess, away_from_minute_edge
from tests.support.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

MSG = [{"role": "user", "content": "hello"}]


Maker = Callable[[GatewayProcess, str], openai.OpenAI]


@pytest.fixture
def _client() -> Iterator[Maker]:
    made: list[openai.OpenAI] = []

    def make(gw: GatewayProcess, key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_revoked_key_refused_on_next_request(_client: Maker, gateway: GatewayProcess) -> None:
    created = gateway.create_key("to-revoke")
    assert created["id"].startswith("key_") and created["key"].startswith("tgk-")
    client = _client(gateway, created["key"])
    client.chat.completions.create(model="echo", messages=MSG)  # warms the key cache
    out = gateway.cli("keys", "revoke", created["id"]).stdout
    assert created["id"] in out
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="echo", messages=MSG)
    assert exc.value.code == "revoked_api_key"
    listed = gateway.cli("keys", "list", "--json").stdout
    assert created["key"] not in listed  # secrets are never listed
    assert '"status": "revoked"' in listed


def test_model_allow_list(_client: Maker, gateway: GatewayProcess) -> None:
    key = gateway.create_key("limited", "--models", "echo,gpt-4o*")["key"]
    client = _client(gateway, key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="claude-haiku-4-5", messages=MSG)
    assert exc.value.code == "model_not_allowed"


def test_expiry(_client: Maker, gateway: GatewayProcess) -> None:
    key = gateway.create_key("short", "--expires-days", "0.00001")["key"]  # < 1 s
    time.sleep(1.2)
    with pytest.raises(openai.AuthenticationError) as exc:
        _client(gateway, key).chat.completions.create(model="echo", messages=MSG)
    assert exc.value.code == "expired_api_key"


def test_gateway_rate_limit_is_distinguishable(_client: Maker, gateway: GatewayProcess) -> None:
    key = gateway.create_key("rpm", "--rpm", "2")["key"]
    away_from_minute_edge()
    client = _client(gateway, key)
    client.chat.completions.create(model="echo", messages=MSG)
    client.chat.completions.create(model="echo", messages=MSG)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="echo", messages=MSG)
    assert exc.value.code == "gateway_rate_limit"
    assert exc.value.response.headers["x-gateway-error"] == "rate_limit"
    assert int(exc.value.response.headers["retry-after"]) >= 1


def test_usage_by_key_and_grouping(_client: Maker, gateway: GatewayProcess) -> None:
    created = gateway.create_key("metered")
    client = _client(gateway, created["key"])
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    client.chat.completions.create(model="echo", messages=MSG)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing-model", messages=MSG)
    deadline = time.monotonic() + 5
    while True:
        rows = {r["group"]: r for r in gateway.usage("--key", created["id"], "--group-by", "model")}
        if sum(r["requests"] for r in rows.values()) == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows["gpt-4o"]["requests"] == 4
    assert rows["gpt-4o"]["prompt_tokens"] == 44 and rows["gpt-4o"]["completion_tokens"] == 28
    assert rows["gpt-4o"]["cost_usd"] == pytest.approx(4 * (8 * 2.5 + 3 * 1.25 + 70) / 1e6)
    assert rows["missing-model"]["errors"] == 1
    total = gateway.usage("--key", created["id"])
    assert total[0]["requests"] == 6
    table = gateway.cli("usage", "--key", created["id"], "--group-by", "provider").stdout
    assert "mock" in table and "echo" in table
    since_future = gateway.usage("--key", created["id"], "--since", "2099-01-01")
    assert since_future == []


def test_client_disconnect_cancels_upstream_and_settles(
    gateway: GatewayProcess, mock: tuple[MockUpstream, str], api_key: str
) -> None:
    rec = mock[0].rec
    cancelled_before = rec.streams_cancelled
    body = b'{"model":"gpt-4o-slow","stream":true,"messages":[{"role":"user","content":"x"}]}'
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {api_key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    while received.count(b"data:") < 3:
        received += sock.recv(65536)
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    request_id = next(
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("x-request-id")
    )
    sock.close()
    deadline = time.monotonic() + 3
    while rec.streams_cancelled == cancelled_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.streams_cancelled == cancelled_before + 1, "upstream stream was not cancelled"
    row = gateway.ledger_row(request_id)
    assert row["status"] == 499 and row["error_class"] == "client"
    assert row["completion_tokens"] >= 2 and row["usage_estimated"] == 1


def test_metrics(_client: Maker, gateway: GatewayProcess, api_key: str) -> None:
    client = _client(gateway, api_key)
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model-m", messages=MSG)
    text = httpx.get(gateway.url + "/metrics").text
    assert (
        'gateway_requests_total{model="gpt-4o",provider="mock",route="/v1/chat/completions",status="200"}'
        in text
    )
    assert "gateway_overhead_seconds_bucket" in text
    assert 'gateway_tokens_total{kind="prompt",model="gpt-4o",provider="mock"}' in text
    assert 'gateway_cost_usd_total{model="gpt-4o",provider="mock"}' in text
    assert 'gateway_errors_total{error_class="client"}' in text
    assert "gateway_upstream_seconds_bucket" in text
    assert "gateway_time_to_first_token_seconds_bucket" in text
    _client(gateway, api_key).chat.completions.create(model="gpt-unpriced-x", messages=MSG)
    text = httpx.get(gateway.url + "/metrics").text
    assert 'gateway_unpriced_requests_total{upstream_model="gpt-unpriced-x"} 1.0' in text


def test_access_log_has_fields_and_no_secrets(
    _client: Maker, gateway: GatewayProcess, api_key: str
) -> None:
    _client(gateway, api_key).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "a very private prompt"}]
    )
    time.sleep(0.2)
    log = gateway.stderr_text()
    lines = [ln for ln in log.splitlines() if '"tokgateway.access"' in ln]
    assert lines
    import orjson

    entry = orjson.loads(lines[-1])
    for field in (
        "request_id",
        "key_id",
        "model",
        "provider",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_ms",
        "overhead_ms",
    ):
        assert field in entry
    for secret in (
        api_key,
        UPSTREAM_OPENAI_SECRET,
        UPSTREAM_ANTHROPIC_SECRET,
        "a very private prompt",
    ):
        assert secret not in log


def test_health(gateway: GatewayProcess) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/readyz").json() == {"status": "ready"}


def test_admin_api_needs_admin_key(gateway: GatewayProcess, api_key: str) -> None:
    assert httpx.get(gateway.url + "/admin/keys").status_code == 401
    auth = {"authorization": f"Bearer {api_key}"}
    resp = httpx.post(gateway.url + "/admin/keys", json={"name": "x"}, headers=auth)
    assert resp.status_code == 403
    # An ordinary key reads only its own user's keys, never the admin key.
    own = httpx.get(gateway.url + "/admin/keys", headers=auth).json()["data"]
    assert own and not any(k["is_admin"] for k in own)
    assert httpx.get(gateway.url + "/admin/users", headers=auth).status_code == 403


def test_graceful_stop_flushes_ledger(
    _client: Maker, mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    extra = ""
    cfg = gateway_config(mock[1], extra).replace(
        "flush_interval_ms = 50", "flush_interval_ms = 60000"
    )
    gw = GatewayProcess(tmp_path_factory.mktemp("flush"), cfg).start()
    try:
        created = gw.create_key("flush")
        client = _client(gw, created["key"])
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o", messages=MSG)
    finally:
        assert gw.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    rows = gw.usage("--key", created["id"])  # gateway stopped: read straight from SQLite
    assert rows[0]["requests"] == 5


def test_first_start_prints_admin_key_once_and_it_works(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("firststart")
    gw = GatewayProcess(root, gateway_config(mock[1])).start()
    try:
        out = gw.stdout_text()
        admin = next(w for w in out.split() if w.startswith("tga-"))
        resp = httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {admin}"})
        assert resp.status_code == 200
    finally:
        gw.stop()
    gw.start()
    try:
        assert "tga-" not in gw.stdout_text()  # shown once only
    finally:
        gw.stop()


def test_admin_key_from_environment(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    admin = "tga-chosen-by-operator-0123456789"
    gw = GatewayProcess(
        tmp_path_factory.mktemp("adminenv"),
        gateway_config(mock[1]),
        env={"GATEWAY_ADMIN_KEY": admin, "GATEWAY_EMAIL": "ops@example.com"},
    ).start()
    try:
        assert "tga-" not in gw.stdout_text()
        resp = httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {admin}"})
        assert resp.status_code == 200
        assert resp.json()["data"][0]["is_admin"] is True
    finally:
        gw.stop()
