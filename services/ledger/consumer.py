"""The mesh ledger's intake: a durable JetStream pull consumer on usage.v1.

Each fetched batch is inserted in one transaction and acked only after the
commit. If the database is down, nothing is acked: the batch is retried here
with backoff (and JetStream redelivers what was in flight if this process
dies), so events wait in the stream until PostgreSQL is back. Inserts are
idempotent, so a redelivery after a lost ack never double-counts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol

from tokgateway.common.contracts import UsageEvent
from tokgateway.ledger.stores import LedgerStore

log = logging.getLogger("tokgateway.ledger")


class Delivery(Protocol):
    data: bytes

    async def ack(self) -> None: ...

    async def term(self) -> None:
        """Never redeliver (a malformed message)."""

    async def in_progress(self) -> None:
        """Still working on it: restart the redelivery timer."""


class BatchSource(Protocol):
    async def fetch(self, max_items: int, wait: float) -> Sequence[Delivery]:
        """Up to ``max_items`` messages; [] when none arrived within ``wait``."""


class UsageConsumer:
    def __init__(
        self,
        source: BatchSource,
        store: LedgerStore,
        *,
        batch_size: int = 500,
        fetch_wait: float = 1.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.source = source
        self.store = store
        self.batch_size = batch_size
        self.fetch_wait = fetch_wait
        self.max_backoff = max_backoff
        self.inserted = 0
        self.received = 0
        self.duplicates = 0
        self.malformed = 0
        self.failures = 0
        self.healthy = True
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-consumer")

    async def stop(self, grace: float = 15.0) -> None:
        """Stop fetching; let the batch in hand commit and ack within ``grace``."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            log.error("ledger consumer did not finish its batch in time; it will be redelivered")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self.source.fetch(self.batch_size, self.fetch_wait)
            except Exception as exc:  # connection trouble: the client reconnects
                log.warning("usage fetch failed", extra={"err": repr(exc)})
                await self._pause(0.5)
                continue
            if msgs:
                await self._handle(msgs)

    async def _handle(self, msgs: Sequence[Delivery]) -> None:
        self.received += len(msgs)
        events: list[UsageEvent] = []
        good: list[Delivery] = []
        for msg in msgs:
            try:
                events.append(UsageEvent.from_json(msg.data))
                good.append(msg)
            except (ValueError, TypeError):
                self.malformed += 1
                log.error("malformed usage event dropped")
                await _quietly(msg.term())
        backoff = 0.2
        while True:
            try:
                inserted = await self.store.insert_batch(events)
                break
            except Exception as exc:
                self.failures += 1
                self.healthy = False
                log.warning(
                    "ledger insert failed; batch held, retrying",
                    extra={"batch": len(events), "err": repr(exc)},
                )
                # Even when stopping, keep the batch unacked: JetStream redelivers it.
                if self._stopping.is_set():
                    return
                for msg in good:  # held, not lost: no redelivery while we retry
                    await _quietly(msg.in_progress())
                await self._pause(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        self.healthy = True
        self.inserted += inserted
        self.duplicates += len(events) - inserted
        for msg in good:
            await _quietly(msg.ack())

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


async def _quietly(op: Awaitable[None]) -> None:
    """Ack/term: a lost ack only causes a redelivery, which is idempotent."""
    try:
        await op
    except Exception as exc:
        log.debug("ack failed", extra={"err": repr(exc)})
