"""The ledger's sustained insert rate: JetStream -> durable consumer ->
batched INSERT ... ON CONFLICT into partitioned PostgreSQL.

    .venv/bin/python bench/mesh_ledger.py [--events 100000]

Fills the usage stream while the ledger is stopped, then starts it and times
how fast it drains the backlog into PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
import nats
from mesh_common import Mesh

from tokgateway.common.contracts import USAGE_SUBJECT, UsageEvent
from tokgateway.common.nats_bus import NatsBus


async def fill(url: str, n: int) -> float:
    bus = NatsBus(url, name="bench-filler", buffer_limit=n + 1)
    await bus.start()
    await bus.wait_connected(10)
    started = time.perf_counter()
    now = time.time()
    for i in range(n):
        ev = UsageEvent(
            request_id=f"bench_{i}",
            ts=now,
            key_id="key_bench",
            route="/v1/chat/completions",
            model="echo",
            provider="echo",
            prompt_tokens=12,
            completion_tokens=30,
            cost_usd=0.0001,
        )
        bus.publish_nowait(USAGE_SUBJECT, ev.to_json())
    await bus.close(grace=600)
    return time.perf_counter() - started


async def rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM usage_events"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    mesh = Mesh(Path(tempfile.mkdtemp(prefix="tg-bench-")), routers=0)
    try:
        mesh.start()
        mesh.ledger.stop()
        fill_s = await fill(mesh.nats.url, args.events)
        print(f"published {args.events} events to JetStream in {fill_s:.1f} s")
        nc = await nats.connect(mesh.nats.url)
        info = await nc.jetstream().stream_info("USAGE")
        await nc.close()
        print(f"stream holds {info.state.messages} messages")
        started = time.perf_counter()
        mesh.ledger.start()
        while (done := await rows(mesh.pg.url)) < args.events:
            await asyncio.sleep(0.2)
            if time.perf_counter() - started > 600:
                break
        elapsed = time.perf_counter() - started
        print(
            f"ledger inserted {done} rows in {elapsed:.1f} s (process start included): "
            f"{done / elapsed:.0f} rows/s"
        )
    finally:
        mesh.close()


if __name__ == "__main__":
    asyncio.run(main())
