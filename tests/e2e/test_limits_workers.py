"""`gateway run --workers 2` without Redis: the workers share their limit and
budget counters through the data-dir database, so a budget, an rpm and a tpm
hold exactly, not twice over; after a restart budgets start from the ledger."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import gateway_config
from tests.support.burst import COST, PRICES, TOKENS, burst, codes
from tests.support.gateway_proc import GatewayProcess, away_from_minute_edge
from tests.support.mock_upstream import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _show(gw: GatewayProcess, key_id: str) -> dict[str, Any]:
    return dict(orjson.loads(gw.cli("keys", "show", key_id, "--json").stdout))


def _ledger_spend(gw: GatewayProcess, key_id: str, expected: float) -> float:
    deadline = time.monotonic() + 10
    while True:
        got = float(_show(gw, key_id)["spend_usd"] or 0.0)
        if abs(got - expected) < 1e-6 or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _counter(gw: GatewayProcess, name: str) -> float:
    with sqlite3.connect(gw.data_dir / "gateway.db") as conn:
        row = conn.execute(
            "SELECT value FROM governor_counters WHERE counter = ?", (name,)
        ).fetchone()
    return float(row[0]) if row else 0.0


def test_budget_rpm_and_tpm_hold_exactly_across_two_workers(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    gw = GatewayProcess(
        tmp_path_factory.mktemp("workers-limits"),
        gateway_config(mock[1], PRICES),
        env={"GATEWAY_WORKERS": "2"},
    ).start()
    try:
        budget = 20 * COST
        created = gw.create_key("budget", "--budget-usd", str(budget), "--budget-period", "total")
        got = burst([gw.url], created["key"], 200)
        assert codes(got).count(200) == 20 and codes(got).count(429) == 180
        refused = [r.json()["error"]["code"] for r in got if r.status_code == 429]
        assert set(refused) == {"budget_exceeded"}
        spent = _ledger_spend(gw, created["id"], budget)
        assert spent == pytest.approx(budget)
        counter = _counter(gw, f"b:key:{created['id']}:total:total")
        assert counter == pytest.approx(spent)

        away_from_minute_edge(10)
        rpm = gw.create_key("rpm", "--rpm", "10")["key"]
        assert codes(burst([gw.url], rpm, 30)).count(200) == 10
        tpm = gw.create_key("tpm", "--tpm", str(10 * TOKENS))["key"]
        assert codes(burst([gw.url], tpm, 30)).count(200) == 10

        # A restart empties the counters; the budget comes back from the ledger.
        gw.stop()
        gw.start()
        again = burst([gw.url], created["key"], 4)
        assert codes(again) == [429] * 4
        assert again[0].json()["error"]["code"] == "budget_exceeded"
    finally:
        gw.stop()
