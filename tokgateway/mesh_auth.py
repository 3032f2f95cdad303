"""The auth service of the mesh: keys and users on PostgreSQL, the admin API,
the internal verify endpoint routers call, lifecycle events on NATS."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from tokgateway.auth.admin_api import AuthAdminAPI
from tokgateway.auth.hook_store_pg import PgHookStore
from tokgateway.auth.hooks import DeliveryPolicy, Hooks
from tokgateway.auth.hooks_api import HooksAdminAPI
from tokgateway.auth.outbox_pg import PgOutbox
from tokgateway.auth.service import AuthInternalAPI, AuthService
from tokgateway.auth.store_pg import PgAuthStore
from tokgateway.common.clients import HttpSpendSource, ServiceClient
from tokgateway.common.crypto import service_token
from tokgateway.common.http import AdminGuard
from tokgateway.common.nats_bus import NatsBus
from tokgateway.common.postgres import LazyPool, is_postgres_url
from tokgateway.common.settings import ConfigError, Settings
from tokgateway.common.tracing import Tracing
from tokgateway.mesh_common import StateCollector, require
from tokgateway.mesh_hooks import MeshEvents

log = logging.getLogger("tokgateway.auth")


class AuthNode:
    name = "auth"

    def __init__(self, settings: Settings) -> None:
        cfg = require(settings, "auth", "database_url", "nats_url", "secret_key")
        if not is_postgres_url(cfg["database_url"]):
            raise ConfigError("gateway.database_url: the mesh needs a postgresql:// URL")
        self.settings = settings
        self.tracing = Tracing("auth", otlp_endpoint=str(settings.get("gateway.otlp_endpoint")))
        self.bus = NatsBus(cfg["nats_url"], name="auth", tracing=self.tracing)
        self.pool = LazyPool(cfg["database_url"])
        outbox = PgOutbox(self.pool)
        self.service = AuthService(
            PgAuthStore(self.pool),
            self.bus,
            admin_email=str(settings.get("gateway.admin_email")),
            outbox=outbox,
        )
        self.hooks = Hooks(
            PgHookStore(self.pool),
            settings.hooks,
            DeliveryPolicy.from_settings(settings),
            outbox=outbox,
            secret_key=cfg["secret_key"],
            api_scripts=bool(settings.get("hooks.api_scripts")),
        )
        self.events = MeshEvents(
            self.service,
            outbox,
            self.hooks,
            self.bus,
            self.pool,
            sweep_every=float(settings.get("hooks.expiry_sweep_s")),
        )
        self.token = service_token(cfg["secret_key"])
        # Key spend and remaining budget come from the ledger, when it is known.
        ledger_url = str(settings.get("gateway.ledger_url"))
        self.ledger = ServiceClient("ledger", ledger_url, self.token) if ledger_url else None
        self.started = False
        self.metrics = CollectorRegistry(auto_describe=True)
        self.metrics.register(StateCollector("gateway_auth", self._state))

    def _state(self) -> dict[str, float]:
        return {
            "bus_connected": float(self.bus.connected),
            "store_started": float(self.started),
            "events_relayed": self.events.relayed,
            "hook_events_received": self.events.received,
            "hook_deliveries": self.hooks.delivered,
            "hook_failed_attempts": self.hooks.failed_attempts,
            "hook_dead_letters": self.hooks.dead,
        }

    def routes(self) -> list[BaseRoute]:
        guard = AdminGuard(self.service)
        return [
            *AuthInternalAPI(self.service, self.token).routes(),
            *AuthAdminAPI(
                self.service, guard, HttpSpendSource(self.ledger) if self.ledger else None
            ).routes(),
            *HooksAdminAPI(self.hooks, guard).routes(),
        ]

    async def start(self) -> None:
        await self.bus.start()
        self.pool.on_ready(self._prepare)
        self.pool.on_ready(self.hooks.migrate)
        await self.pool.start()
        self.events.start()

    async def _prepare(self) -> None:
        admin_key = str(self.settings.get("gateway.admin_key")) or None
        generated = await self.service.start(admin_key)
        if generated:
            # Shown once, on this service's output, like the all-in-one banner.
            print(f"Admin key (shown once, store it now): {generated}", file=sys.stdout, flush=True)
        self.started = True

    async def checks(self) -> dict[str, bool]:
        return {
            "postgres": self.started and await self.pool.ping(),
            "nats": self.bus.connected,
        }

    async def stop(self) -> None:
        await self.events.close()
        await self.bus.close()
        await self.pool.close()
        if self.ledger is not None:
            await self.ledger.close()
