"""Marketplace listings: what this gateway offers other operators, and what it
learned from peers (federation.py pulls them; market_access.py turns a listing
into a key, a provider and a route).

A listing is a signed document: the publishing registry signs the canonical
JSON of ``listing`` with its Ed25519 key (libs/common/signing.py); the
signature travels with it through every registry that relays it, so a
registry three hops away checks the origin's signature, not the relay's.
What the relays measure (latency, uptime, when they fetched it) is kept beside
the signed part, never inside it."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Any

import orjson

from tokgateway.common.errors import BadRequest, Forbidden, NotFound
from tokgateway.common.settings import Settings
from tokgateway.common.signing import SigningKey, registry_id, verify
from tokgateway.registry.market_store import IDENTITY, LISTING, Doc, MarketStore

log = logging.getLogger("tokgateway.market")

API_FORMATS = ("openai", "anthropic")
SORTS = ("price", "latency", "uptime")
# the request `market compare` prices: a chat turn with some context
TYPICAL_REQUEST = {"input": 2000, "output": 500, "cached": 0}
MAX_MODELS = 64


def effective_price(model: dict[str, Any], request: dict[str, int] | None = None) -> float:
    """USD for one typical request at this model's listed prices."""
    req = request or TYPICAL_REQUEST
    cached = model.get("cached")
    cached_price = model["input"] if cached is None else cached
    plain = max(req["input"] - req["cached"], 0)
    total = plain * model["input"] + req["cached"] * cached_price + req["output"] * model["output"]
    return round(float(total) / 1_000_000, 8)


def check_listing(entry: Doc, *, pinned: dict[str, str] | None = None, now: float) -> str | None:
    """Why ``entry`` ({"listing", "signature"}) must be refused, or None.

    The publisher's id must be the hash of the key that signed; where the
    publisher's key is pinned (a peer added by the operator), it must be that
    key; and the signature must cover the listing exactly as received."""
    listing = entry.get("listing")
    signature = entry.get("signature")
    if not isinstance(listing, dict) or not isinstance(signature, str):
        return "malformed entry"
    publisher = listing.get("publisher")
    if not isinstance(publisher, dict):
        return "no publisher"
    key = publisher.get("public_key")
    rid = publisher.get("registry_id")
    if not isinstance(key, str) or not isinstance(rid, str):
        return "no publisher key"
    try:
        derived = registry_id(key)
    except ValueError:
        return "bad publisher key"
    if derived != rid:
        return "publisher id does not match its key"
    if pinned and rid in pinned and pinned[rid] != key:
        return "publisher key differs from the pinned one"
    if not verify(key, listing, signature):
        return "bad signature"
    expires = listing.get("expires_at")
    if not isinstance(expires, int | float) or expires <= now:
        return "expired"
    if listing.get("status") != "active":
        return "not active"
    return None


