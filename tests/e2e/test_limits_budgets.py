"""Limits and budgets of keys, users and teams on a running all-in-one gateway:
rpm/tpm headers and refusals, budgets reserved before forwarding and settled
to the real cost, every model route enforced, and the billing rules.

The mock upstream always reports 11 prompt + 7 completion tokens for a chat;
``gpt-budget`` is priced at $1 a token, so a chat costs exactly $18. A prompt
of 60 characters is estimated at 15 tokens: with ``max_tokens`` 7 a request
reserves 22 tokens and $22, then settles to 18."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import gateway_config
from tests.support.gateway_proc import GatewayProcess, away_from_minute_edge
from tests.support.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

PROMPT = "x" * 60
PRICES = """
[prices]
gpt-budget = 1000000, 1000000
gpt-budget-500 = 1000000, 1000000
gpt-budget-slow = 1000000, 1000000
gpt-budget-wait = 1000000, 1000000
"""


@pytest.fixture(scope="module")
def gw(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    root: Path = tmp_path_factory.mktemp("limits")
    g = GatewayProcess(root, gateway_config(mock[1], PRICES)).start()
    try:
        yield g
    finally:
        g.stop()


def _cli_json(gw: GatewayProcess, *args: str) -> dict[str, Any]:
    return dict(orjson.loads(gw.cli(*args, "--json").stdout))


def chat(gw: GatewayProcess, key: str, model: str = "gpt-budget", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 7}
    body.update(extra)
    return httpx.post(
        gw.url + "/v1/chat/completions",
        json={k: v for k, v in body.items() if v is not None},
        headers={"authorization": f"Bearer {key}"},
        timeout=10.0,
    )


def spend(gw: GatewayProcess, key_id: str, expected: float, timeout: float = 5.0) -> float:
    """The ledger's spend of a key once it reaches ``expected`` (the writer batches)."""
    deadline = time.monotonic() + timeout
    while True:
        got = float(_cli_json(gw, "keys", "show", key_id)["spend_usd"] or 0.0)
        if abs(got - expected) < 1e-6 or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_rpm_headers_on_success_and_refusal(gw: GatewayProcess) -> None:
    key = gw.create_key("rpm3", "--rpm", "3")["key"]
    away_from_minute_edge()
    remaining = []
    for _ in range(3):
        resp = chat(gw, key)
        assert resp.status_code == 200
        assert resp.headers["x-ratelimit-limit-requests"] == "3"
        assert resp.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(resp.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    refused = chat(gw, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "gateway_rate_limit"
    assert refused.headers["x-gateway-error"] == "rate_limit"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_no_limits_no_headers(gw: GatewayProcess) -> None:
    key = gw.create_key("free")["key"]
    resp = chat(gw, key)
    assert resp.status_code == 200
    assert "x-ratelimit-limit-requests" not in resp.headers


def test_tpm_books_the_estimate_and_settles_to_real_usage(gw: GatewayProcess) -> None:
    key = gw.create_key("tpm", "--tpm", "100")["key"]
    away_from_minute_edge()
    first = chat(gw, key)
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == "78"  # 100 - (15 + 7)
    codes = [first.status_code] + [chat(gw, key).status_code for _ in range(5)]
    # settled at 18 each: 18n + 22 <= 100 admits five; booked at 22 it would be four
    assert codes == [200] * 5 + [429]


def test_budget_is_reserved_then_settled_and_refused_in_each_api_shape(
    gw: GatewayProcess,
) -> None:
    created = gw.create_key("budget", "--budget-usd", "40", "--budget-period", "day")
    key = created["key"]
    assert chat(gw, key).status_code == 200  # books 22, settles to 18
    assert chat(gw, key).status_code == 200  # 18 + 22 = 40 fits exactly
    refused = chat(gw, key)
    assert refused.status_code == 429
    err = refused.json()["error"]
    assert (err["type"], err["code"]) == ("insufficient_quota", "budget_exceeded")
    assert f"key `{created['id']}`" in err["message"] and "per day" in err["message"]
    assert refused.headers["x-should-retry"] == "false"
    assert refused.headers["x-gateway-error"] == "budget"
    anthropic = httpx.post(
        gw.url + "/v1/messages",
        json={
            "model": "gpt-budget",
            "max_tokens": 7,
            "messages": [{"role": "user", "content": PROMPT}],
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    assert anthropic.status_code == 429
    body = anthropic.json()
    assert body["type"] == "error" and "Budget of $40.00 per day" in body["error"]["message"]
    assert anthropic.headers["x-gateway-error"] == "budget"
    assert spend(gw, created["id"], 36.0) == pytest.approx(36.0)


def test_a_budget_sends_the_booked_output_cap_when_the_request_sets_none(
    gw: GatewayProcess, mock: tuple[MockUpstream, str]
) -> None:
    """What was reserved is what may be spent: a request without max_tokens
    that counts against a budget goes upstream with the default cap it booked
    (4096), so concurrent requests cannot overshoot the budget on output.
    Without a budget the request goes as the client sent it."""
    rec = mock[0].rec
    budgeted = gw.create_key("capped", "--budget-usd", "100000", "--budget-period", "total")
    rpm_only = gw.create_key("rpm-only", "--rpm", "1000")
    plain = gw.create_key("plain")
    for key, sent_cap in ((budgeted, 4096), (rpm_only, None), (plain, None)):
        assert chat(gw, key["key"], max_tokens=None).status_code == 200
        assert rec.last().get("max_tokens") == sent_cap, key["name"]
    assert chat(gw, budgeted["key"], max_tokens=9).status_code == 200
    assert rec.last()["max_tokens"] == 9  # the client's own cap is kept
    # 3 requests at $18: the cap bounds the answer, it does not change the bill
    assert spend(gw, budgeted["id"], 36.0) == pytest.approx(36.0)


def test_user_and_team_limits_hold_over_all_their_keys(gw: GatewayProcess) -> None:
    user = _cli_json(gw, "users", "create", "--email", "lim@example.com", "--rpm", "2")
    team = _cli_json(gw, "teams", "create", "--name", "lim", "--budget-usd", "25")
    gw.cli("teams", "add-member", team["id"], user["id"])
    away_from_minute_edge()
    a = gw.create_key("u-a", "--user", user["id"])["key"]
    b = gw.create_key("u-b", "--user", user["id"])["key"]
    assert chat(gw, a).status_code == 200
    assert chat(gw, b).status_code == 200
    refused = chat(gw, a)
    assert refused.status_code == 429
    assert f"user `{user['id']}`" in refused.json()["error"]["message"]

    other = _cli_json(gw, "users", "create", "--email", "t@example.com")
    c = gw.create_key("t-c", "--user", other["id"])["key"]
    assert chat(gw, c).status_code == 200  # another user: unaffected
    member = _cli_json(gw, "users", "create", "--email", "m@example.com")
    gw.cli("teams", "add-member", team["id"], member["id"])
    t1 = gw.create_key("t-1", "--user", member["id"], "--team", team["id"])["key"]
    t2 = gw.create_key("t-2", "--user", member["id"], "--team", team["id"])["key"]
    assert chat(gw, t1).status_code == 200  # 22 <= 25, settles to 18
    second = chat(gw, t2)  # 18 + 22 > 25
    assert second.status_code == 429
    assert f"team `{team['id']}`" in second.json()["error"]["message"]


ROUTES: list[tuple[str, dict[str, Any]]] = [
    (
        "/v1/chat/completions",
        {"model": "gpt-budget", "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("/v1/completions", {"model": "gpt-budget", "prompt": "hi"}),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ("/v1/responses", {"model": "gpt-budget", "input": "hi"}),
    (
        "/v1/messages",
        {"model": "gpt-budget", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    ),
]


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=[r[0] for r in ROUTES])
def test_every_model_route_is_limited(gw: GatewayProcess, path: str, body: dict[str, Any]) -> None:
    key = gw.create_key("route", "--rpm", "1")["key"]
    away_from_minute_edge()
    headers = {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    first = httpx.post(gw.url + path, json=body, headers=headers, timeout=10.0)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    second = httpx.post(gw.url + path, json=body, headers=headers, timeout=10.0)
    assert second.status_code == 429
    assert second.headers["x-gateway-error"] == "rate_limit"


def test_count_tokens_is_not_counted(gw: GatewayProcess) -> None:
    key = gw.create_key("count", "--rpm", "1")["key"]
    away_from_minute_edge()
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    body = {"model": "gpt-budget", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        resp = httpx.post(gw.url + "/v1/messages/count_tokens", json=body, headers=headers)
        assert resp.status_code == 200
    assert chat(gw, key).status_code == 200


def test_upstream_error_before_output_is_not_charged_and_releases_the_budget(
    gw: GatewayProcess,
) -> None:
    created = gw.create_key("err", "--budget-usd", "22", "--budget-period", "total")
    key = created["key"]
    for _ in range(3):  # each books all 22 and gives it back
        failed = chat(gw, key, model="gpt-budget-500")
        assert failed.status_code == 500
        assert failed.headers["x-gateway-error"] == "upstream"
        row = gw.ledger_row(failed.headers["x-request-id"])
        assert row["cost_usd"] == 0.0
    assert chat(gw, key).status_code == 200
    assert spend(gw, created["id"], 18.0) == pytest.approx(18.0)


def test_retries_and_fallbacks_record_every_attempt_and_charge_once(
    gw: GatewayProcess,
) -> None:
    key = gw.create_key("retries")["key"]
    plain = gw.ledger_row(chat(gw, key, model="gpt-4o").headers["x-request-id"])
    retried = chat(gw, key, model="flaky")  # mock:gpt-4o-500, then mock:gpt-4o
    assert retried.status_code == 200
    row = gw.ledger_row(retried.headers["x-request-id"])
    tried = orjson.loads(row["attempt_log"])
    assert [(a["provider"], a["status"]) for a in tried] == [("mock", 500), ("mock", 200)]
    assert all(a["latency_ms"] >= 0 for a in tried) and row["attempts"] == 2
    assert row["cost_usd"] == pytest.approx(plain["cost_usd"]) and row["cost_usd"] > 0
    fell = gw.ledger_row(chat(gw, key, model="fallback-model").headers["x-request-id"])
    statuses = [a["status"] for a in orjson.loads(fell["attempt_log"])]
    assert statuses[-1] == 200 and statuses[0] >= 500 and fell["provider"] == "mock"


def _raw_chat(gw: GatewayProcess, key: str, body: bytes) -> socket.socket:
    """A chat sent on a bare socket, so the test decides when the client leaves."""
    sock = socket.create_connection(("127.0.0.1", gw.port))
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_mid_stream_disconnect_is_charged_for_what_was_produced(
    gw: GatewayProcess, mock: tuple[MockUpstream, str]
) -> None:
    created = gw.create_key("stream", "--budget-usd", "100000", "--budget-period", "total")
    body = orjson.dumps(
        {
            "model": "gpt-budget-slow",
            "stream": True,
            "max_tokens": 1000,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )
    sock = _raw_chat(gw, created["key"], body)
    received = b""
    while received.count(b"data:") < 3:
        received += sock.recv(65536)
    head = received.split(b"\r\n\r\n", 1)[0].decode().lower()
    request_id = head.split("x-request-id:", 1)[1].split("\r\n", 1)[0].strip()
    sock.close()
    row = gw.ledger_row(request_id)
    assert row["status"] == 499 and row["usage_estimated"] == 1
    produced = row["prompt_tokens"] + row["completion_tokens"]
    assert row["completion_tokens"] >= 2 and row["cost_usd"] == pytest.approx(produced)
    assert spend(gw, created["id"], row["cost_usd"]) == pytest.approx(row["cost_usd"])


@pytest.mark.parametrize(
    ("path", "stream"),
    [("/v1/messages", False), ("/v1/chat/completions", False), ("/v1/chat/completions", True)],
    ids=["messages", "chat-translated", "chat-translated-stream"],
)
def test_prompt_caching_is_priced_at_cache_rates(
    gw: GatewayProcess, path: str, stream: bool
) -> None:
    """Anthropic reports 20 plain input tokens, 5 read from the cache, 4 written
    to it and 9 output; the shipped price of claude-sonnet-4-5 (USD per million:
    3 input, 15 output, 0.30 cache read, 3.75 cache write) gives
    20 x 3 + 5 x 0.3 + 4 x 3.75 + 9 x 15 = 211.5 millionths."""
    key = gw.create_key("cache", "--budget-usd", "1000")["key"]
    body = {
        "model": "claude-sonnet-4-5-cachewrite",
        "max_tokens": 9,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    resp = httpx.post(gw.url + path, json=body, headers=headers, timeout=10.0)
    assert resp.status_code == 200, resp.text
    row = gw.ledger_row(resp.headers["x-request-id"])
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (29, 5, 4)
    assert row["completion_tokens"] == 9 and row["usage_estimated"] == 0
    assert row["cost_usd"] == pytest.approx(211.5e-6)


def test_client_leaving_before_the_answer_is_a_499_without_charge(gw: GatewayProcess) -> None:
    created = gw.create_key("leaver", "--budget-usd", "22", "--budget-period", "total")
    body = orjson.dumps(
        {
            "model": "gpt-budget-wait",
            "max_tokens": 7,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )
    left = time.monotonic()
    with _raw_chat(gw, created["key"], body):
        time.sleep(0.5)  # the gateway is waiting on the (10 s) upstream answer
    deadline = time.monotonic() + 8.0
    rows: list[dict[str, Any]] = []
    while not rows and time.monotonic() < deadline:
        rows = [r for r in gw.usage("--key", created["id"]) if r]
        time.sleep(0.1)
    assert time.monotonic() - left < 9.5, "settled only when the upstream answered"
    assert rows and rows[0]["requests"] == 1
    assert float(rows[0]["cost_usd"]) == 0.0
    assert spend(gw, created["id"], 0.0) == 0.0
    # the booking was given back: the whole budget is there for the next request
    assert chat(gw, created["key"]).status_code == 200
