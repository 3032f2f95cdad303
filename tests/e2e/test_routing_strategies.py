"""Routing strategies through a running gateway: the `provider` object picks
and orders deployments and never reaches the upstream; a failing deployment
is put in cooldown (visible in /metrics) and tried last."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import MockUpstream

STRATEGIES = """
[strategies]
cheap-* = cheapest

[prices]
gpt-4o-mini = 0.15, 0.60
gpt-4o = 2.50, 10.00
"""


@pytest.fixture(scope="module")
def gw(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    config = gateway_config(mock[1], STRATEGIES).replace(
        "[routes]\n", "[routes]\ncheap-chat = mock:gpt-4o, mock:gpt-4o-mini\n"
    )
    proc = GatewayProcess(tmp_path_factory.mktemp("strategies"), config).start()
    try:
        yield proc, proc.create_key("strategies")["key"]
    finally:
        proc.stop()


def _chat(gw: tuple[GatewayProcess, str], model: str, **extra: Any) -> httpx.Response:
    proc, key = gw
    return httpx.post(
        proc.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra},
        timeout=30,
    )


def test_provider_object_orders_and_is_stripped(
    gw: tuple[GatewayProcess, str], mock: tuple[MockUpstream, str]
) -> None:
    proc, _ = gw
    resp = _chat(gw, "fallback-model", provider={"order": ["mock"]})
    assert resp.status_code == 200, resp.text
    row = proc.ledger_row(resp.headers["x-request-id"])
    assert row["provider"] == "mock"
    assert mock[0].rec.last()["model"] == "gpt-4o-mini" and "provider" not in mock[0].rec.last()
    only_dead = _chat(gw, "fallback-model", provider={"only": ["dead"]})
    assert only_dead.status_code in (502, 503, 504)
    bad = _chat(gw, "fallback-model", provider={"sort": "vibes"})
    assert bad.status_code == 400 and "provider.sort" in bad.json()["error"]["message"]
    none = _chat(gw, "fallback-model", provider={"only": ["nobody"]})
    assert none.status_code == 404


def test_failing_deployment_cools_down_and_goes_last(gw: tuple[GatewayProcess, str]) -> None:
    proc, _ = gw
    for _ in range(3):
        assert _chat(gw, "fallback-model").status_code == 200  # dead fails, mock answers
    metrics = httpx.get(proc.url + "/metrics").text
    assert 'gateway_provider_cooldown{provider="dead"} 1.0' in metrics
    providers = {p["name"]: p for p in orjson.loads(proc.cli("providers", "list", "--json").stdout)}
    assert providers["dead"]["health"]["status"] == "cooldown"
    assert providers["mock"]["health"]["status"] == "ok"
    resp = _chat(gw, "fallback-model")
    row = proc.ledger_row(resp.headers["x-request-id"])
    assert row["provider"] == "mock" and row.get("attempts", 1) == 1


def test_cheapest_strategy_from_the_strategies_section(gw: tuple[GatewayProcess, str]) -> None:
    proc, _ = gw
    resp = _chat(gw, "cheap-chat")
    assert resp.status_code == 200
    assert proc.ledger_row(resp.headers["x-request-id"])["upstream_model"] == "gpt-4o-mini"
