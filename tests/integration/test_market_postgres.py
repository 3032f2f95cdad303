"""The marketplace's documents on PostgreSQL (mesh registry): the signing key
survives a restart, sealed; a peer's listings are replaced as one set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cluster import Postgres
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.postgres import create_pool
from tokgateway.common.settings import load_settings
from tokgateway.registry.market import MarketService
from tokgateway.registry.market_store import LISTING
from tokgateway.registry.market_store_pg import PgMarketStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_market_documents_on_postgres(postgres: Postgres, tmp_path: Path) -> None:
    pool = await create_pool(postgres.url)
    try:
        settings = load_settings(tmp_path, {"GATEWAY_ENABLE_PROVIDER": "true"})
        box = CredentialBox("s" * 32)
        first = MarketService(settings, PgMarketStore(pool), box)
        await first.start()
        rec = await first.publish({"models": ["m"], "price_in": 1, "price_out": 2}, None)
        second = MarketService(settings, PgMarketStore(pool), box)
        await second.start()  # migrations are idempotent; the identity is the stored one
        assert second.registry_id == first.registry_id
        stored = await pool.fetchval("SELECT doc::text FROM market_docs WHERE kind = 'identity'")
        assert first.key.private_text() not in stored
        assert [r["id"] for r in await second.listings()] == [rec["id"]]
        store = PgMarketStore(pool)
        await store.replace_via(LISTING, "http://peer", {"lst_a": {"x": 1}, "lst_b": {"x": 2}})
        await store.replace_via(LISTING, "http://peer", {"lst_b": {"x": 3}})
        rows = [(i, v, d) for i, v, d in await store.list(LISTING) if v == "http://peer"]
        assert rows == [("lst_b", "http://peer", {"x": 3})]
        assert await store.delete(LISTING, "lst_b") and not await store.delete(LISTING, "lst_b")
        assert await store.get(LISTING, "lst_b") is None
    finally:
        await pool.close()
