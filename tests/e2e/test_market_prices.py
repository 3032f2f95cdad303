"""A listing in use is billed at the listing's prices on the consumer's
ledger, even when the consumer prices the same model name itself: its own
price stays for its own providers, the listing's provider is priced at what
the publisher bills, before and after a reload of the consumer's INI files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.gateway_proc import GatewayProcess

CONFIG = """
[gateway]
log_level = info

[ledger]
flush_interval_ms = 50

[market]
poll_s = 0.3
{extra}
"""


def _wait(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _json(gw: GatewayProcess, *args: str) -> Any:
    return orjson.loads(gw.cli(*args, "--json").stdout)


def _chat(gw: GatewayProcess, key: str, model: str) -> dict[str, Any]:
    resp = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "price me"}]},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return gw.ledger_row(resp.headers["x-request-id"])


def test_listing_prices_win_over_the_consumers_own_price(tmp_path: Path) -> None:
    a = GatewayProcess(
        tmp_path / "a",
        CONFIG.format(extra=""),
        env={"GATEWAY_ENABLE_PROVIDER": "true", "GATEWAY_MARKET_AUTO_APPROVE": "true"},
    )
    # the consumer prices the same name for itself, far above the listing
    c = GatewayProcess(tmp_path / "c", CONFIG.format(extra="[prices]\na-model = 90, 90\n"))
    started: list[GatewayProcess] = []
    try:
        for gw in (a, c):
            started.append(gw.start())
        a.cli("routes", "set", "a-model", "--to", "echo")
        pub = _json(
            a, "market", "publish", "--model", "a-model", "--price-in", "2", "--price-out", "4"
        )
        c.cli("market", "peers", "add", a.url)
        _wait(
            "A's listing on C",
            lambda: any(r["id"] == pub["id"] for r in _json(c, "market", "list")),
        )
        use = _json(c, "market", "use", pub["id"])
        assert use["status"] == "active"
        key = c.create_key("agent")["key"]

        def listing_cost(row: dict[str, Any]) -> float:
            assert row["provider"] == use["provider"] and row["cached_tokens"] == 0
            return (row["prompt_tokens"] * 2 + row["completion_tokens"] * 4) / 1e6

        row = _chat(c, key, "a-model")
        assert row["cost_usd"] == pytest.approx(listing_cost(row))
        [sub] = _json(a, "market", "subscriptions")

        def supplied() -> list[dict[str, Any]]:
            return [r for r in a.usage("--group-by", "key") if r["group"] == sub["key_id"]]

        _wait("A's ledger row", lambda: bool(supplied()))
        assert supplied()[0]["cost_usd"] == pytest.approx(row["cost_usd"])  # what A bills

        # the consumer's own price is untouched, and the listing's is listed with its provider
        prices = _json(c, "prices", "list")["data"]
        own = [r for r in prices if r["model"] == "a-model" and "provider" not in r]
        assert [(r["input"], r["output"]) for r in own] == [(90.0, 90.0)]
        scoped = [r for r in prices if r.get("provider") == use["provider"]]
        assert [(r["model"], r["input"], r["output"], r["source"]) for r in scoped] == [
            ("a-model", 2.0, 4.0, "listing")
        ]

        # a reload puts the INI's [prices] back: the listing's provider keeps its price
        c.cli("reload")
        time.sleep(1.0)
        row = _chat(c, key, "a-model")
        assert row["cost_usd"] == pytest.approx(listing_cost(row))
        # and a restart (the listing's prices come back from the store)
        c.stop()
        c.start()
        row = _chat(c, key, "a-model")
        assert row["cost_usd"] == pytest.approx(listing_cost(row))
    finally:
        for gw in started:
            gw.stop()
