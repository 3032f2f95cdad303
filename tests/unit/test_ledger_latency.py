"""p50/p99 latency from the ledger (SQLite store) and its admin route, which
the console's Overview charts."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from tokgateway.common.contracts import UsageEvent
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger.filters import UsageFilter
from tokgateway.ledger.service import LedgerService
from tokgateway.ledger.store import nearest_rank


def _ev(i: int, ts: float, latency: float | None, key: str = "k1") -> UsageEvent:
    ev = UsageEvent(request_id=f"r{i}", ts=ts, key_id=key, route="/v1/x", model="m")
    return replace(ev, latency_ms=latency)


def test_nearest_rank_matches_percentile_disc() -> None:
    assert nearest_rank(1, 0.5) == 0 and nearest_rank(1, 0.99) == 0
    assert nearest_rank(100, 0.5) == 49 and nearest_rank(100, 0.99) == 98
    assert nearest_rank(101, 0.5) == 50 and nearest_rank(101, 0.99) == 99


async def test_percentiles_in_a_window_and_scope(tmp_path: Path) -> None:
    ledger = LedgerService(SQLiteDB(tmp_path / "l.db"), None)
    await ledger.start()
    now = time.time()
    # 1..100 ms for key k1 in the last minute, shuffled; older and other-key rows apart
    events = [_ev(i, now - 30, float((i * 37) % 100 + 1)) for i in range(100)]
    events += [_ev(200, now - 7200, 5000.0), _ev(201, now - 10, 9000.0, key="k2")]
    events.append(_ev(202, now - 10, None))  # no latency recorded: not counted
    await ledger.store.insert_batch(events)
    stats = await ledger.latency(UsageFilter(key_id="k1", since=now - 60))
    assert stats == {"requests": 100, "p50_ms": 50.0, "p99_ms": 99.0}
    everything = await ledger.latency()
    assert everything["requests"] == 102 and everything["p99_ms"] == 5000.0
    assert await ledger.latency(UsageFilter(since=now + 1)) == {
        "requests": 0,
        "p50_ms": None,
        "p99_ms": None,
    }
    await ledger.close()
