"""Registry records in the all-in-one gateway's SQLite file.

Two reasons it is not process memory: definitions made through the admin API
survive a restart, and every worker of ``--workers N`` sees them. Each write
bumps a counter in ``registry_version`` in the same transaction; workers poll
``version()`` (a one-row read) and reload their snapshot when it moved, the
way they poll for revocations. Credentials are stored sealed, like in the
mesh (see allinone.local_secret_key for the key)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from tokgateway.common.sqlite import SQLiteDB, transaction
from tokgateway.registry import rows
from tokgateway.registry.store import Definitions, ModelRecord, ProviderRecord, RouteRecord

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_providers (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    base_url TEXT NOT NULL DEFAULT '',
    api_key_sealed TEXT NOT NULL DEFAULT '',
    timeout REAL,
    anthropic_version TEXT NOT NULL DEFAULT '2023-06-01',
    api_version TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'api'
);
CREATE TABLE IF NOT EXISTS registry_routes (
    pattern TEXT PRIMARY KEY,
    targets TEXT NOT NULL,
    position REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'api'
);
CREATE TABLE IF NOT EXISTS registry_models (
    name TEXT PRIMARY KEY,
    input REAL,
    output REAL,
    cached REAL,
    alias_of TEXT,
    source TEXT NOT NULL DEFAULT 'api'
);
CREATE TABLE IF NOT EXISTS registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0);
"""

_PUT_PROVIDER = """
INSERT OR REPLACE INTO registry_providers
    (name, kind, base_url, api_key_sealed, timeout, anthropic_version, api_version, source)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_PUT_ROUTE = (
    "INSERT OR REPLACE INTO registry_routes (pattern, targets, position, source)"
    " VALUES (?, ?, ?, ?)"
)
_PUT_MODEL = (
    "INSERT OR REPLACE INTO registry_models (name, input, output, cached, alias_of, source)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_BUMP = "UPDATE registry_version SET version = version + 1 WHERE id = 1"


class SQLiteRegistryStore:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """One transaction: the change and the version bump together."""

        def op(conn: sqlite3.Connection) -> T:
            with transaction(conn):
                result = fn(conn)
                conn.execute(_BUMP)
            return result

        return await self.db.run(op)

    async def migrate(self) -> None:
        await self.db.run(lambda conn: conn.executescript(SCHEMA))

    async def version(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()
            return int(row[0]) if row else 0

        return await self.db.run(op)

    async def load(self) -> Definitions:
        def op(conn: sqlite3.Connection) -> Definitions:
            return rows.definitions(
                conn.execute(rows.SELECT_PROVIDERS).fetchall(),
                conn.execute(rows.SELECT_ROUTES).fetchall(),
                conn.execute(rows.SELECT_MODELS).fetchall(),
            )

        return await self.db.run(op)

    async def sync_config(self, config: Definitions) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for table, key, names in rows.config_keys(config):
                marks = ",".join("?" * len(names))
                keep = f" AND {key} NOT IN ({marks})" if names else ""
                conn.execute(f"DELETE FROM {table} WHERE source = 'config'{keep}", names)
            conn.executemany(_PUT_PROVIDER, [rows.provider_values(r) for r in config.providers])
            conn.executemany(_PUT_ROUTE, [rows.route_values(r) for r in config.routes])
            conn.executemany(_PUT_MODEL, [rows.model_values(r) for r in config.models])

        await self._write(op)

    async def _delete(self, table: str, key: str, value: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (value,)).rowcount > 0

        return await self._write(op)

    async def put_provider(self, rec: ProviderRecord) -> None:
        await self._write(lambda conn: conn.execute(_PUT_PROVIDER, rows.provider_values(rec)))

    async def delete_provider(self, name: str) -> bool:
        return await self._delete("registry_providers", "name", name)

    async def put_route(self, rec: RouteRecord) -> None:
        await self._write(lambda conn: conn.execute(_PUT_ROUTE, rows.route_values(rec)))

    async def delete_route(self, pattern: str) -> bool:
        return await self._delete("registry_routes", "pattern", pattern)

    async def put_model(self, rec: ModelRecord) -> None:
        await self._write(lambda conn: conn.execute(_PUT_MODEL, rows.model_values(rec)))

    async def delete_model(self, name: str) -> bool:
        return await self._delete("registry_models", "name", name)

    async def touch(self) -> None:
        await self._write(lambda conn: None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        await self.db.close()
