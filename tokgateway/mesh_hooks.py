"""Event transport and hook delivery of the mesh, run inside the auth service
(the events are auth's, and so are the admin API and the database the hooks
live in; no extra service to deploy). Four loops:

* relay: outbox rows not yet published go to JetStream (acked, message id =
  event id) and are marked published; an event emitted while NATS is down
  goes out when it is back.
* intake: a durable pull consumer (``hooks``) on the EVENTS stream turns each
  ``auth.v1.*`` message into delivery rows, then acks; a restart resumes where
  it stopped, and a redelivered message adds nothing (rows are keyed by event
  id and hook).
* delivery: due deliveries claimed with ``FOR UPDATE SKIP LOCKED`` (several
  auth replicas share the work), sent, recorded.
* sweep: ``key.expired`` for keys whose expiry passed, once each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import nats.errors

from tokgateway.auth.hooks import Hooks
from tokgateway.auth.outbox_pg import PgOutbox
from tokgateway.auth.service import AuthService
from tokgateway.common.contracts import AUTH_SUBJECT_PREFIX, AuthEvent
from tokgateway.common.nats_bus import EVENTS_STREAM, NatsBus, PullSource
from tokgateway.common.postgres import LazyPool

log = logging.getLogger("tokgateway.hooks")

DURABLE = "hooks"
RELAY_IDLE = 1.0
OUTBOX_KEEP = 7 * 86400.0


class MeshEvents:
    def __init__(
        self,
        auth: AuthService,
        outbox: PgOutbox,
        hooks: Hooks,
        bus: NatsBus,
        pool: LazyPool,
        *,
        sweep_every: float = 30.0,
    ) -> None:
        self.auth = auth
        self.outbox = outbox
        self.hooks = hooks
        self.bus = bus
        self.pool = pool
        self.sweep_every = sweep_every
        self._relay_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.relayed = 0
        self.received = 0
        self.consuming = False
        auth.relay_wake = self._relay_wake.set

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._relay(), name="events-relay"),
            asyncio.create_task(self._intake(), name="hooks-intake"),
            asyncio.create_task(self._deliver(), name="hooks-deliver"),
            asyncio.create_task(self._sweep(), name="key-expiry"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hooks.close()

    async def _relay(self) -> None:
        await self.pool.ready.wait()
        delay = 0.1
        while True:
            try:
                rows = await self.outbox.unpublished()
                done = []
                for row in rows:
                    await self.bus.publish_stored(
                        row.event.subject, row.body, row.event.id, row.trace
                    )
                    done.append(row.seq)
                await self.outbox.mark_published(done)
                self.relayed += len(done)
                delay = 0.1
                if rows:
                    continue
            except Exception as exc:  # NATS or PostgreSQL away: keep the rows, retry
                log.warning("event relay waiting", extra={"err": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self._relay_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._relay_wake.wait(), RELAY_IDLE)

    async def _bind(self) -> PullSource:
        delay = 0.2
        while True:
            await self.bus.wait_connected(3600)
            try:
                return await self.bus.pull(
                    AUTH_SUBJECT_PREFIX + ">", DURABLE, ack_wait=10.0, stream=EVENTS_STREAM
                )
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("hooks consumer not bound yet", extra={"err": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _intake(self) -> None:
        await self.pool.ready.wait()
        source = await self._bind()
        self.consuming = True
        while True:
            try:
                msgs = await source.fetch(100, 1.0)
            except nats.errors.Error as exc:
                log.warning("hooks consumer fetch failed", extra={"err": repr(exc)})
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    event = AuthEvent.from_json(msg.data)
                except (ValueError, TypeError):
                    await msg.term()
                    continue
                try:
                    await self.hooks.accept(event)
                except Exception as exc:  # not acked: redelivered after ack_wait
                    log.warning("hook intake failed", extra={"err": repr(exc)})
                    await msg.nak(delay=1.0)
                    continue
                self.received += 1
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()

    async def _deliver(self) -> None:
        await self.pool.ready.wait()
        await self.hooks.run()

    async def _sweep(self) -> None:
        await self.pool.ready.wait()
        while True:
            try:
                await self.auth.sweep_expired()
                await self.outbox.prune(time.time() - OUTBOX_KEEP)
            except Exception as exc:
                log.warning("key expiry sweep failed", extra={"err": repr(exc)})
            await asyncio.sleep(self.sweep_every)
