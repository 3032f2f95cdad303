"""The marketplace as one piece the wiring builds: listings (market.py),
federation (federation.py), subscriptions (market_access.py) and their HTTP
API (market_api.py), on one store and the registry's credential box."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from tokgateway.common.http import AdminGuard
from tokgateway.common.settings import Settings
from tokgateway.registry.federation import Federation
from tokgateway.registry.market import MarketService
from tokgateway.registry.market_access import KeyMinter, MarketAccess
from tokgateway.registry.market_api import MarketAPI
from tokgateway.registry.market_store import MarketStore
from tokgateway.registry.prices_api import PriceTables
from tokgateway.registry.service import RegistryService


class Marketplace:
    def __init__(
        self,
        settings: Settings,
        store: MarketStore,
        registry: RegistryService,
        minter: KeyMinter | None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.market = MarketService(settings, store, registry.box)
        self.peers = Federation(self.market)
        self.access = MarketAccess(settings, self.market, registry, minter)
        self.prices = PriceTables(registry, store)

    def routes(self, guard: AdminGuard) -> list[Route]:
        return (
            self.prices.routes(guard)
            + MarketAPI(
                self.market,
                self.peers,
                self.access,
                guard,
                prices=self._prices,
                feed_token=str(self.settings.get("market.feed_token")),
                registry=self.registry,
            ).routes()
        )

    def _prices(self) -> Any:
        return self.registry.snapshot().prices

    async def start(self, *, poll: bool = True) -> None:
        await self.market.start()
        await self.access.load_prices()
        if self.registry.scoped_prices:
            await self.registry.refresh()
        await self.prices.start()
        if poll:
            self.peers.start_polling(float(self.settings.get("market.poll_s")))

    async def close(self) -> None:
        await self.peers.close()
        await self.access.close()
        await self.market.close()
