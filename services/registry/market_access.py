"""From a listing to traffic: subscriptions.

Consumer side (`gateway market use`): this registry asks the publisher's
registry to subscribe, with a random claim only the two of them know; when
the publisher grants it, the answer carries an API key of the publisher's
gateway, scoped to the listed models. The key is stored sealed as the
credential of a new provider, and a route sends the listed model names to it,
so agents keep calling the same model names. The listing's prices become the
prices of that provider's models (scoped to it: they win over this registry's
own price for the same name, which stays as it was for its other providers),
so the consumer's ledger costs what it will be billed.

Publisher side: a subscription is granted at once (market.auto_approve) or
by `gateway market approve`; the key is minted by the auth service (its own
governance: models allow-list, rpm, budget), handed over once, and revoked
when the listing is unpublished. The publisher's ledger meters that key."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from tokgateway.common.errors import BadRequest, Forbidden, NotFound
from tokgateway.common.pricing import Price
from tokgateway.common.settings import Settings
from tokgateway.registry.federation import PeerError
from tokgateway.registry.market import MarketService
from tokgateway.registry.market_store import SUBSCRIPTION, USE, Doc

log = logging.getLogger("tokgateway.market")

SUBSCRIBE_PATH = "/market/subscribe"


class KeyMinter(Protocol):
    """The auth service, as the market sees it."""

    async def mint(
        self, *, name: str, models: tuple[str, ...], rpm: int | None, budget_usd: float | None
    ) -> tuple[str, str]:
        """A new key: (key id, secret)."""

    async def revoke(self, key_id: str) -> None: ...


class RegistryWriter(Protocol):
    """The registry's writes that `market use` needs (RegistryService)."""

    async def put_provider(self, data: dict[str, Any]) -> Any: ...

    async def put_route(self, data: dict[str, Any]) -> Any: ...

    async def put_model(self, data: dict[str, Any]) -> Any: ...

    async def set_scoped_prices(self, prices: Mapping[tuple[str, str], Price]) -> None: ...

    scoped_prices: Mapping[tuple[str, str], Price]


def _claim_hash(claim: str) -> str:
    return hashlib.sha256(claim.encode("utf-8")).hexdigest()


def provider_name(listing_id: str) -> str:
    return "mkt-" + listing_id.removeprefix("lst_")


