"""The router of the mesh: the same RouterService as the all-in-one gateway,
wired to HTTP clients for auth and registry, NATS for events and usage, and
Redis for limits shared by every replica.

* keys: verified by auth over HTTP, cached locally, evicted by auth.v1.* events;
* routes: an in-memory snapshot from the registry, reloaded on
  registry.v1.changed, on NATS reconnects and every ``RESYNC_INTERVAL``;
* usage: one event per request into a bounded buffer that JetStream drains;
* provider health checks: each round's results on router.v1.health, which
  the registry shows in `gateway providers` (mesh_health.py);
* the console: /ui when built, /admin/config answered here, the rest of the
  admin API passed to its owning service (mesh_admin.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping

from opentelemetry import propagate
from starlette.routing import BaseRoute

from tokgateway.allinone import router_options
from tokgateway.common.clients import (
    HttpKeyVerifier,
    HttpSpendSource,
    RegistryClient,
    ServiceClient,
    ServiceUnavailable,
)
from tokgateway.common.contracts import REGISTRY_CHANGED_SUBJECT, SpendSource
from tokgateway.common.crypto import CredentialBox, SecretError, service_token
from tokgateway.common.http import AdminGuard
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.nats_bus import NatsBus
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import Settings
from tokgateway.common.tracing import Tracing
from tokgateway.config_api import config_routes
from tokgateway.mesh_admin import AdminForward
from tokgateway.mesh_common import StateCollector, require
from tokgateway.mesh_health import HealthPublisher
from tokgateway.router.governor import Governor, LocalGovernor
from tokgateway.router.governor_redis import RedisGovernor
from tokgateway.router.service import RouterService
from tokgateway.ui import ui_routes

log = logging.getLogger("tokgateway.router")

RESYNC_INTERVAL = 60.0


def empty_table() -> RouteTable:
    return RouteTable(rules=(), aliases={}, providers={}, primary=None, prices=PriceTable({}))


def inject_trace_context(headers: MutableMapping[str, str]) -> None:
    """Carry the current trace context on every upstream request."""
    propagate.inject(headers)


class RouterNode:
    name = "router"

    def __init__(self, settings: Settings) -> None:
        cfg = require(settings, "router", "nats_url", "auth_url", "registry_url", "secret_key")
        self.settings = settings
        otlp = str(settings.get("gateway.otlp_endpoint"))
        self.tracing = Tracing("router", otlp_endpoint=otlp)
        self.bus = NatsBus(
            cfg["nats_url"],
            name="router",
            buffer_limit=int(settings.get("gateway.event_buffer")),
            tracing=self.tracing,
        )
        token = service_token(cfg["secret_key"])
        self.auth = ServiceClient("auth", cfg["auth_url"], token)
        self.registry = RegistryClient(
            ServiceClient("registry", cfg["registry_url"], token),
            CredentialBox(cfg["secret_key"]),
        )
        redis_url = str(settings.get("gateway.redis_url"))
        # budget counters start from the ledger's spend
        ledger_url = str(settings.get("gateway.ledger_url"))
        self.ledger = ServiceClient("ledger", ledger_url, token) if ledger_url else None
        spend: SpendSource | None = HttpSpendSource(self.ledger) if self.ledger else None
        self.redis: RedisGovernor | None = None

        def governor(m: RouterMetrics) -> Governor:
            if not redis_url:
                return LocalGovernor(spend, m)  # one replica: its own counters
            self.redis = RedisGovernor(redis_url, spend, m)
            return self.redis

        self.verifier = HttpKeyVerifier(self.auth)
        # the console at /ui calls the admin API here; each call goes to its owner
        self.admin = AdminForward(
            {"auth": cfg["auth_url"], "registry": cfg["registry_url"], "ledger": ledger_url}
        )
        self.router = RouterService(
            table=empty_table(),
            verifier=self.verifier,
            bus=self.bus,
            options=router_options(settings),
            governor=governor,
            header_hooks=[inject_trace_context],
            tracing=self.tracing,
        )
        # each round of provider health checks goes to the registry, for `gateway providers`
        prober = self.router.prober
        prober.listeners.append(HealthPublisher(self.bus.publish_nowait, prober.interval_s))
        self.loaded = False
        self._reload_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.metrics = self.router.metrics.registry
        self.metrics.register(StateCollector("gateway_router_mesh", self._state))

    def _state(self) -> dict[str, float]:
        return {
            "usage_buffered": self.bus.buffered,
            "usage_published": self.bus.published,
            "usage_dropped": self.bus.dropped,
            "usage_publish_errors": self.bus.publish_errors,
            "bus_connected": float(self.bus.connected),
            "routes_loaded": float(self.loaded),
            "snapshot_version": float(self.registry.version or 0),
        }

    def routes(self) -> list[BaseRoute]:
        skip = {"/healthz", "/readyz", "/metrics"}
        return [
            *(r for r in self.router.routes() if getattr(r, "path", "") not in skip),
            # this router's own effective configuration, like the all-in-one's
            *config_routes(lambda: self.settings, AdminGuard(self.verifier)),
            *self.admin.routes(),
            *ui_routes(),
        ]

    async def start(self) -> None:
        await self.bus.start()
        self.bus.subscribe(REGISTRY_CHANGED_SUBJECT, self._on_registry_changed)
        self.bus.on_reconnect(self._resync)
        await self.router.start()
        self._reload_wanted.set()
        self._tasks = [
            asyncio.create_task(self._reloader(), name="router-snapshot"),
            asyncio.create_task(self._periodic(), name="router-resync"),
        ]

    def _on_registry_changed(self, subject: str, payload: bytes) -> None:
        self._reload_wanted.set()

    def _resync(self) -> None:
        # Events sent while we were away may be lost: forget cached keys, reload routes.
        self.router.keys.clear()
        self._reload_wanted.set()

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_INTERVAL)
            self._reload_wanted.set()

    async def _reloader(self) -> None:
        """One reload at a time; bursts of change events collapse into one."""
        delay = 0.2
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            try:
                table = await self.registry.snapshot()
            except (ServiceUnavailable, SecretError, ValueError, KeyError) as exc:
                log.warning("route snapshot not loaded", extra={"err": repr(exc)})
                self._reload_wanted.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.2
            self.router.replace_table(table)
            self.loaded = True
            log.info("route snapshot loaded", extra={"version": self.registry.version})

    async def checks(self) -> dict[str, bool]:
        auth_ok, registry_ok = await asyncio.gather(
            self.auth.healthy(), self.registry.client.healthy()
        )
        out = {
            "routes": self.loaded,
            "nats": self.bus.connected,
            "auth": auth_ok,
            "registry": registry_ok,
        }
        if self.redis is not None:
            out["redis"] = await self.redis.ping()
        return out

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # In-flight requests are done: publish what is buffered, then close.
        await self.bus.close(grace=10.0)
        await self.router.close()
        await self.admin.close()
        await self.auth.close()
        if self.ledger is not None:
            await self.ledger.close()
        await self.registry.client.close()
