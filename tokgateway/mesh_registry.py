"""The registry service of the mesh: providers, models, prices and routes on
PostgreSQL (credentials sealed with GATEWAY_SECRET_KEY), the admin API, the
snapshot routers load, and registry.v1.changed on every change; the routers'
provider health checks (router.v1.health) in the providers listing."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from tokgateway.common.clients import HttpKeyVerifier, ServiceClient
from tokgateway.common.contracts import REGISTRY_CHANGED_SUBJECT, ROUTER_HEALTH_SUBJECT
from tokgateway.common.crypto import CredentialBox, service_token
from tokgateway.common.http import AdminGuard
from tokgateway.common.nats_bus import NatsBus
from tokgateway.common.postgres import LazyPool, is_postgres_url
from tokgateway.common.settings import ConfigError, Settings
from tokgateway.common.tracing import Tracing
from tokgateway.market_minter import HttpMinter
from tokgateway.mesh_common import StateCollector, require
from tokgateway.mesh_health import HealthReports
from tokgateway.registry.market_store_pg import PgMarketStore
from tokgateway.registry.marketplace import Marketplace
from tokgateway.registry.openapi import routes as openapi_routes
from tokgateway.registry.service import RegistryAdminAPI, RegistryInternalAPI, RegistryService
from tokgateway.registry.store_pg import PgRegistryStore


class RegistryNode:
    name = "registry"

    def __init__(self, settings: Settings) -> None:
        cfg = require(settings, "registry", "database_url", "nats_url", "secret_key", "auth_url")
        if not is_postgres_url(cfg["database_url"]):
            raise ConfigError("gateway.database_url: the mesh needs a postgresql:// URL")
        otlp = str(settings.get("gateway.otlp_endpoint"))
        self.tracing = Tracing("registry", otlp_endpoint=otlp)
        self.bus = NatsBus(cfg["nats_url"], name="registry", tracing=self.tracing)
        self.pool = LazyPool(cfg["database_url"])
        self.service = RegistryService(
            settings,
            self.bus,
            store=PgRegistryStore(self.pool),
            box=CredentialBox(cfg["secret_key"]),
        )
        # the routers' provider health checks, shown in `gateway providers`
        self.health = HealthReports()
        self.service.probe_health = self.health.public
        self.token = service_token(cfg["secret_key"])
        self.auth = ServiceClient("auth", cfg["auth_url"], self.token)
        # listings, peers and the signing key on the same database; keys for
        # subscribers are minted by the auth service over its internal API
        self.market = Marketplace(
            settings, PgMarketStore(self.pool), self.service, HttpMinter(self.auth)
        )
        self.started = False
        self.metrics = CollectorRegistry(auto_describe=True)
        self.metrics.register(StateCollector("gateway_registry", self._state))

    def _state(self) -> dict[str, float]:
        return {
            "snapshot_version": self.service.version,
            "bus_connected": float(self.bus.connected),
        }

    def routes(self) -> list[BaseRoute]:
        guard = AdminGuard(HttpKeyVerifier(self.auth))
        return [
            *RegistryInternalAPI(self.service, self.token).routes(),
            *RegistryAdminAPI(self.service, guard).routes(),
            *self.market.routes(guard),
            *openapi_routes(),
        ]

    async def start(self) -> None:
        await self.bus.start()
        self.bus.subscribe(ROUTER_HEALTH_SUBJECT, self.health.on_event)
        self.pool.on_ready(self._load)
        await self.pool.start()

    async def _load(self) -> None:
        await self.service.start()
        await self.market.start()
        self.started = True
        # The INI layers may have changed since the routers loaded their snapshot.
        event = {"v": 1, "what": "config", "version": self.service.version}
        self.bus.publish_nowait(REGISTRY_CHANGED_SUBJECT, orjson.dumps(event))

    async def checks(self) -> dict[str, bool]:
        return {"postgres": self.started and await self.pool.ping(), "nats": self.bus.connected}

    async def stop(self) -> None:
        await self.bus.close()
        await self.market.close()
        await self.pool.close()
        await self.auth.close()
