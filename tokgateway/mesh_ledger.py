"""The ledger service of the mesh: a durable JetStream consumer writing usage
into PostgreSQL, partition upkeep and retention, and the usage API."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from tokgateway.common.clients import HttpKeyVerifier, ServiceClient
from tokgateway.common.contracts import USAGE_SUBJECT
from tokgateway.common.crypto import service_token
from tokgateway.common.http import AdminGuard
from tokgateway.common.nats_bus import NatsBus
from tokgateway.common.postgres import UNAVAILABLE, LazyPool, is_postgres_url
from tokgateway.common.settings import ConfigError, Settings
from tokgateway.common.tracing import Tracing
from tokgateway.ledger.consumer import UsageConsumer
from tokgateway.ledger.service import LedgerAdminAPI, LedgerInternalAPI, LedgerService
from tokgateway.ledger.store_pg import PgLedgerStore
from tokgateway.mesh_common import StateCollector, require

log = logging.getLogger("tokgateway.ledger")

DURABLE = "ledger"
MAINTENANCE_INTERVAL = 3600.0
LAG_INTERVAL = 5.0


class LedgerNode:
    name = "ledger"

    def __init__(self, settings: Settings) -> None:
        cfg = require(settings, "ledger", "database_url", "nats_url", "secret_key", "auth_url")
        if not is_postgres_url(cfg["database_url"]):
            raise ConfigError("gateway.database_url: the mesh needs a postgresql:// URL")
        self.tracing = Tracing("ledger", otlp_endpoint=str(settings.get("gateway.otlp_endpoint")))
        self.bus = NatsBus(cfg["nats_url"], name="ledger", tracing=self.tracing)
        self.pool = LazyPool(cfg["database_url"])
        self.store = PgLedgerStore(
            self.pool, retention_days=int(settings.get("ledger.retention_days"))
        )
        self.service = LedgerService(self.store, None)
        self.batch_size = int(settings.get("ledger.batch_size"))
        self.token = service_token(cfg["secret_key"])
        self.auth = ServiceClient("auth", cfg["auth_url"], self.token)
        self.consumer: UsageConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pending = (0, 0)  # the durable consumer's backlog, read every LAG_INTERVAL
        self.metrics = CollectorRegistry(auto_describe=True)
        self.metrics.register(StateCollector("gateway_ledger", self._state))

    def _state(self) -> dict[str, float]:
        c = self.consumer
        return {
            "events_received": c.received if c else 0,
            "rows_inserted": c.inserted if c else 0,
            "duplicates_skipped": c.duplicates if c else 0,
            "malformed_events": c.malformed if c else 0,
            "insert_failures": c.failures if c else 0,
            "bus_connected": float(self.bus.connected),
            "consumer_pending": self.pending[0],
            "consumer_ack_pending": self.pending[1],
        }

    def routes(self) -> list[BaseRoute]:
        guard = AdminGuard(HttpKeyVerifier(self.auth))
        return [
            *LedgerAdminAPI(self.service, guard).routes(),
            *LedgerInternalAPI(self.service, self.token).routes(),
        ]

    async def start(self) -> None:
        await self.bus.start()
        self.pool.on_ready(self.store.migrate)
        await self.pool.start()
        self._tasks = [
            asyncio.create_task(self._attach(), name="ledger-attach"),
            asyncio.create_task(self._maintain(), name="ledger-maintenance"),
            asyncio.create_task(self._watch_lag(), name="ledger-lag"),
        ]

    async def _attach(self) -> None:
        """Bind the durable consumer once NATS and the schema are there."""
        await self.pool.ready.wait()
        delay = 0.2
        while True:
            await self.bus.wait_connected(3600)
            try:
                source = await self.bus.pull(USAGE_SUBJECT, DURABLE)
                break
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("durable consumer not bound yet", extra={"err": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.consumer = UsageConsumer(source, self.store, batch_size=self.batch_size)
        self.consumer.start()
        log.info("ledger consuming", extra={"durable": DURABLE})

    async def _watch_lag(self) -> None:
        """JetStream's own count of what the ledger has not taken or not acked."""
        while True:
            await asyncio.sleep(LAG_INTERVAL)
            if self.consumer is None or not self.bus.connected:
                continue
            try:
                self.pending = await self.bus.pending(DURABLE)
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("consumer lag not read", extra={"err": repr(exc)})

    async def _maintain(self) -> None:
        await self.pool.ready.wait()
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            try:
                await self.store.maintain()
            except UNAVAILABLE as exc:
                log.warning("ledger maintenance skipped", extra={"err": repr(exc)})

    async def checks(self) -> dict[str, bool]:
        return {
            "postgres": await self.pool.ping(),
            "nats": self.bus.connected,
            "consumer": self.consumer is not None,
        }

    async def stop(self) -> None:
        # Stop taking from the stream; the batch in hand commits and acks.
        if self.consumer is not None:
            await self.consumer.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close()
        await self.pool.close()
        await self.auth.close()