class MarketAccess:
    def __init__(
        self,
        settings: Settings,
        market: MarketService,
        registry: RegistryWriter,
        minter: KeyMinter | None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.market = market
        self.store = market.store
        self.registry = registry
        self.minter = minter
        self._client = client or httpx.AsyncClient(timeout=15.0)

    async def close(self) -> None:
        await self._client.aclose()

    # -- publisher side -------------------------------------------------------------------
    async def subscribe(self, data: dict[str, Any]) -> tuple[int, Doc]:
        """A consumer registry asks for access to one of our listings."""
        listing_id = data.get("listing_id")
        claim = data.get("claim")
        consumer = data.get("consumer") or {}
        if not isinstance(listing_id, str) or not isinstance(claim, str) or len(claim) < 16:
            raise BadRequest("Send 'listing_id' and a 'claim' of at least 16 characters.")
        if not isinstance(consumer, dict):
            raise BadRequest("'consumer' must be an object.", param="consumer")
        listing = await self.market.own_listing(listing_id)
        sub_id = "sub_" + _claim_hash(listing_id + "\n" + claim)[:16]
        sub = await self.store.get(SUBSCRIPTION, sub_id)
        if sub is None:
            sub = {
                "id": sub_id,
                "listing_id": listing_id,
                "models": [m["name"] for m in listing["models"]],
                "consumer_registry": str(consumer.get("registry_id") or "")[:64],
                "consumer_email": str(consumer.get("email") or "")[:200],
                "consumer_name": str(consumer.get("name") or "")[:200],
                "status": "pending",
                "created_at": time.time(),
                "key_id": None,
                "key_sealed": "",
            }
            await self.store.put(SUBSCRIPTION, sub_id, sub)
            log.info("subscription requested", extra={"subscription": sub_id})
            if self.settings.get("market.auto_approve"):
                sub = await self._grant(sub)
        return self._answer(sub, listing)

    def _answer(self, sub: Doc, listing: Doc) -> tuple[int, Doc]:
        out: Doc = {
            "id": sub["id"],
            "object": "market.subscription",
            "listing_id": sub["listing_id"],
            "status": sub["status"],
            "models": sub["models"],
            "endpoint": listing["endpoint"],
        }
        if sub["status"] == "active" and sub.get("key_sealed"):
            out["key"] = self.market.box.open(sub["key_sealed"])
        return (200 if sub["status"] == "active" else 202), out

    async def delivered(self, sub_id: str) -> None:
        """The key went out: keep only its id."""
        sub = await self.store.get(SUBSCRIPTION, sub_id)
        if sub is not None and sub.get("key_sealed"):
            sub["key_sealed"] = ""
            await self.store.put(SUBSCRIPTION, sub_id, sub)

    async def _grant(self, sub: Doc) -> Doc:
        if self.minter is None:
            raise Forbidden("This registry cannot mint keys (no auth service wired).")
        rpm = int(self.settings.get("market.subscriber_rpm")) or None
        budget = float(self.settings.get("market.subscriber_budget_usd")) or None
        key_id, secret = await self.minter.mint(
            name=f"market {sub['id']} {sub['consumer_email'] or sub['consumer_registry']}"[:120],
            models=tuple(sub["models"]),
            rpm=rpm,
            budget_usd=budget,
        )
        sub.update(
            status="active",
            key_id=key_id,
            key_sealed=self.market.box.seal(secret),
            approved_at=time.time(),
        )
        await self.store.put(SUBSCRIPTION, sub["id"], sub)
        log.info("subscription granted", extra={"subscription": sub["id"], "key_id": key_id})
        return sub

    async def approve(self, sub_id: str) -> Doc:
        sub = await self.store.get(SUBSCRIPTION, sub_id)
        if sub is None:
            raise NotFound(f"No subscription {sub_id!r}.", code="subscription_not_found")
        if sub["status"] != "pending":
            raise BadRequest(f"Subscription {sub_id} is {sub['status']}, not pending.")
        return self.public(await self._grant(sub))

    async def revoke_listing(self, listing_id: str) -> int:
        """Unpublished: the keys minted for it stop working."""
        n = 0
        for _, _, sub in await self.store.list(SUBSCRIPTION):
            if sub["listing_id"] == listing_id and sub["status"] == "active":
                if self.minter is not None and sub.get("key_id"):
                    await self.minter.revoke(sub["key_id"])
                sub.update(status="revoked", key_sealed="")
                await self.store.put(SUBSCRIPTION, sub["id"], sub)
                n += 1
        return n

    async def subscriptions(self) -> list[Doc]:
        return [self.public(s) for _, _, s in await self.store.list(SUBSCRIPTION)]

    @staticmethod
    def public(sub: Doc) -> Doc:
        return {
            "object": "market.subscription",
            **{k: v for k, v in sub.items() if k != "key_sealed"},
        }

    # -- consumer side --------------------------------------------------------------------
    async def use(self, listing_id: str, as_model: str | None = None) -> Doc:
        view = await self.market.find(listing_id)
        if view["local"]:
            raise BadRequest("That listing is this gateway's own.", param="listing_id")
        use = await self.store.get(USE, listing_id) or {
            "listing_id": listing_id,
            "claim_sealed": self.market.box.seal(secrets.token_urlsafe(32)),
            "status": "new",
            "origin": view["origin"],
        }
        claim = self.market.box.open(use["claim_sealed"])
        me = self.market.identity()
        body = {
            "listing_id": listing_id,
            "claim": claim,
            "consumer": {
                "registry_id": me["registry_id"],
                "email": me["email"],
                "name": me["name"],
            },
        }
        url = view["market_url"] + SUBSCRIBE_PATH
        try:
            resp = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise PeerError(f"Cannot reach the publisher at {url}: {type(exc).__name__}.") from None
        if resp.status_code not in (200, 202):
            raise PeerError(
                f"The publisher at {url} answered {resp.status_code}: {resp.text[:200]}"
            )
        answer = resp.json()
        use.update(subscription=answer.get("id"), status=answer.get("status"))
        if resp.status_code == 202 or "key" not in answer:
            await self.store.put(USE, listing_id, use)
            return self._use_public(use)
        models = [m for m in view["models"] if m["name"] in answer["models"]]
        name = provider_name(listing_id)
        await self.registry.put_provider(
            {
                "name": name,
                "kind": "openai-compatible" if view["api_format"] == "openai" else "anthropic",
                "base_url": view["endpoint"],
                "api_key": answer["key"],
            }
        )
        chosen = models[:1] if as_model else models
        routed = [{"model": as_model or m["name"], "upstream_model": m["name"]} for m in chosen]
        prices = {m["name"]: [m["input"], m["output"], m["cached"]] for m in chosen}
        use.update(
            status="active", provider=name, routes=routed, prices=prices, used_at=time.time()
        )
        await self.store.put(USE, listing_id, use)
        # priced before any route sends traffic to it
        await self.registry.set_scoped_prices(await self.scoped_prices())
        for r in routed:
            await self.registry.put_route(
                {
                    "pattern": r["model"],
                    "targets": [{"provider": name, "upstream_model": r["upstream_model"]}],
                }
            )
        log.info("listing in use", extra={"listing_id": listing_id, "provider": name})
        return self._use_public(use)

    async def scoped_prices(self) -> dict[tuple[str, str], Price]:
        """(provider, upstream model) -> the listing's price, for every listing in use."""
        out: dict[tuple[str, str], Price] = {}
        for _, _, use in await self.store.list(USE):
            if use.get("status") != "active" or not use.get("provider"):
                continue
            for model, (inp, outp, cached) in (use.get("prices") or {}).items():
                out[(use["provider"], model)] = Price(
                    float(inp), float(outp), float(cached) if cached is not None else None
                )
        return out

    async def load_prices(self) -> None:
        """The listings' prices as the registry's scoped prices (at start, and
        when another worker of the same file changed the registry); the caller
        refreshes the snapshot."""
        self.registry.scoped_prices = await self.scoped_prices()

    async def uses(self) -> list[Doc]:
        return [self._use_public(u) for _, _, u in await self.store.list(USE)]

    @staticmethod
    def _use_public(use: Doc) -> Doc:
        return {
            "id": use["listing_id"],
            "object": "market.use",
            **{k: v for k, v in use.items() if k != "claim_sealed"},
        }
