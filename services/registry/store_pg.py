"""Registry records on PostgreSQL (asyncpg), for the mesh. Credentials are
stored sealed with GATEWAY_SECRET_KEY; this module only ever sees ciphertext."""

from __future__ import annotations

from typing import Any

from tokgateway.common.postgres import Migration, migrate, ping
from tokgateway.registry import rows
from tokgateway.registry.store import Definitions, ModelRecord, ProviderRecord, RouteRecord

MIGRATIONS = (
    Migration(
        1,
        "providers, routes, models",
        """
        CREATE TABLE IF NOT EXISTS registry_providers (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            base_url TEXT NOT NULL DEFAULT '',
            api_key_sealed TEXT NOT NULL DEFAULT '',
            timeout DOUBLE PRECISION,
            anthropic_version TEXT NOT NULL DEFAULT '2023-06-01',
            source TEXT NOT NULL DEFAULT 'api',
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS registry_routes (
            pattern TEXT PRIMARY KEY,
            targets JSONB NOT NULL,
            position DOUBLE PRECISION NOT NULL,
            source TEXT NOT NULL DEFAULT 'api',
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS registry_models (
            name TEXT PRIMARY KEY,
            input DOUBLE PRECISION,
            output DOUBLE PRECISION,
            cached DOUBLE PRECISION,
            alias_of TEXT,
            source TEXT NOT NULL DEFAULT 'api',
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        2,
        "provider api_version (Azure)",
        """
        ALTER TABLE registry_providers ADD COLUMN IF NOT EXISTS api_version TEXT NOT NULL
            DEFAULT '';
        """,
    ),
)

_PUT_PROVIDER = """
INSERT INTO registry_providers (name, kind, base_url, api_key_sealed, timeout,
    anthropic_version, api_version, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, base_url = EXCLUDED.base_url,
    api_key_sealed = EXCLUDED.api_key_sealed, timeout = EXCLUDED.timeout,
    anthropic_version = EXCLUDED.anthropic_version, source = EXCLUDED.source,
    api_version = EXCLUDED.api_version, updated_at = now()
"""
_PUT_ROUTE = """
INSERT INTO registry_routes (pattern, targets, position, source) VALUES ($1, $2::jsonb, $3, $4)
ON CONFLICT (pattern) DO UPDATE SET targets = EXCLUDED.targets, position = EXCLUDED.position,
    source = EXCLUDED.source, updated_at = now()
"""
_PUT_MODEL = """
INSERT INTO registry_models (name, input, output, cached, alias_of, source)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE SET input = EXCLUDED.input, output = EXCLUDED.output,
    cached = EXCLUDED.cached, alias_of = EXCLUDED.alias_of, source = EXCLUDED.source,
    updated_at = now()
"""


class PgRegistryStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def migrate(self) -> None:
        await migrate(self.pool, "registry", MIGRATIONS)

    async def load(self) -> Definitions:
        async with self.pool.acquire() as conn:
            return rows.definitions(
                await conn.fetch(rows.SELECT_PROVIDERS),
                await conn.fetch(rows.SELECT_ROUTES),
                await conn.fetch(rows.SELECT_MODELS),
            )

    async def sync_config(self, config: Definitions) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('registry.config'))")
            for table, key, names in rows.config_keys(config):
                await conn.execute(
                    f"DELETE FROM {table} WHERE source = 'config'"
                    f" AND NOT ({key} = ANY($1::text[]))",
                    names,
                )
            if config.providers:
                await conn.executemany(
                    _PUT_PROVIDER, [rows.provider_values(r) for r in config.providers]
                )
            if config.routes:
                await conn.executemany(_PUT_ROUTE, [rows.route_values(r) for r in config.routes])
            if config.models:
                await conn.executemany(_PUT_MODEL, [rows.model_values(r) for r in config.models])

    async def put_provider(self, rec: ProviderRecord) -> None:
        await self.pool.execute(_PUT_PROVIDER, *rows.provider_values(rec))

    async def delete_provider(self, name: str) -> bool:
        status = await self.pool.execute("DELETE FROM registry_providers WHERE name = $1", name)
        return bool(status.endswith(" 1"))

    async def put_route(self, rec: RouteRecord) -> None:
        await self.pool.execute(_PUT_ROUTE, *rows.route_values(rec))

    async def delete_route(self, pattern: str) -> bool:
        status = await self.pool.execute("DELETE FROM registry_routes WHERE pattern = $1", pattern)
        return bool(status.endswith(" 1"))

    async def put_model(self, rec: ModelRecord) -> None:
        await self.pool.execute(_PUT_MODEL, *rows.model_values(rec))

    async def delete_model(self, name: str) -> bool:
        status = await self.pool.execute("DELETE FROM registry_models WHERE name = $1", name)
        return bool(status.endswith(" 1"))

    async def touch(self) -> None:
        return None  # one registry service: routers reload on registry.v1.changed

    async def ping(self) -> bool:
        return await ping(self.pool)

    async def close(self) -> None:
        await self.pool.close()
