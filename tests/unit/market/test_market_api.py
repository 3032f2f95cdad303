"""The marketplace HTTP API in process: publish, a pending subscription,
approval through the admin route, the key handed over once, ETag on the feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from tests.unit.market.test_listings import Minter
from tokgateway.common.bus import InProcessBus
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.http import AdminGuard
from tokgateway.common.settings import load_settings
from tokgateway.registry.market_store import MemoryMarketStore
from tokgateway.registry.marketplace import Marketplace
from tokgateway.registry.service import RegistryService

TOKEN = "tgc-test-control-token"


class NoKeys:
    async def verify(self, key_hash: str) -> Any:
        return None


async def test_approval_through_the_admin_api(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"GATEWAY_ENABLE_PROVIDER": "true"})
    registry = RegistryService(settings, InProcessBus(), box=CredentialBox("z" * 32))
    await registry.start()
    minter = Minter()
    market = Marketplace(settings, MemoryMarketStore(), registry, minter)
    await market.start(poll=False)
    app = Starlette(routes=market.routes(AdminGuard(NoKeys(), TOKEN)))  # type: ignore[arg-type]
    admin = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://registry.test"
    ) as client:
        assert (await client.get("/admin/market/listings")).status_code == 401
        pub = await client.post(
            "/admin/market/listings",
            json={"models": ["m"], "price_in": 1, "price_out": 2},
            headers=admin,
        )
        assert pub.status_code == 201
        listing = pub.json()
        assert registry.snapshot().prices.lookup("m") is not None  # metered at the listing
        ask = {"listing_id": listing["id"], "claim": "k" * 40, "consumer": {"email": "c@x"}}
        first = await client.post("/market/subscribe", json=ask)
        assert first.status_code == 202 and "key" not in first.json()
        subs = (await client.get("/admin/market/subscriptions", headers=admin)).json()["data"]
        assert [s["status"] for s in subs] == ["pending"]
        ok = await client.post(
            f"/admin/market/subscriptions/{subs[0]['id']}/approve", headers=admin
        )
        assert ok.status_code == 200 and ok.json()["key_id"] == "key_1"
        granted = await client.post("/market/subscribe", json=ask)
        assert granted.status_code == 200 and granted.json()["key"] == "tgw-secret-1"
        again = await client.post("/market/subscribe", json=ask)
        assert again.status_code == 200 and "key" not in again.json()  # handed over once
        feed = await client.get("/market/feed")
        assert feed.status_code == 200 and "tgw-secret" not in feed.text
        cached = await client.get("/market/feed", headers={"if-none-match": feed.headers["etag"]})
        assert cached.status_code == 304
        gone = await client.delete(f"/admin/market/listings/{listing['id']}", headers=admin)
        assert gone.json()["keys_revoked"] == 1 and minter.revoked == ["key_1"]
        changed = await client.get("/market/feed", headers={"if-none-match": feed.headers["etag"]})
        assert changed.status_code == 200 and changed.json()["listings"] == []
    await market.close()
    await registry.close()
