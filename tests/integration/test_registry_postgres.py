"""The registry's records on PostgreSQL (mesh) and on SQLite (all-in-one) go
through one row mapping: every field of every kind comes back as it was put,
the same from both stores, and a config sync leaves API records alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import Postgres
from tokgateway.common.postgres import create_pool
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.registry.store import Definitions, ModelRecord, ProviderRecord, RouteRecord
from tokgateway.registry.store_pg import PgRegistryStore
from tokgateway.registry.store_sqlite import SQLiteRegistryStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PROVIDER = ProviderRecord(
    name="azure",
    kind="azure-openai",
    base_url="https://h.example/openai",
    api_key_sealed="sealed-bytes",
    timeout=12.5,
    anthropic_version="2024-01-01",
    api_version="2024-10-21",
)
ROUTES = (
    RouteRecord(pattern="gpt-*", targets=(("azure", "gpt-4o"), ("echo", None)), position=-2.0),
    RouteRecord(pattern="*", targets=(("echo", None),), position=1.0, source="config"),
)
MODEL = ModelRecord(name="gpt-4o", input=2.5, output=10.0, cached=1.25, alias_of="gpt-4o-2024")
CONFIG = Definitions(
    (ProviderRecord(name="echo", kind="echo", source="config"),),
    (ROUTES[1],),
    (ModelRecord(name="cheap", input=0.1, source="config"),),
)


async def _fill(store: Any) -> Definitions:
    await store.migrate()
    await store.sync_config(CONFIG)
    await store.put_provider(PROVIDER)
    await store.put_route(ROUTES[0])
    await store.put_model(MODEL)
    loaded: Definitions = await store.load()
    return loaded


async def test_both_stores_read_back_what_they_wrote(postgres: Postgres, tmp_path: Path) -> None:
    pool = await create_pool(postgres.url)
    try:
        on_pg = await _fill(PgRegistryStore(pool))
    finally:
        await pool.close()
    sqlite = SQLiteRegistryStore(SQLiteDB(tmp_path / "g.db"))
    try:
        on_sqlite = await _fill(sqlite)
    finally:
        await sqlite.close()
    expected = Definitions(
        (PROVIDER, CONFIG.providers[0]),
        ROUTES,
        (CONFIG.models[0], MODEL),
    )
    assert on_pg == expected
    assert on_sqlite == expected


async def test_config_sync_drops_only_config_records(postgres: Postgres) -> None:
    pool = await create_pool(postgres.url)
    try:
        store = PgRegistryStore(pool)
        await _fill(store)
        await store.sync_config(Definitions((), (), ()))
        after = await store.load()
        assert after == Definitions((PROVIDER,), (ROUTES[0],), (MODEL,))
        assert await store.delete_route("gpt-*") and not await store.delete_route("gpt-*")
    finally:
        await pool.close()
