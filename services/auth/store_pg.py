"""Keys and users on PostgreSQL (asyncpg), for the mesh."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tokgateway.auth.store import KeyRecord
from tokgateway.common.keys import new_id
from tokgateway.common.postgres import Migration, migrate, ping

MIGRATIONS = (
    Migration(
        1,
        "users and api keys",
        """
        CREATE TABLE IF NOT EXISTS auth_users (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            is_admin BOOLEAN NOT NULL DEFAULT false,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE IF NOT EXISTS auth_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            user_id TEXT REFERENCES auth_users(id),
            models JSONB NOT NULL DEFAULT '[]',
            rpm INTEGER,
            is_admin BOOLEAN NOT NULL DEFAULT false,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            revoked_at DOUBLE PRECISION
        );
        CREATE INDEX IF NOT EXISTS auth_keys_user ON auth_keys(user_id);
        CREATE INDEX IF NOT EXISTS auth_keys_admin ON auth_keys(is_admin)
            WHERE revoked_at IS NULL;
        """,
    ),
)


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        hint=row["hint"],
        user_id=row["user_id"],
        models=tuple(orjson.loads(row["models"] or "[]")),
        rpm=row["rpm"],
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


_INSERT_KEY = (
    "INSERT INTO auth_keys (id, name, key_hash, hint, user_id, models, rpm, is_admin,"
    " created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)"
    " RETURNING *"
)


class PgAuthStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def migrate(self) -> None:
        await migrate(self.pool, "auth", MIGRATIONS)

    async def _ensure_user(self, conn: Any, email: str, is_admin: bool) -> str:
        await conn.execute(
            "INSERT INTO auth_users (id, email, is_admin, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (email) DO NOTHING",
            new_id("usr"),
            email,
            is_admin,
            time.time(),
        )
        return str(await conn.fetchval("SELECT id FROM auth_users WHERE email = $1", email))

    async def ensure_user(self, email: str, is_admin: bool) -> str:
        async with self.pool.acquire() as conn:
            return await self._ensure_user(conn, email, is_admin)

    async def create_key(
        self,
        *,
        name: str,
        key_hash: str,
        hint: str,
        user_id: str,
        user_email: str | None,
        models: tuple[str, ...],
        rpm: int | None,
        expires_at: float | None,
    ) -> KeyRecord:
        async with self.pool.acquire() as conn, conn.transaction():
            owner = user_id
            if user_email:
                owner = await self._ensure_user(conn, user_email, False)
            row = await conn.fetchrow(
                _INSERT_KEY,
                new_id("key"),
                name,
                key_hash,
                hint,
                owner,
                orjson.dumps(list(models)).decode(),
                rpm,
                False,
                time.time(),
                expires_at,
            )
        return _record(row)

    async def replace_admin_key(self, *, key_hash: str, hint: str, user_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # One writer at a time: replicas starting together agree on one admin key.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('auth.admin_key'))")
            rows = await conn.fetch(
                "SELECT key_hash FROM auth_keys WHERE is_admin AND revoked_at IS NULL"
            )
            if any(r["key_hash"] == key_hash for r in rows):
                return
            await conn.execute(
                "UPDATE auth_keys SET revoked_at = $1 WHERE is_admin AND revoked_at IS NULL",
                time.time(),
            )
            await conn.execute(
                _INSERT_KEY,
                new_id("key"),
                "admin",
                key_hash,
                hint,
                user_id,
                "[]",
                None,
                True,
                time.time(),
                None,
            )

    async def has_admin_key(self) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM auth_keys WHERE is_admin AND revoked_at IS NULL LIMIT 1"
        )
        return found is not None

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM auth_keys WHERE key_hash = $1", key_hash)
        return _record(row) if row is not None else None

    async def hash_of(self, key_id: str) -> str | None:
        found = await self.pool.fetchval("SELECT key_hash FROM auth_keys WHERE id = $1", key_id)
        return None if found is None else str(found)

    async def list_keys(self) -> list[KeyRecord]:
        rows = await self.pool.fetch("SELECT * FROM auth_keys ORDER BY created_at")
        return [_record(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyRecord | None:
        await self.pool.execute(
            "UPDATE auth_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            time.time(),
            key_id,
        )
        row = await self.pool.fetchrow("SELECT * FROM auth_keys WHERE id = $1", key_id)
        return _record(row) if row is not None else None

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        rows = await self.pool.fetch(
            "SELECT id, revoked_at FROM auth_keys WHERE revoked_at > $1 ORDER BY revoked_at",
            since,
        )
        return [(str(r["id"]), float(r["revoked_at"])) for r in rows]

    async def ping(self) -> bool:
        return await ping(self.pool)

    async def close(self) -> None:
        await self.pool.close()
