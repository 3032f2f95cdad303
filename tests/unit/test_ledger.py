from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import USAGE_SUBJECT, UsageEvent
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger.filters import UsageFilter
from tokgateway.ledger.service import LedgerService
from tokgateway.ledger.writer import LedgerWriter


def event(i: int, model: str = "m", key: str = "k1") -> UsageEvent:
    return UsageEvent(
        request_id=f"r{i}",
        ts=time.time(),
        key_id=key,
        route="/v1/x",
        model=model,
        provider="p",
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=0.5,
    )


async def test_batches_are_idempotent_and_flushed_on_close(tmp_path: Path) -> None:
    bus = InProcessBus()
    ledger = LedgerService(SQLiteDB(tmp_path / "l.db"), bus, batch_size=3, flush_interval=30)
    await ledger.start()
    for i in range(7):
        bus.publish_nowait(USAGE_SUBJECT, event(i, model="a" if i < 4 else "b").to_json())
    bus.publish_nowait(USAGE_SUBJECT, event(0).to_json())  # redelivery: counted once
    bus.publish_nowait(USAGE_SUBJECT, b"{broken")
    await asyncio.sleep(0.05)  # a full batch woke the writer long before its 30 s timer
    assert ledger.writer.written == 7  # the redelivered r0 was ignored
    await ledger.writer.close()
    rows = await ledger.usage(group_by="model")
    assert {r["group"]: r["requests"] for r in rows} == {"a": 4, "b": 3}
    assert sum(r["cost_usd"] for r in rows) == 3.5
    assert ledger.bad_events == 1
    await ledger.close()


async def test_failed_write_is_retried_not_lost() -> None:
    calls: list[int] = []
    stored: dict[str, UsageEvent] = {}

    async def flaky(batch: list[UsageEvent]) -> int:
        calls.append(len(batch))
        if len(calls) == 1:
            raise OSError("disk full")
        for e in batch:
            stored[e.request_id] = e
        return len(batch)

    writer = LedgerWriter(flaky, batch_size=10, flush_interval=0.01)
    writer.start()
    for i in range(4):
        writer.submit(event(i))
    await asyncio.sleep(0.2)
    await writer.close()
    assert sorted(stored) == ["r0", "r1", "r2", "r3"]
    assert writer.failures == 1


async def test_queue_limit_drops_and_counts() -> None:
    async def sink(batch: list[UsageEvent]) -> int:
        return len(batch)

    writer = LedgerWriter(sink, queue_limit=2)
    for i in range(5):
        writer.submit(event(i))
    assert writer.pending == 2 and writer.dropped == 3
    await writer.close()


async def test_a_background_database_thread_runs_at_lower_priority(tmp_path: Path) -> None:
    """The ledger's thread yields the core to the event loop; others do not."""

    def nice_of_thread(_: object) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    background, normal = SQLiteDB(tmp_path / "a.db", nice=5), SQLiteDB(tmp_path / "b.db")
    try:
        assert await background.run(nice_of_thread) == min(base + 5, 19)
        assert await normal.run(nice_of_thread) == base
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    finally:
        await background.close()
        await normal.close()


def test_usage_filter_spells_its_conditions_for_either_driver() -> None:
    filters = UsageFilter(key_id="k1", user_id="", team_id="t1", since=10.0, until=20.0)
    assert filters.where(lambda n: f"${n}") == (
        ["key_id = $1", "team_id = $2", "ts >= $3", "ts < $4"],
        ["k1", "t1", 10.0, 20.0],
    )
    assert filters.where(lambda n: "?")[0] == ["key_id = ?", "team_id = ?", "ts >= ?", "ts < ?"]
    assert UsageFilter().where(lambda n: "?") == ([], [])


async def test_usage_filter_window_is_half_open(tmp_path: Path) -> None:
    ledger = LedgerService(SQLiteDB(tmp_path / "l.db"), None)
    await ledger.start()
    rows = [event(i) for i in range(3)]
    for i, ev in enumerate(rows):
        ev.ts = 100.0 + i
    await ledger.store.insert_batch(rows)
    window = await ledger.usage(UsageFilter(key_id="k1", since=100.0, until=102.0))
    assert window[0]["requests"] == 2
    assert await ledger.usage(UsageFilter(key_id="k2")) == []
    await ledger.close()