class MarketService:
    """Listings and the registry's identity. ``peers`` and ``access`` (set by
    the wiring) handle federation and subscriptions."""

    def __init__(self, settings: Settings, store: MarketStore, box: Any) -> None:
        self.settings = settings
        self.store = store
        self.box = box
        self._key: SigningKey | None = None
        # what this registry measured of each listing's gateway: url -> (ok, total, last ms)
        self.health: dict[str, tuple[int, int, float | None]] = {}

    # -- identity ---------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.migrate()
        doc = await self.store.get(IDENTITY, "self")
        if doc is None:
            key = SigningKey.generate()
            await self.store.put(
                IDENTITY,
                "self",
                {"private_sealed": self.box.seal(key.private_text()), "created_at": time.time()},
            )
            # another worker may have won the race: read back what is stored
            doc = await self.store.get(IDENTITY, "self")
            assert doc is not None
        self._key = SigningKey.from_private(self.box.open(doc["private_sealed"]))

    async def close(self) -> None:
        await self.store.close()

    @property
    def key(self) -> SigningKey:
        if self._key is None:
            raise RuntimeError("MarketService.start() was not awaited")
        return self._key

    @property
    def registry_id(self) -> str:
        return self.key.registry_id

    def public_url(self) -> str:
        url = str(self.settings.get("market.public_url")).rstrip("/")
        if url:
            return url
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.port}"

    def identity(self) -> dict[str, Any]:
        return {
            "registry_id": self.registry_id,
            "public_key": self.key.public_key,
            "email": str(self.settings.get("gateway.admin_email")),
            "name": self._default_name(),
            "url": self.public_url(),
            "enable_provider": bool(self.settings.get("gateway.enable_provider")),
        }

    def _default_name(self) -> str:
        return str(self.settings.get("gateway.publish_name")) or (
            f"{self.settings.get('gateway.admin_email')}'s gateway"
        )

    # -- publishing -------------------------------------------------------------------
    async def publish(self, data: dict[str, Any], prices: Any) -> Doc:
        """Sign and store a listing. ``prices`` is the registry's price table,
        for models published without a price."""
        if not self.settings.get("gateway.enable_provider"):
            raise Forbidden(
                "This gateway is not a marketplace provider: set GATEWAY_ENABLE_PROVIDER=true "
                "(gateway.enable_provider) to publish.",
                code="provider_disabled",
            )
        models = _models(data, self.settings, prices)
        fmt = data.get("api_format", "openai")
        if fmt not in API_FORMATS:
            raise BadRequest(
                f"'api_format' must be one of {', '.join(API_FORMATS)}.", param="api_format"
            )
        name = data.get("name") or self._default_name()
        region = data.get("region") or ""
        if not isinstance(name, str) or not isinstance(region, str) or len(name) > 200:
            raise BadRequest("'name' and 'region' must be short strings.", param="name")
        now = time.time()
        days = float(self.settings.get("market.listing_days"))
        base = self.public_url()
        listing = {
            "id": "lst_" + secrets.token_hex(8),
            "publisher": {
                "registry_id": self.registry_id,
                "public_key": self.key.public_key,
                "email": str(self.settings.get("gateway.admin_email")),
            },
            "name": name,
            "endpoint": base + ("/v1" if fmt == "openai" else ""),
            "market_url": base,
            "api_format": fmt,
            "models": models,
            "region": region,
            "status": "active",
            "created_at": round(now, 3),
            "expires_at": round(now + days * 86400, 3),
        }
        entry = {"listing": listing, "signature": self.key.sign(listing)}
        await self.store.put(LISTING, listing["id"], entry)
        log.info("listing published", extra={"listing_id": listing["id"]})
        return self.view(entry, "", now)

    async def unpublish(self, listing_id: str) -> Doc:
        entry = await self.store.get(LISTING, listing_id)
        if entry is None or entry["listing"]["publisher"]["registry_id"] != self.registry_id:
            raise NotFound(f"No listing {listing_id!r} of this registry.", code="listing_not_found")
        await self.store.delete(LISTING, listing_id)
        log.info("listing unpublished", extra={"listing_id": listing_id})
        return {"id": listing_id, "deleted": True}

    async def own_listing(self, listing_id: str) -> Doc:
        """An active listing this registry published (for subscriptions)."""
        entry = await self.store.get(LISTING, listing_id)
        if (
            entry is None
            or entry["listing"]["publisher"]["registry_id"] != self.registry_id
            or entry["listing"]["expires_at"] <= time.time()
        ):
            raise NotFound(f"No active listing {listing_id!r} here.", code="listing_not_found")
        return dict(entry["listing"])

    # -- reading ----------------------------------------------------------------------
    async def entries(self, now: float | None = None) -> list[tuple[str, Doc]]:
        """(via, entry) of every live listing, one per id: this registry's
        own first, then what peers sent."""
        now = time.time() if now is None else now
        seen: dict[str, tuple[str, Doc]] = {}
        rows = await self.store.list(LISTING)
        for id_, via, entry in sorted(rows, key=lambda r: (r[1] != "", r[1], r[0])):
            if id_ in seen or entry["listing"].get("expires_at", 0) <= now:
                continue
            seen[id_] = (via, entry)
        return list(seen.values())

    def view(self, entry: Doc, via: str, now: float) -> Doc:
        """A listing as the admin API and CLI show it."""
        listing = entry["listing"]
        ok, total, last_ms = self.health.get(listing["market_url"], (0, 0, None))
        origin = listing["publisher"]["registry_id"]
        return {
            **listing,
            "object": "market.listing",
            "origin": origin,
            "local": origin == self.registry_id,
            "via": via or None,
            "age_s": round(now - listing["created_at"], 1),
            "fetched_at": entry.get("received_at"),
            "latency_ms": last_ms,
            "uptime": round(ok / total, 4) if total else None,
            "signature": entry["signature"],
        }

    async def listings(self, model: str | None = None, sort: str | None = None) -> list[Doc]:
        if sort is not None and sort not in SORTS:
            raise BadRequest(f"'sort' must be one of {', '.join(SORTS)}.", param="sort")
        now = time.time()
        views = [self.view(e, via, now) for via, e in await self.entries(now)]
        if model:
            views = [v for v in views if any(m["name"] == model for m in v["models"])]
        if sort == "price":
            views.sort(key=lambda v: min(_price_of(v, model)))
        elif sort == "latency":
            views.sort(key=lambda v: (v["latency_ms"] is None, v["latency_ms"] or 0.0))
        elif sort == "uptime":
            views.sort(key=lambda v: -(v["uptime"] or 0.0))
        return views

    async def find(self, listing_id: str) -> Doc:
        for view in await self.listings():
            if view["id"] == listing_id:
                return view
        raise NotFound(f"No listing {listing_id!r} known here.", code="listing_not_found")

    async def compare(self, model: str) -> list[Doc]:
        """One row per listing offering ``model``, cheapest first."""
        rows = []
        for v in await self.listings(model=model):
            m = next(x for x in v["models"] if x["name"] == model)
            rows.append(
                {
                    "id": v["id"],
                    "object": "market.comparison",
                    "name": v["name"],
                    "origin": v["origin"],
                    "model": model,
                    "input": m["input"],
                    "output": m["output"],
                    "cached": m.get("cached"),
                    "context_window": m.get("context_window"),
                    "region": v["region"],
                    "latency_ms": v["latency_ms"],
                    "uptime": v["uptime"],
                    "typical_request": TYPICAL_REQUEST,
                    "effective_usd": effective_price(m),
                }
            )
        rows.sort(key=lambda r: r["effective_usd"])
        return rows

    async def feed(self) -> tuple[bytes, str]:
        """What peers pull: this registry's identity and every live listing
        with its origin's signature; the ETag is the hash of the body."""
        entries = [
            {"listing": e["listing"], "signature": e["signature"]} for _, e in await self.entries()
        ]
        body = orjson.dumps(
            {
                "object": "market.feed",
                "registry": {
                    "registry_id": self.registry_id,
                    "public_key": self.key.public_key,
                    "name": self._default_name(),
                },
                "listings": sorted(entries, key=lambda e: e["listing"]["id"]),
            }
        )
        return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _price_of(view: Doc, model: str | None) -> list[float]:
    return [effective_price(m) for m in view["models"] if model is None or m["name"] == model] or [
        float("inf")
    ]


