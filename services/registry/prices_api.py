"""The price table over HTTP (`gateway prices`): which table is in force and
from when, every model's price and where it came from, the routed models no
price covers, and replacing the table (`gateway prices refresh`). A refreshed
table is kept in the market store and survives restarts; single prices set
with `gateway prices set` are model records (they win over any table)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.errors import BadRequest, GatewayError
from tokgateway.common.http import AdminGuard, JSONResponse, error_response, read_json
from tokgateway.common.pricing import parse_table, shipped_table
from tokgateway.registry.market_store import MarketStore
from tokgateway.registry.service import RegistryService

log = logging.getLogger("tokgateway.registry")

PRICES = "prices"
TABLE_LIMIT = 4 << 20


class PriceTables:
    def __init__(self, registry: RegistryService, store: MarketStore) -> None:
        self.registry = registry
        self.store = store
        self.as_of = str(shipped_table().get("as_of") or "")
        self.source = "shipped"

    async def start(self) -> None:
        """The stored table, if one was refreshed; then flag unpriced models."""
        if await self.load():
            await self.registry.refresh()
        for model in self.registry.unpriced():
            log.warning(
                "model %s has no price: it is metered at 0 until `gateway prices set` "
                "or a price table covers it",
                model,
            )

    async def load(self) -> bool:
        """Take the stored table (a refresh through this or another worker of
        the same file) as the registry's base prices; True when there is one.
        The caller refreshes the snapshot."""
        doc = await self.store.get(PRICES, "table")
        if doc is None:
            return False
        as_of, prices = parse_table(doc)
        self.as_of, self.source = as_of, str(doc.get("source") or "refreshed")
        self.registry.base_prices = prices
        return True

    async def replace(self, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            as_of, prices = parse_table(doc)
        except ValueError as exc:
            raise BadRequest(f"Not a price table: {exc}.") from None
        source = str(doc.get("source") or "refreshed")[:500]
        stored = {"as_of": as_of, "source": source, "models": doc["models"], "at": time.time()}
        await self.store.put(PRICES, "table", stored)
        await self.registry.store.touch()  # other workers of the same file reload
        self.as_of, self.source = as_of, source
        await self.registry.set_base_prices(prices)
        log.info("price table replaced", extra={"as_of": as_of, "models": len(prices)})
        return {"id": "price-table", "as_of": as_of, "source": source, "models": len(prices)}

    def listing(self) -> dict[str, Any]:
        table = self.registry.snapshot().prices
        rows = [
            {
                "id": name,
                "model": name,
                "input": p.input,
                "output": p.output,
                "cached": p.cached,
                "cache_write": p.cache_write,
                "source": "override" if name in table.overridden else self.source,
            }
            for name, p in sorted(table.models().items())
        ]
        # a listing in use bills its provider's models at its own prices
        rows += [
            {
                "id": f"{provider}:{model}",
                "model": model,
                "provider": provider,
                "input": p.input,
                "output": p.output,
                "cached": p.cached,
                "cache_write": p.cache_write,
                "source": "listing",
            }
            for (provider, model), p in sorted(table.scoped.items())
        ]
        return {
            "object": "list",
            "as_of": self.as_of,
            "source": self.source,
            "data": rows,
            "unpriced": self.registry.unpriced(),
        }

    def routes(self, guard: AdminGuard) -> list[Route]:
        return [
            _route("/admin/prices", "GET", guard.reader, self._list),
            _route("/admin/prices/table", "POST", guard.check, self._replace),
        ]

    async def _list(self, request: Request) -> Any:
        return self.listing()

    async def _replace(self, request: Request) -> Any:
        return await self.replace(await read_json(request, TABLE_LIMIT))


def _route(
    path: str,
    method: str,
    admit: Callable[[Request], Awaitable[Any]],
    op: Callable[[Request], Awaitable[Any]],
) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            await admit(request)
            return JSONResponse(await op(request))
        except GatewayError as err:
            return error_response(err)

    return Route(path, endpoint, methods=[method])
