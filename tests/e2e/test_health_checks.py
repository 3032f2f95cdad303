"""Active health checks through a running gateway: an upstream that goes down
is seen by the periodic check before any request fails on it (routing skips
it, /metrics and `gateway providers` show it), and is routed to again once a
check sees it back."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import MockUpstream, free_port, serve_in_thread

CONFIG = """
[gateway]
log_level = info

[ledger]
flush_interval_ms = 50

[provider.up]
kind = openai-compatible
base_url = http://127.0.0.1:{port}/v1
api_key = sk-health-upstream

[routes]
hc-model = up:gpt-4o-mini, echo
"""


def _wait(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _gauge(gw: GatewayProcess, name: str, provider: str) -> float | None:
    text = httpx.get(gw.url + "/metrics").text
    found = re.search(rf'^{name}{{provider="{provider}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _providers(gw: GatewayProcess) -> dict[str, Any]:
    rows = orjson.loads(gw.cli("providers", "list", "--json").stdout)
    return {r["name"]: r for r in rows}


def _served_by(gw: GatewayProcess, key: str) -> dict[str, Any]:
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "hc-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return gw.ledger_row(resp.headers["x-request-id"])


def test_upstream_down_and_back_is_seen_by_the_health_check(tmp_path: Path) -> None:
    port = free_port()
    upstream = MockUpstream()
    gw = GatewayProcess(tmp_path, CONFIG.format(port=port), env={"GATEWAY_HEALTH_CHECK_S": "0.3"})
    gw.start()
    try:
        key = gw.create_key("health")["key"]
        with serve_in_thread(upstream.app, port=port):
            _wait("a first check", lambda: _gauge(gw, "gateway_provider_healthy", "up") == 1.0)
            assert _served_by(gw, key)["provider"] == "up"
        _wait(
            "the check to see the upstream down",
            lambda: _gauge(gw, "gateway_provider_healthy", "up") == 0.0,
        )
        assert _gauge(gw, "gateway_provider_healthy", "echo") == 1.0
        assert _gauge(gw, "gateway_provider_cooldown", "up") == 1.0
        latency = _gauge(gw, "gateway_provider_probe_latency_seconds", "up")
        assert latency is not None and 0 <= latency < 5
        up = _providers(gw)["up"]
        assert up["health"]["status"] == "down"
        assert up["health"]["check"]["healthy"] is False and up["health"]["check"]["error"]
        shown = gw.cli("providers", "list").stdout
        assert re.search(r"^up .* down .*failed", shown, re.MULTILINE), shown
        # no request has failed on it: the first one already goes to echo
        row = _served_by(gw, key)
        assert row["provider"] == "echo" and row.get("attempts", 1) == 1

        with serve_in_thread(upstream.app, port=port):
            _wait(
                "the check to see it back",
                lambda: _gauge(gw, "gateway_provider_healthy", "up") == 1.0,
            )
            assert _gauge(gw, "gateway_provider_cooldown", "up") == 0.0
            up = _providers(gw)["up"]
            assert up["health"]["status"] == "ok" and up["health"]["check"]["healthy"] is True
            assert _served_by(gw, key)["provider"] == "up"
            assert upstream.models_served >= 1  # the check is the model list
    finally:
        gw.stop()
