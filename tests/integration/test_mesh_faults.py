"""The mesh under faults: every request lands in the ledger exactly once, with
the tokens and cost the clients were told, whatever part of it failed."""

from __future__ import annotations

import asyncio
import math
import signal

import nats
import pytest

from tests.integration.cluster import Mesh
from tests.integration.load import LoadResult, send_load, wait_ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _assert_exactly_once(mesh: Mesh, key_id: str, result: LoadResult, n: int) -> None:
    assert result.statuses == {200: n}, result.statuses
    totals = await wait_ledger(mesh.pg.url, key_id, n)
    assert totals.rows == n, f"{totals.rows} rows for {n} requests\n{mesh.logs()}"
    assert totals.distinct == n
    assert totals.ids == result.ids
    assert totals.prompt_tokens == result.prompt_tokens
    assert totals.completion_tokens == result.completion_tokens
    assert math.isclose(totals.cost, result.cost, rel_tol=1e-9)


async def test_two_routers_every_request_metered_once(fresh_mesh: Mesh) -> None:
    mesh = fresh_mesh
    key = mesh.create_key("two-routers")
    n = 400
    result = await send_load([r.url for r in mesh.routers], key["key"], n, concurrency=8)
    await _assert_exactly_once(mesh, key["id"], result, n)
    # The usage API the CLI reads agrees with the table.
    rows = mesh.usage(key=key["id"])
    assert rows[0]["requests"] == n
    assert rows[0]["prompt_tokens"] == result.prompt_tokens


async def test_ledger_killed_under_load_loses_and_doubles_nothing(fresh_mesh: Mesh) -> None:
    mesh = fresh_mesh
    key = mesh.create_key("ledger-kill")
    n = 450
    third = asyncio.Event()
    load = asyncio.create_task(
        send_load(
            [r.url for r in mesh.routers],
            key["key"],
            n,
            rate=150,
            progress=third,
            progress_at=n // 3,
        )
    )
    await third.wait()
    mesh.ledger.proc.stop(signal.SIGKILL)
    await asyncio.sleep(1.0)
    mesh.ledger.start()
    result = await load
    await asyncio.to_thread(mesh.ledger.wait_ready)
    await _assert_exactly_once(mesh, key["id"], result, n)


async def test_nats_restart_under_load_loses_nothing(fresh_mesh: Mesh) -> None:
    mesh = fresh_mesh
    key = mesh.create_key("nats-restart")
    n = 450
    third = asyncio.Event()
    load = asyncio.create_task(
        send_load(
            [r.url for r in mesh.routers],
            key["key"],
            n,
            rate=150,
            progress=third,
            progress_at=n // 3,
        )
    )
    await third.wait()
    await asyncio.to_thread(mesh.nats.stop)
    await asyncio.sleep(1.5)  # requests keep being served; usage waits in the routers
    await asyncio.to_thread(mesh.nats.start)
    result = await load
    await _assert_exactly_once(mesh, key["id"], result, n)


async def test_postgres_outage_events_wait_in_jetstream(fresh_mesh: Mesh) -> None:
    mesh = fresh_mesh
    key = mesh.create_key("pg-outage")
    routers = [r.url for r in mesh.routers]
    # Warm both routers' key caches: auth needs PostgreSQL for a key it has not seen.
    warm = await send_load(routers, key["key"], 2)
    n = 300
    await asyncio.to_thread(mesh.pg.stop)
    try:
        during = await send_load(routers, key["key"], n, rate=200)
        await asyncio.sleep(1.0)
        pending = await _pending_in_stream(mesh.nats.url)
        assert pending > 0, "events should wait in JetStream while PostgreSQL is down"
    finally:
        await asyncio.to_thread(mesh.pg.start)
    await _assert_exactly_once(mesh, key["id"], warm.merge(during), n + 2)


async def _pending_in_stream(url: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("USAGE", "ledger")
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    finally:
        await nc.close()
