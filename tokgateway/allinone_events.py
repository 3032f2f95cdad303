"""All-in-one event transport: the SQLite outbox followed by every worker.

Each worker of ``gateway run --workers N`` republishes on its own in-process
bus the events other workers stored (key revocations, limit, user and team
changes reach every worker's caches within ``OUTBOX_POLL``). One worker at a
time, the holder of a lease in the same file, feeds the hook deliverer from a
persisted cursor over the outbox and sends due deliveries; when it dies
another takes over after ``LEASE_TTL``. Every worker sweeps for expired keys
(each announcement is claimed once in the database)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from tokgateway.auth.hook_store import SQLiteHookStore
from tokgateway.auth.hooks import Hooks
from tokgateway.auth.service import AuthService
from tokgateway.common.contracts import AUTH_SUBJECT_PREFIX, Bus

log = logging.getLogger("tokgateway.events")

OUTBOX_POLL = 0.25
LEASE_NAME = "deliverer"
LEASE_TTL = 5.0
CURSOR_NAME = "hooks"
OUTBOX_KEEP = 7 * 86400.0  # like the mesh's EVENTS stream


class OutboxPump:
    def __init__(
        self,
        auth: AuthService,
        hooks: Hooks,
        store: SQLiteHookStore,
        bus: Bus,
        *,
        sweep_every: float = 30.0,
    ) -> None:
        self.auth = auth
        self.hooks = hooks
        self.store = store
        self.sweep_every = sweep_every
        self._tasks: list[asyncio.Task[None]] = []
        self._new = asyncio.Event()
        self.leader = False
        bus.subscribe(AUTH_SUBJECT_PREFIX, self._on_event)

    def _on_event(self, subject: str, payload: bytes) -> None:
        self._new.set()

    async def start(self) -> None:
        outbox = self.auth.outbox
        seen = await outbox.last_seq() if outbox is not None else 0
        await self.hooks.migrate()
        self._tasks = [
            asyncio.create_task(self._poll(seen), name="outbox-poll"),
            asyncio.create_task(self._deliver(), name="hooks-deliver"),
            asyncio.create_task(self._sweep(), name="key-expiry"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.leader:
            with contextlib.suppress(Exception):
                await self.store.release(LEASE_NAME, self.auth.origin)
        await self.hooks.close()
        await self.store.db.close()

    async def _poll(self, seen: int) -> None:
        while True:
            await asyncio.sleep(OUTBOX_POLL)
            try:
                seen = await self.auth.republish_foreign(seen)
            except Exception:
                log.exception("outbox poll failed")

    async def _deliver(self) -> None:
        while True:
            try:
                self.leader = await self.store.lease(
                    LEASE_NAME, self.auth.origin, time.time(), LEASE_TTL
                )
                if self.leader:
                    await self._feed()
                    while await self.hooks.deliver_due():
                        pass
            except Exception:
                log.exception("hook delivery failed")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), OUTBOX_POLL if self.leader else 1.0)

    async def _feed(self) -> None:
        """Deliveries for every event stored after the cursor, then the cursor."""
        outbox = self.auth.outbox
        if outbox is None:
            return
        cursor = await self.store.cursor(CURSOR_NAME) or 0
        while rows := await outbox.since(cursor):
            for row in rows:
                await self.hooks.accept(row.event)
            cursor = rows[-1].seq
            await self.store.set_cursor(CURSOR_NAME, cursor)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.auth.sweep_expired()
                if self.auth.outbox is not None and self.leader:
                    await self.auth.outbox.prune(time.time() - OUTBOX_KEEP)
            except Exception:
                log.exception("key expiry sweep failed")
            await asyncio.sleep(self.sweep_every)
