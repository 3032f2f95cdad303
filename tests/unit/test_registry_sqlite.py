"""The all-in-one registry store: persistent, versioned, credentials sealed."""

from __future__ import annotations

from pathlib import Path

from tokgateway.allinone import SECRET_KEY_FILE, registry_service
from tokgateway.common.bus import InProcessBus
from tokgateway.common.settings import load_settings
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.registry.store import Definitions, ProviderRecord, RouteRecord
from tokgateway.registry.store_sqlite import SQLiteRegistryStore


async def test_writes_bump_the_version_and_config_sync_keeps_api_records(tmp_path: Path) -> None:
    store = SQLiteRegistryStore(SQLiteDB(tmp_path / "g.db"))
    await store.migrate()
    assert await store.version() == 0
    cfg = ProviderRecord(name="cfg", kind="echo", source="config")
    await store.sync_config(Definitions((cfg,), (), ()))
    await store.put_provider(ProviderRecord(name="api", kind="echo"))
    await store.put_route(RouteRecord(pattern="m*", targets=(("api", "x"),), position=-1.0))
    assert await store.version() == 3
    await store.sync_config(Definitions((), (), ()))  # cfg gone from the INI files
    defs = await store.load()
    assert [p.name for p in defs.providers] == ["api"]
    assert defs.routes[0].targets == (("api", "x"),)
    assert await store.delete_route("m*") and not await store.delete_route("m*")
    await store.close()
    again = SQLiteRegistryStore(SQLiteDB(tmp_path / "g.db"))
    await again.migrate()  # idempotent, keeps rows and the counter
    assert [p.name for p in (await again.load()).providers] == ["api"]
    assert await again.version() == 6
    await again.close()


async def test_credentials_are_sealed_in_the_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "cfg", {"GATEWAY_DATA_DIR": str(tmp_path / "data")})
    registry = registry_service(settings, InProcessBus())
    await registry.start()
    await registry.put_provider(
        {"name": "up", "kind": "openai-compatible", "base_url": "http://h/v1", "api_key": "sk-x1"}
    )
    assert registry.snapshot().providers["up"].api_key == "sk-x1"
    await registry.close()
    assert b"sk-x1" not in (tmp_path / "data" / "gateway.db").read_bytes()
    key_file = tmp_path / "data" / SECRET_KEY_FILE
    assert key_file.stat().st_mode & 0o077 == 0
    reopened = registry_service(settings, InProcessBus())
    await reopened.start()
    assert reopened.snapshot().providers["up"].api_key == "sk-x1"
    await reopened.close()
