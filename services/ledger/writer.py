"""Batches usage events off the request path and writes them in one transaction
per batch. A graceful stop flushes everything queued; a crash loses at most what
arrived within the last flush interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from tokgateway.common.contracts import UsageEvent

log = logging.getLogger("tokgateway.ledger")

Sink = Callable[[list[UsageEvent]], Awaitable[int]]


class LedgerWriter:
    def __init__(
        self,
        sink: Sink,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        queue_limit: int = 100_000,
    ) -> None:
        self._sink = sink
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.queue_limit = queue_limit
        self._queue: deque[UsageEvent] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0
        self.dropped = 0
        self.failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-writer")

    def submit(self, event: UsageEvent) -> None:
        if len(self._queue) >= self.queue_limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("ledger queue full, dropping events", extra={"dropped": self.dropped})
            return
        self._queue.append(event)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            self._wake.clear()
            await self.flush()
            if self._closing and not self._queue:
                return

    async def flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            try:
                self.written += await self._sink(batch)
            except Exception:
                # Keep the events: the next flush tries again (inserts are idempotent).
                self.failures += 1
                self._queue.extendleft(reversed(batch))
                log.exception("ledger write failed; will retry", extra={"batch": len(batch)})
                if self._closing:
                    return
                await asyncio.sleep(min(self.flush_interval * 5, 2.0))
                return

    async def close(self, grace: float = 10.0) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace)
            except TimeoutError:
                self._task.cancel()
                log.error("ledger flush timed out", extra={"lost": len(self._queue)})
            self._task = None
        else:
            await self.flush()
