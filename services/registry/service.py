"""The registry: turns provider, route, alias and price definitions into the
route snapshot routers hold, and serves them (credentials never leave it)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tokgateway.common.contracts import REGISTRY_CHANGED_SUBJECT, Bus
from tokgateway.common.errors import GatewayError
from tokgateway.common.http import AdminGuard, JSONResponse, error_response
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import Settings


class RegistryService:
    def __init__(self, settings: Settings, bus: Bus) -> None:
        self.bus = bus
        self._settings = settings
        self._table = self._build(settings)
        self._listeners: list[Callable[[RouteTable], None]] = []

    @staticmethod
    def _build(settings: Settings) -> RouteTable:
        return RouteTable(
            rules=settings.routes,
            aliases=settings.aliases,
            providers=settings.providers,
            primary=str(settings.get("gateway.primary_provider")) or None,
            prices=PriceTable.default(settings.prices),
        )

    def snapshot(self) -> RouteTable:
        return self._table

    async def reload(self, settings: Settings) -> None:
        self._settings = settings
        self._table = self._build(settings)
        await self.bus.publish(REGISTRY_CHANGED_SUBJECT, orjson.dumps({"v": 1}))

    def providers_public(self) -> list[dict[str, object]]:
        return [
            {
                "name": p.name,
                "kind": p.kind,
                "base_url": p.base_url,
                "has_credential": bool(p.api_key),
            }
            for p in self._table.providers.values()
        ]

    def routes_public(self) -> list[dict[str, object]]:
        return [
            {
                "pattern": r.pattern,
                "targets": [
                    {"provider": t.provider, "upstream_model": t.upstream_model} for t in r.targets
                ],
            }
            for r in self._table.rules
        ]


class RegistryAdminAPI:
    def __init__(self, service: RegistryService, guard: AdminGuard) -> None:
        self.service = service
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/admin/providers", self.providers, methods=["GET"]),
            Route("/admin/routes", self.route_list, methods=["GET"]),
        ]

    async def providers(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "data": self.service.providers_public()})

    async def route_list(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
        except GatewayError as err:
            return error_response(err)
        table = self.service.snapshot()
        return JSONResponse(
            {
                "object": "list",
                "data": self.service.routes_public(),
                "aliases": table.aliases,
                "primary_provider": table.primary,
            }
        )
