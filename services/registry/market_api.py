"""The marketplace over HTTP.

Public (other registries call these): ``GET /market/feed`` (signed listings,
ETag / If-None-Match; a bearer token when market.feed_token is set) and
``POST /market/subscribe``. Admin (`gateway market ...`): everything under
``/admin/market``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.crypto import token_matches
from tokgateway.common.errors import BadRequest, GatewayError, Unauthenticated
from tokgateway.common.http import AdminGuard, JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token
from tokgateway.registry.federation import Federation
from tokgateway.registry.market import MarketService
from tokgateway.registry.market_access import MarketAccess, RegistryWriter

BODY_LIMIT = 1 << 16
Op = Callable[[Request], Awaitable[Any]]


def listing(items: list[Any]) -> dict[str, Any]:
    return {"object": "list", "data": items}


class MarketAPI:
    def __init__(
        self,
        market: MarketService,
        peers: Federation,
        access: MarketAccess,
        guard: AdminGuard,
        prices: Callable[[], Any],
        feed_token: str = "",
        registry: RegistryWriter | None = None,
    ) -> None:
        self.market = market
        self.peers = peers
        self.access = access
        self.guard = guard
        self.prices = prices
        self.feed_token = feed_token
        self.registry = registry

    def routes(self) -> list[Route]:
        w, r = self.guard.check, self.guard.reader
        return [
            Route("/market/feed", self.feed, methods=["GET"]),
            Route("/market/subscribe", self.subscribe, methods=["POST"]),
            self._r("/admin/market/identity", "GET", r, self.identity),
            self._r("/admin/market/listings", "GET", r, self.list_listings),
            self._r("/admin/market/listings", "POST", w, self.publish, 201),
            self._r("/admin/market/listings/{listing_id}", "DELETE", w, self.unpublish),
            self._r("/admin/market/compare/{model:path}", "GET", r, self.compare),
            self._r("/admin/market/use", "POST", w, self.use),
            self._r("/admin/market/uses", "GET", r, self.uses),
            self._r("/admin/market/subscriptions", "GET", r, self.subscriptions),
            self._r("/admin/market/subscriptions/{sub_id}/approve", "POST", w, self.approve),
            self._r("/admin/market/peers", "GET", r, self.list_peers),
            self._r("/admin/market/peers", "POST", w, self.add_peer, 201),
            self._r("/admin/market/peers/remove", "POST", w, self.remove_peer),
            self._r("/admin/market/peers/poll", "POST", w, self.poll_peers),
        ]

    @staticmethod
    def _r(
        path: str,
        method: str,
        admit: Callable[[Request], Awaitable[Any]],
        op: Op,
        status: int = 200,
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                await admit(request)
                result = await op(request)
            except GatewayError as err:
                return error_response(err)
            return JSONResponse(result, status_code=status)

        return Route(path, endpoint, methods=[method])

    # -- public ---------------------------------------------------------------------------
    async def feed(self, request: Request) -> Response:
        if self.feed_token:
            given = bearer_token(request.headers.get("authorization"), None)
            if not token_matches(given, self.feed_token):
                return error_response(Unauthenticated("This feed needs the peer token."))
        body, etag = await self.market.feed()
        headers = {"etag": etag, "cache-control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def subscribe(self, request: Request) -> Response:
        try:
            status, answer = await self.access.subscribe(await read_json(request, BODY_LIMIT))
        except GatewayError as err:
            return error_response(err)
        if "key" in answer:
            await self.access.delivered(answer["id"])
        return JSONResponse(answer, status_code=status)

    # -- admin ----------------------------------------------------------------------------
    async def identity(self, request: Request) -> Any:
        return self.market.identity()

    async def list_listings(self, request: Request) -> Any:
        q = request.query_params
        return listing(await self.market.listings(q.get("model") or None, q.get("sort") or None))

    async def publish(self, request: Request) -> Any:
        """The listing's prices become this gateway's model prices, so its
        ledger meters subscribers at what the listing promised."""
        rec = await self.market.publish(await read_json(request, BODY_LIMIT), self.prices())
        if self.registry is not None:
            for m in rec["models"]:
                await self.registry.put_model(
                    {"name": m["name"], "input": m["input"], "output": m["output"]}
                    | ({"cached": m["cached"]} if m["cached"] is not None else {})
                )
        return rec

    async def unpublish(self, request: Request) -> Any:
        listing_id = request.path_params["listing_id"]
        result = await self.market.unpublish(listing_id)
        result["keys_revoked"] = await self.access.revoke_listing(listing_id)
        return result

    async def compare(self, request: Request) -> Any:
        return listing(await self.market.compare(request.path_params["model"]))

    async def use(self, request: Request) -> Any:
        body = await read_json(request, BODY_LIMIT)
        listing_id = body.get("listing_id")
        as_model = body.get("as")
        if not isinstance(listing_id, str) or (
            as_model is not None and not isinstance(as_model, str)
        ):
            raise BadRequest("Send 'listing_id' (and optionally 'as', a model name).")
        return await self.access.use(listing_id, as_model or None)

    async def uses(self, request: Request) -> Any:
        return listing(await self.access.uses())

    async def subscriptions(self, request: Request) -> Any:
        return listing(await self.access.subscriptions())

    async def approve(self, request: Request) -> Any:
        return await self.access.approve(request.path_params["sub_id"])

    async def list_peers(self, request: Request) -> Any:
        return listing(await self.peers.list())

    async def _url(self, request: Request) -> tuple[str, dict[str, Any]]:
        body = await read_json(request, BODY_LIMIT)
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise BadRequest("'url' must be the peer registry's URL.", param="url")
        return url, body

    async def add_peer(self, request: Request) -> Any:
        url, body = await self._url(request)
        token = body.get("token") or ""
        if not isinstance(token, str):
            raise BadRequest("'token' must be a string.", param="token")
        return await self.peers.add(url, token)

    async def remove_peer(self, request: Request) -> Any:
        url, _ = await self._url(request)
        return await self.peers.remove(url)

    async def poll_peers(self, request: Request) -> Any:
        await self.peers.poll_all()
        return listing(await self.peers.list())
