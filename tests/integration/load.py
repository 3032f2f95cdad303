"""Request load and ledger checks shared by the mesh tests and benchmarks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
import httpx

PRICE_IN = 1.5  # USD per million, the [prices] echo entry of the test config
PRICE_OUT = 2.5


@dataclass
class LoadResult:
    ids: set[str] = field(default_factory=set)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def merge(self, other: LoadResult) -> LoadResult:
        statuses = dict(self.statuses)
        for code, count in other.statuses.items():
            statuses[code] = statuses.get(code, 0) + count
        return LoadResult(
            ids=self.ids | other.ids,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            statuses=statuses,
            elapsed=self.elapsed + other.elapsed,
        )

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * PRICE_IN + self.completion_tokens * PRICE_OUT) / 1e6


async def send_load(
    routers: list[str],
    key: str,
    n: int,
    *,
    concurrency: int = 8,
    rate: float | None = None,
    progress: asyncio.Event | None = None,
    progress_at: int = 0,
) -> LoadResult:
    """``n`` chat requests spread over ``routers``; ``rate`` paces them (per
    second); ``progress`` is set once ``progress_at`` have completed."""
    result = LoadResult()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if rate:
                    delay = started + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                words = " ".join(f"w{j}" for j in range(i % 7 + 1))
                resp = await client.post(
                    routers[i % len(routers)] + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {key}"},
                    json={"model": "echo", "messages": [{"role": "user", "content": words}]},
                )
                result.statuses[resp.status_code] = result.statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 200:
                    usage = resp.json()["usage"]
                    result.prompt_tokens += usage["prompt_tokens"]
                    result.completion_tokens += usage["completion_tokens"]
                    result.ids.add(resp.headers["x-request-id"])
                done = sum(result.statuses.values())
                if progress is not None and done >= progress_at:
                    progress.set()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


@dataclass
class LedgerTotals:
    rows: int
    distinct: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    ids: set[str]


async def ledger_totals(db_url: str, key_id: str) -> LedgerTotals:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT request_id, prompt_tokens, completion_tokens, cost_usd FROM usage_events"
            " WHERE key_id = $1",
            key_id,
        )
    except asyncpg.UndefinedTableError:
        rows = []
    finally:
        await conn.close()
    return LedgerTotals(
        rows=len(rows),
        distinct=len({r["request_id"] for r in rows}),
        prompt_tokens=sum(r["prompt_tokens"] for r in rows),
        completion_tokens=sum(r["completion_tokens"] for r in rows),
        cost=sum(r["cost_usd"] for r in rows),
        ids={r["request_id"] for r in rows},
    )


async def wait_ledger(db_url: str, key_id: str, n: int, within: float = 60.0) -> LedgerTotals:
    """Totals once the ledger holds ``n`` rows for the key (or ``within`` seconds
    passed), re-read after a pause so late duplicates would show."""
    deadline = time.monotonic() + within
    totals = await ledger_totals(db_url, key_id)
    while totals.rows < n and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        try:
            totals = await ledger_totals(db_url, key_id)
        except (OSError, asyncpg.PostgresError):
            continue
    await asyncio.sleep(1.0)
    return await ledger_totals(db_url, key_id)
