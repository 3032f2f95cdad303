"""A cache-write price set in [prices] or through the admin API reaches the
price table: parsed, kept in the registry's records (SQLite here, PostgreSQL
in tests/integration/test_registry_postgres.py) and used for costs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tokgateway.allinone import registry_service
from tokgateway.common.bus import InProcessBus
from tokgateway.common.clients import table_from_snapshot
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.errors import BadRequest
from tokgateway.common.pricing import Price
from tokgateway.common.settings import ConfigError, Settings, load_settings
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.registry.store import ModelRecord
from tokgateway.registry.store_sqlite import SQLiteRegistryStore

PRICES = "[prices]\nmine = 3, 15, 0.3, 3.75\nwrite-only = 1, 2, , 5\nplain = 1, 2\n"


def _settings(tmp_path: Path, ini: str = PRICES) -> Settings:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "setting.ini").write_text(ini)
    return load_settings(cfg, {"GATEWAY_DATA_DIR": str(tmp_path / "data")})


def test_prices_line_takes_a_cache_write_price(tmp_path: Path) -> None:
    prices = _settings(tmp_path).prices
    mine, write_only, plain = prices["mine"], prices["write-only"], prices["plain"]
    assert (mine.input, mine.output, mine.cached, mine.cache_write) == (3, 15, 0.3, 3.75)
    assert (write_only.cached, write_only.cache_write) == (None, 5.0)
    assert (plain.cached, plain.cache_write) == (None, None)


@pytest.mark.parametrize("line", ["1, 2, 3, 4, 5", "1, 2, 0.1, -4", "1, , 2", "1"])
def test_prices_line_refuses_bad_shapes(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError, match=r"cache_write"):
        _settings(tmp_path, f"[prices]\nmine = {line}\n")


async def test_configured_cache_write_price_reaches_the_table_and_survives(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    registry = registry_service(settings, InProcessBus())
    await registry.start()
    price = registry.snapshot().prices.lookup("mine")
    assert price == Price(3.0, 15.0, 0.3, 3.75)
    # 1M plain input, 1M written to the cache, nothing else: 3 + 3.75 USD
    assert price.cost(2_000_000, 0, cache_write_tokens=1_000_000) == pytest.approx(6.75)
    shown = {m["name"]: m for m in registry.models_public()}
    assert shown["mine"]["cache_write"] == 3.75
    await registry.put_model({"name": "api-made", "input": 1, "output": 2, "cache_write": 7})
    with pytest.raises(BadRequest, match="cache_write"):
        await registry.put_model({"name": "bad", "input": 1, "output": 2, "cache_write": -1})
    await registry.close()

    reopened = registry_service(settings, InProcessBus())
    await reopened.start()
    table = reopened.snapshot().prices
    assert table.lookup("api-made") == Price(1.0, 2.0, None, 7.0)
    assert table.lookup("write-only") == Price(1.0, 2.0, None, 5.0)
    wire = await reopened.wire_snapshot()
    rebuilt = table_from_snapshot({**wire, "providers": []}, CredentialBox("k" * 32))
    assert rebuilt.prices.lookup("mine") == Price(3.0, 15.0, 0.3, 3.75)
    await reopened.close()


async def test_sqlite_file_from_before_cache_write_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE registry_models (name TEXT PRIMARY KEY, input REAL, output REAL,"
        " cached REAL, alias_of TEXT, source TEXT NOT NULL DEFAULT 'api')"
    )
    conn.execute("INSERT INTO registry_models VALUES ('old', 1, 2, 0.5, NULL, 'api')")
    conn.commit()
    conn.close()
    store = SQLiteRegistryStore(SQLiteDB(path))
    await store.migrate()
    await store.migrate()  # idempotent
    await store.put_model(ModelRecord(name="new", input=1, output=2, cache_write=4))
    models = {m.name: m for m in (await store.load()).models}
    assert (models["old"].cached, models["old"].cache_write) == (0.5, None)
    assert models["new"].cache_write == 4.0
    await store.close()
