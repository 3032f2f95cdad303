"""The PostgreSQL ledger store on a throwaway cluster: versioned migrations,
daily partitions, idempotent batch inserts, retention by dropping partitions,
and the usage queries served by their indexes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.cluster import Postgres
from tokgateway.common.contracts import UsageEvent
from tokgateway.common.postgres import create_pool, migrate
from tokgateway.ledger.filters import UsageFilter
from tokgateway.ledger.store_pg import MIGRATIONS, PgLedgerStore, day_of, partition_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
DAY = 86400


@pytest.fixture
async def pool(postgres: Postgres) -> AsyncIterator[Any]:
    pool = await create_pool(postgres.url)
    await pool.execute("DROP TABLE IF EXISTS usage_events CASCADE")
    await pool.execute("DROP TABLE IF EXISTS schema_migrations")
    try:
        yield pool
    finally:
        await pool.close()


def _ev(i: int, ts: float, key: str = "key_a", model: str = "m1") -> UsageEvent:
    return UsageEvent(
        request_id=f"req_{i}",
        ts=ts,
        key_id=key,
        route="/v1/chat/completions",
        model=model,
        provider="echo",
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=0.001,
    )


async def _partitions(pool: Any) -> set[str]:
    rows = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_events'"
    )
    return {r["relname"] for r in rows}


async def test_migrations_are_versioned_and_applied_once(pool: Any) -> None:
    assert await migrate(pool, "ledger", MIGRATIONS) == [1, 2, 3]
    assert await migrate(pool, "ledger", MIGRATIONS) == []
    versions = await pool.fetch("SELECT component, version FROM schema_migrations")
    assert sorted((r["component"], r["version"]) for r in versions) == [
        ("ledger", 1),
        ("ledger", 2),
        ("ledger", 3),
    ]


async def test_inserts_are_idempotent_and_partitioned_by_day(pool: Any) -> None:
    store = PgLedgerStore(pool)
    await store.migrate()
    now = time.time()
    events = [_ev(i, now - (i % 3) * DAY) for i in range(30)]
    assert await store.insert_batch(events) == 30
    assert await store.insert_batch([*events[:10], _ev(99, now)]) == 1
    assert await pool.fetchval("SELECT count(*) FROM usage_events") == 31
    names = await _partitions(pool)
    assert {partition_name(day_of(now - d * DAY)) for d in range(3)} <= names
    # Rows live in the partition of their day.
    old = partition_name(day_of(now - 2 * DAY))
    assert await pool.fetchval(f"SELECT count(*) FROM {old}") == 10


async def test_retention_drops_whole_partitions(pool: Any) -> None:
    store = PgLedgerStore(pool, retention_days=3)
    await store.migrate()
    now = time.time()
    await store.insert_batch([_ev(i, now - i * DAY) for i in range(10)])
    await store.maintain()
    kept = await pool.fetchval("SELECT count(*) FROM usage_events")
    assert kept in (3, 4)  # today and the last three days, depending on the hour
    assert partition_name(day_of(now - 9 * DAY)) not in await _partitions(pool)
    # Nothing was deleted row by row: no dead tuples anywhere.
    dead = await pool.fetchval(
        "SELECT COALESCE(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
        " WHERE relname LIKE 'usage_events_p%'"
    )
    assert dead == 0


async def test_usage_queries_and_their_indexes(pool: Any) -> None:
    store = PgLedgerStore(pool)
    await store.migrate()
    now = time.time()
    events = [
        _ev(i, now - i, key="key_a" if i % 2 else "key_b", model=f"m{i % 3}") for i in range(60)
    ]
    await store.insert_batch(events)
    rows = await store.query_usage(UsageFilter(key_id="key_a", since=now - 3600), group_by="model")
    assert sum(r["requests"] for r in rows) == 30
    assert {r["group"] for r in rows} == {"m0", "m1", "m2"}
    day = await store.query_usage(group_by="day")
    assert sum(r["requests"] for r in day) == 60
    record = await store.by_request("req_5")
    assert record is not None and record["key_id"] == "key_a"
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT count(*) FROM usage_events WHERE key_id = 'key_a' AND ts >= 0"
            )
        )
        assert "usage_events_p" in plan and "key_id" in plan and "Index" in plan
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT count(*) FROM usage_events WHERE model = 'm1' AND ts >= 0"
            )
        )
        assert "Index" in plan and "model" in plan


async def test_latency_percentiles_match_the_sqlite_store(pool: Any) -> None:
    store = PgLedgerStore(pool)
    await store.migrate()
    now = time.time()
    events = []
    for i in range(100):
        ev = _ev(i, now - 30)
        ev.latency_ms = float((i * 37) % 100 + 1)  # 1..100 ms, shuffled
        events.append(ev)
    old = _ev(500, now - 2 * DAY)
    old.latency_ms = 5000.0
    await store.insert_batch([*events, old])
    assert await store.latency(UsageFilter(key_id="key_a", since=now - 60)) == {
        "requests": 100,
        "p50_ms": 50.0,
        "p99_ms": 99.0,
    }
    # nearest rank over 101 rows: the 51st and the 100th value
    assert await store.latency() == {"requests": 101, "p50_ms": 51.0, "p99_ms": 100.0}
    assert await store.latency(UsageFilter(since=now + 1)) == {
        "requests": 0,
        "p50_ms": None,
        "p99_ms": None,
    }
