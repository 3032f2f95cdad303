"""Shared pieces of the mesh benchmarks: the throwaway cluster of the
integration tests, and a fast load generator."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.cluster import Mesh

__all__ = ["Mesh", "blast"]


async def blast(
    urls: list[str], key: str, seconds: float, concurrency: int
) -> tuple[int, int, float]:
    """Closed-loop load: ``concurrency`` workers send chat requests round-robin
    over ``urls`` for ``seconds``. Returns (ok, failed, elapsed)."""
    body = {"model": "echo", "messages": [{"role": "user", "content": "bench the mesh"}]}
    headers = {"authorization": f"Bearer {key}"}
    ok = failed = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(n: int) -> None:
            nonlocal ok, failed
            i = n
            while time.perf_counter() < stop_at:
                url = urls[i % len(urls)] + "/v1/chat/completions"
                i += 1
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        ok += 1
                    else:
                        failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return ok, failed, time.perf_counter() - started
