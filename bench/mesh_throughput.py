"""Router throughput in the mesh: one replica vs two, on this machine.

    .venv/bin/python bench/mesh_throughput.py [--seconds 10] [--concurrency 32]

Starts a throwaway mesh (NATS, PostgreSQL, Redis, auth, registry, ledger, two
routers), drives the echo provider closed-loop, and checks that the ledger
caught up with every request."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import asyncpg
from mesh_common import Mesh, blast


async def ledger_rows(url: str, key_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        sql = "SELECT count(*) FROM usage_events WHERE key_id = $1"
        return int(await conn.fetchval(sql, key_id))
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    mesh = Mesh(Path(tempfile.mkdtemp(prefix="tg-bench-")), routers=2)
    try:
        mesh.start()
        key = mesh.create_key("bench")
        urls = [r.url for r in mesh.routers]
        total, _, _ = await blast(urls, key["key"], 2.0, args.concurrency)  # warm-up
        rates = {}
        for label, targets in (("1 router", urls[:1]), ("2 routers", urls)):
            ok, failed, elapsed = await blast(targets, key["key"], args.seconds, args.concurrency)
            total += ok + failed
            rates[label] = ok / elapsed
            print(f"{label}: {ok / elapsed:7.0f} req/s ({ok} ok, {failed} failed, {elapsed:.1f} s)")
        print(f"scaling: {rates['2 routers'] / rates['1 router']:.2f}x")
        # The ledger keeps up: wait until its row count stops moving.
        previous, current = -1, await ledger_rows(mesh.pg.url, key["id"])
        while current != previous:
            await asyncio.sleep(1.0)
            previous, current = current, await ledger_rows(mesh.pg.url, key["id"])
        print(f"requests sent: {total}; ledger rows: {current}")
    finally:
        mesh.close()


if __name__ == "__main__":
    asyncio.run(main())
