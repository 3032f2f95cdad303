"""PostgreSQL through asyncpg: pools and versioned schema migrations.

Each service owns its tables and a list of numbered migrations. ``migrate``
applies the missing ones in order, in one transaction, under one
advisory lock so replicas starting together never race."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger("tokgateway.postgres")

MIGRATION_LOCK = 0x746F6B67  # 'tokg'

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""

# What a database outage looks like from asyncpg: retry later, never crash.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> Any:
    """A pool that opens its connections lazily and checks them on acquire."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        max_inactive_connection_lifetime=60,
        timeout=5,
    )


async def migrate(pool: Any, component: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations of ``component`` not applied yet; returns their versions."""
    applied: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(MIGRATIONS_TABLE)
        rows = await conn.fetch(
            "SELECT version FROM schema_migrations WHERE component = $1", component
        )
        done = {r["version"] for r in rows}
        for m in sorted(migrations, key=lambda m: m.version):
            if m.version in done:
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                component,
                m.version,
                m.name,
            )
            applied.append(m.version)
            log.info("migration applied", extra={"component": component, "version": m.version})
    return applied


async def ping(pool: Any, within: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(within):
            await pool.fetchval("SELECT 1")
    except UNAVAILABLE:
        return False
    except asyncpg.PostgresError:
        return False
    return True


def affected(status: str) -> int:
    """Rows touched, from a command status such as 'INSERT 0 42'."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0