def _num(value: Any, param: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"'{param}' must be a non-negative number.", param=param)
    return float(value)


def _models(data: dict[str, Any], settings: Settings, prices: Any) -> list[Doc]:
    """The models to list: named in the request, else gateway.model_family;
    a model without prices takes them from the registry's price table, and
    one priced nowhere is refused (never listed at 0)."""
    raw = data.get("models")
    if not raw:
        family = str(settings.get("gateway.model_family"))
        raw = [m.strip() for m in family.split(",") if m.strip()]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_MODELS:
        raise BadRequest(
            "Name the models to publish (--model, or GATEWAY_MODEL_FAMILY).", param="models"
        )
    out = []
    for item in raw:
        spec = {"name": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise BadRequest("Each model needs a 'name'.", param="models")
        name = spec["name"].strip()
        pin = _num(spec.get("input", data.get("price_in")), "input")
        pout = _num(spec.get("output", data.get("price_out")), "output")
        pcached = _num(spec.get("cached", data.get("price_cached")), "cached")
        if pin is None or pout is None:
            known = prices.lookup(name) if prices is not None else None
            if known is None:
                raise BadRequest(
                    f"No price for {name!r}: give --price-in and --price-out, "
                    "or set it with `gateway models set`.",
                    param="models",
                )
            pin = known.input if pin is None else pin
            pout = known.output if pout is None else pout
            pcached = known.cached if pcached is None else pcached
        ctx = spec.get("context_window")
        if ctx is not None and (not isinstance(ctx, int) or ctx <= 0):
            raise BadRequest("'context_window' must be a positive integer.", param="models")
        out.append(
            {"name": name, "input": pin, "output": pout, "cached": pcached, "context_window": ctx}
        )
    return out
