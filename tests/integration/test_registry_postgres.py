"""The mesh registry's records on PostgreSQL carry what the all-in-one SQLite
store carries: a model's cache-write price."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Postgres
from tokgateway.common.bus import InProcessBus
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.postgres import create_pool
from tokgateway.common.pricing import Price
from tokgateway.common.settings import load_settings
from tokgateway.registry.service import RegistryService
from tokgateway.registry.store_pg import PgRegistryStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    pg = Postgres(tmp_path_factory.mktemp("pg"))
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        pg.remove()


async def test_cache_write_prices_on_postgres(postgres: Postgres, tmp_path: Path) -> None:
    (tmp_path / "setting.ini").write_text("[prices]\nhouse = 3, 15, 0.3, 3.75\n")
    settings = load_settings(tmp_path, {})
    pool = await create_pool(postgres.url)
    try:
        box = CredentialBox("s" * 32)
        first = RegistryService(settings, InProcessBus(), store=PgRegistryStore(pool), box=box)
        await first.start()
        await first.put_model({"name": "api-made", "input": 1, "output": 2, "cache_write": 7})
        second = RegistryService(settings, InProcessBus(), store=PgRegistryStore(pool), box=box)
        await second.start()  # migrations are idempotent
        table = second.snapshot().prices
        assert table.lookup("house") == Price(3.0, 15.0, 0.3, 3.75)
        assert table.lookup("api-made") == Price(1.0, 2.0, None, 7.0)
        stored = await pool.fetchval("SELECT cache_write FROM registry_models WHERE name = 'house'")
        assert stored == 3.75
    finally:
        await pool.close()
