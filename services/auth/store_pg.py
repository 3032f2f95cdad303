"""Users, teams and keys on PostgreSQL (asyncpg), for the mesh. Same records
and the same rules as the SQLite store (store.py, stores.py)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import orjson

from tokgateway.auth.store import (
    KEY_FIELDS,
    TEAM_FIELDS,
    USER_FIELDS,
    VERIFY_SELECT,
    KeyRecord,
    TeamRecord,
    UserRecord,
    email_taken,
    key_info,
    key_record,
    limit_values,
    name_taken,
    team_record,
    user_record,
)
from tokgateway.auth.stores import not_a_member, owner_missing
from tokgateway.common.contracts import KeyInfo, Limits
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
    Migration(
        2,
        "roles, status and limits of users; teams; key limits and team",
        """
        ALTER TABLE auth_users
            ADD COLUMN IF NOT EXISTS role TEXT NOT NULL DEFAULT 'member',
            ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT 'active',
            ADD COLUMN IF NOT EXISTS rpm INTEGER,
            ADD COLUMN IF NOT EXISTS tpm INTEGER,
            ADD COLUMN IF NOT EXISTS budget_usd DOUBLE PRECISION,
            ADD COLUMN IF NOT EXISTS budget_period TEXT,
            ADD COLUMN IF NOT EXISTS updated_at DOUBLE PRECISION;
        UPDATE auth_users SET role = 'admin' WHERE is_admin;
        CREATE TABLE IF NOT EXISTS auth_teams (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            rpm INTEGER,
            tpm INTEGER,
            budget_usd DOUBLE PRECISION,
            budget_period TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE IF NOT EXISTS auth_team_members (
            team_id TEXT NOT NULL REFERENCES auth_teams(id) ON DELETE CASCADE,
            user_id TEXT NOT NULL REFERENCES auth_users(id) ON DELETE CASCADE,
            added_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (team_id, user_id)
        );
        CREATE INDEX IF NOT EXISTS auth_team_members_user ON auth_team_members(user_id);
        ALTER TABLE auth_keys
            ADD COLUMN IF NOT EXISTS team_id TEXT REFERENCES auth_teams(id),
            ADD COLUMN IF NOT EXISTS tpm INTEGER,
            ADD COLUMN IF NOT EXISTS budget_usd DOUBLE PRECISION,
            ADD COLUMN IF NOT EXISTS budget_period TEXT,
            ADD COLUMN IF NOT EXISTS updated_at DOUBLE PRECISION;
        CREATE INDEX IF NOT EXISTS auth_keys_team ON auth_keys(team_id);
        """,
    ),
)

_VERIFY = (
    VERIFY_SELECT.replace("FROM api_keys k", "FROM auth_keys k")
    .replace("JOIN users u", "JOIN auth_users u")
    .replace("JOIN teams t", "JOIN auth_teams t")
    + " WHERE k.key_hash = $1"
)

_INSERT_KEY = (
    "INSERT INTO auth_keys (id, name, key_hash, hint, user_id, team_id, models, rpm, tpm,"
    " budget_usd, budget_period, is_admin, created_at, updated_at, expires_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $13, $14)"
    " RETURNING *"
)


def _changes_sql(
    table: str, allowed: frozenset[str], changes: dict[str, Any]
) -> tuple[str, list[Any]]:
    """``UPDATE table SET ... WHERE id = $1 RETURNING *`` and its arguments after the id."""
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"not updatable in {table}: {sorted(unknown)}")
    sets: list[str] = []
    args: list[Any] = []
    for col, value in changes.items():
        if col == "models":
            args.append(orjson.dumps(list(value)).decode())
            sets.append(f"models = ${len(args) + 1}::jsonb")
        else:
            args.append(value)
            sets.append(f"{col} = ${len(args) + 1}")
    args.append(time.time())
    sets.append(f"updated_at = ${len(args) + 1}")
    return f"UPDATE {table} SET {', '.join(sets)} WHERE id = $1 RETURNING *", args


class PgAuthStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def migrate(self) -> None:
        await migrate(self.pool, "auth", MIGRATIONS)

    async def _ensure_user(self, conn: Any, email: str, is_admin: bool) -> str:
        now = time.time()
        await conn.execute(
            "INSERT INTO auth_users (id, email, is_admin, role, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (email) DO NOTHING",
            new_id("usr"),
            email,
            is_admin,
            "admin" if is_admin else "member",
            now,
        )
        return str(await conn.fetchval("SELECT id FROM auth_users WHERE email = $1", email))

    async def ensure_user(self, email: str, is_admin: bool) -> str:
        async with self.pool.acquire() as conn:
            return await self._ensure_user(conn, email, is_admin)

    # -- users --------------------------------------------------------------------
    async def create_user(self, *, email: str, role: str, limits: Limits) -> UserRecord:
        now = time.time()
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO auth_users (id, email, is_admin, role, status, rpm, tpm, budget_usd,"
                " budget_period, created_at, updated_at)"
                " VALUES ($1, $2, false, $3, 'active', $4, $5, $6, $7, $8, $8) RETURNING *",
                new_id("usr"),
                email,
                role,
                *limit_values(limits),
                now,
            )
        except asyncpg.UniqueViolationError:
            raise email_taken(email) from None
        return user_record(row)

    async def _user(self, conn: Any, user_id: str) -> UserRecord | None:
        row = await conn.fetchrow("SELECT * FROM auth_users WHERE id = $1", user_id)
        if row is None:
            return None
        teams = await conn.fetch(
            "SELECT team_id FROM auth_team_members WHERE user_id = $1 ORDER BY team_id", user_id
        )
        return user_record(row, tuple(r["team_id"] for r in teams))

    async def get_user(self, user_id: str) -> UserRecord | None:
        async with self.pool.acquire() as conn:
            return await self._user(conn, user_id)

    async def list_users(self) -> list[UserRecord]:
        teams: dict[str, list[str]] = {}
        for r in await self.pool.fetch(
            "SELECT team_id, user_id FROM auth_team_members ORDER BY team_id"
        ):
            teams.setdefault(r["user_id"], []).append(r["team_id"])
        rows = await self.pool.fetch("SELECT * FROM auth_users ORDER BY created_at, id")
        return [user_record(r, tuple(teams.get(r["id"], ()))) for r in rows]

    async def update_user(self, user_id: str, changes: dict[str, Any]) -> UserRecord | None:
        sql, args = _changes_sql("auth_users", USER_FIELDS, changes)
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow(sql, user_id, *args) is None:
                return None
            return await self._user(conn, user_id)

    async def delete_user(self, user_id: str) -> tuple[UserRecord, list[KeyRecord]] | None:
        async with self.pool.acquire() as conn, conn.transaction():
            user = await self._user(conn, user_id)
            if user is None:
                return None
            now = time.time()
            live = await conn.fetch(
                "UPDATE auth_keys SET revoked_at = $1, user_id = NULL, team_id = NULL,"
                " updated_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING *",
                now,
                user_id,
            )
            await conn.execute(
                "UPDATE auth_keys SET user_id = NULL, team_id = NULL WHERE user_id = $1", user_id
            )
            await conn.execute("DELETE FROM auth_team_members WHERE user_id = $1", user_id)
            await conn.execute("DELETE FROM auth_users WHERE id = $1", user_id)
            return user, [key_record(r) for r in live]

    # -- teams --------------------------------------------------------------------
    async def create_team(self, *, name: str, limits: Limits) -> TeamRecord:
        now = time.time()
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO auth_teams (id, name, rpm, tpm, budget_usd, budget_period,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                new_id("team"),
                name,
                *limit_values(limits),
                now,
            )
        except asyncpg.UniqueViolationError:
            raise name_taken(name) from None
        return team_record(row)

    async def _team(self, conn: Any, team_id: str) -> TeamRecord | None:
        row = await conn.fetchrow("SELECT * FROM auth_teams WHERE id = $1", team_id)
        if row is None:
            return None
        members = await conn.fetch(
            "SELECT user_id FROM auth_team_members WHERE team_id = $1 ORDER BY added_at, user_id",
            team_id,
        )
        return team_record(row, tuple(r["user_id"] for r in members))

    async def get_team(self, team_id: str) -> TeamRecord | None:
        async with self.pool.acquire() as conn:
            return await self._team(conn, team_id)

    async def list_teams(self) -> list[TeamRecord]:
        members: dict[str, list[str]] = {}
        for r in await self.pool.fetch(
            "SELECT team_id, user_id FROM auth_team_members ORDER BY added_at, user_id"
        ):
            members.setdefault(r["team_id"], []).append(r["user_id"])
        rows = await self.pool.fetch("SELECT * FROM auth_teams ORDER BY created_at, id")
        return [team_record(r, tuple(members.get(r["id"], ()))) for r in rows]

    async def update_team(self, team_id: str, changes: dict[str, Any]) -> TeamRecord | None:
        sql, args = _changes_sql("auth_teams", TEAM_FIELDS, changes)
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                if await conn.fetchrow(sql, team_id, *args) is None:
                    return None
            except asyncpg.UniqueViolationError:
                raise name_taken(str(changes.get("name"))) from None
            return await self._team(conn, team_id)

    async def delete_team(self, team_id: str) -> tuple[TeamRecord, list[KeyRecord]] | None:
        async with self.pool.acquire() as conn, conn.transaction():
            team = await self._team(conn, team_id)
            if team is None:
                return None
            keys = await conn.fetch(
                "UPDATE auth_keys SET team_id = NULL, updated_at = $1 WHERE team_id = $2"
                " RETURNING *",
                time.time(),
                team_id,
            )
            await conn.execute("DELETE FROM auth_teams WHERE id = $1", team_id)
            return team, [key_record(r) for r in keys]

    async def add_member(self, team_id: str, user_id: str) -> bool:
        status = await self.pool.execute(
            "INSERT INTO auth_team_members (team_id, user_id, added_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            team_id,
            user_id,
            time.time(),
        )
        return bool(status.endswith(" 1"))

    async def remove_member(self, team_id: str, user_id: str) -> tuple[bool, list[KeyRecord]]:
        async with self.pool.acquire() as conn, conn.transaction():
            keys = await conn.fetch(
                "UPDATE auth_keys SET team_id = NULL, updated_at = $1"
                " WHERE team_id = $2 AND user_id = $3 RETURNING *",
                time.time(),
                team_id,
                user_id,
            )
            status = await conn.execute(
                "DELETE FROM auth_team_members WHERE team_id = $1 AND user_id = $2",
                team_id,
                user_id,
            )
            return status.endswith(" 1"), [key_record(r) for r in keys]

    # -- keys ---------------------------------------------------------------------
    async def create_key(
        self,
        *,
        name: str,
        key_hash: str,
        hint: str,
        user_id: str,
        user_email: str | None,
        team_id: str | None = None,
        models: tuple[str, ...],
        limits: Limits | None = None,
        expires_at: float | None,
    ) -> KeyRecord:
        async with self.pool.acquire() as conn, conn.transaction():
            owner = user_id
            if user_email:
                owner = await self._ensure_user(conn, user_email, False)
            elif await conn.fetchval("SELECT 1 FROM auth_users WHERE id = $1", owner) is None:
                raise owner_missing(owner)
            if team_id is not None and (
                await conn.fetchval(
                    "SELECT 1 FROM auth_team_members WHERE team_id = $1 AND user_id = $2",
                    team_id,
                    owner,
                )
                is None
            ):
                raise not_a_member(team_id, owner)
            row = await conn.fetchrow(
                _INSERT_KEY,
                new_id("key"),
                name,
                key_hash,
                hint,
                owner,
                team_id,
                orjson.dumps(list(models)).decode(),
                *limit_values(limits or Limits()),
                False,
                time.time(),
                expires_at,
            )
        return key_record(row)

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
                None,
                "[]",
                *limit_values(Limits()),
                True,
                time.time(),
                None,
            )

    async def has_admin_key(self) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM auth_keys WHERE is_admin AND revoked_at IS NULL LIMIT 1"
        )
        return found is not None

    async def verify(self, key_hash: str) -> KeyInfo | None:
        row = await self.pool.fetchrow(_VERIFY, key_hash)
        return key_info(row) if row is not None else None

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM auth_keys WHERE key_hash = $1", key_hash)
        return key_record(row) if row is not None else None

    async def by_id(self, key_id: str) -> KeyRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM auth_keys WHERE id = $1", key_id)
        return key_record(row) if row is not None else None

    async def hash_of(self, key_id: str) -> str | None:
        found = await self.pool.fetchval("SELECT key_hash FROM auth_keys WHERE id = $1", key_id)
        return None if found is None else str(found)

    async def list_keys(self, user_id: str | None = None) -> list[KeyRecord]:
        if user_id is not None:
            rows = await self.pool.fetch(
                "SELECT * FROM auth_keys WHERE user_id = $1 ORDER BY created_at, id", user_id
            )
        else:
            rows = await self.pool.fetch("SELECT * FROM auth_keys ORDER BY created_at, id")
        return [key_record(r) for r in rows]

    async def update_key(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        sql, args = _changes_sql("auth_keys", KEY_FIELDS, changes)
        row = await self.pool.fetchrow(sql, key_id, *args)
        return key_record(row) if row is not None else None

    async def rotate_key(self, key_id: str, key_hash: str, hint: str) -> KeyRecord | None:
        row = await self.pool.fetchrow(
            "UPDATE auth_keys SET key_hash = $2, hint = $3, updated_at = $4"
            " WHERE id = $1 AND revoked_at IS NULL AND NOT is_admin RETURNING *",
            key_id,
            key_hash,
            hint,
            time.time(),
        )
        return key_record(row) if row is not None else None

    async def revoke(self, key_id: str) -> KeyRecord | None:
        await self.pool.execute(
            "UPDATE auth_keys SET revoked_at = $1, updated_at = $1"
            " WHERE id = $2 AND revoked_at IS NULL",
            time.time(),
            key_id,
        )
        return await self.by_id(key_id)

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
