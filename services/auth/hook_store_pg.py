"""The PostgreSQL hook store of the mesh: replicas claim due deliveries with
``FOR UPDATE SKIP LOCKED`` so no two send the same one at once. Kept apart from
``hook_store`` so the all-in-one gateway imports no PostgreSQL driver."""

from __future__ import annotations

import time
from typing import Any

import orjson

from tokgateway.auth.hook_store import (
    FAILED_WHERE,
    LOG_COLUMNS,
    Delivery,
    StoredHook,
    hook_row,
    log_row,
)
from tokgateway.common.contracts import AuthEvent
from tokgateway.common.postgres import Migration, migrate
from tokgateway.common.settings import HookConfig

PG_MIGRATIONS = (
    Migration(
        1,
        "hooks and deliveries",
        """
        CREATE TABLE IF NOT EXISTS hooks (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            events TEXT NOT NULL,
            url TEXT NOT NULL DEFAULT '',
            secret TEXT NOT NULL DEFAULT '',
            secret_env TEXT NOT NULL DEFAULT '',
            command TEXT NOT NULL DEFAULT '',
            timeout_s DOUBLE PRECISION,
            enabled BOOLEAN NOT NULL DEFAULT true,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE IF NOT EXISTS hook_deliveries (
            hook TEXT NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            body BYTEA NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at DOUBLE PRECISION NOT NULL,
            last_status INTEGER,
            last_error TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hook, event_id)
        );
        CREATE INDEX IF NOT EXISTS hook_deliveries_due ON hook_deliveries(next_at)
            WHERE state = 'pending';
        """,
    ),
)


class PgHookStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def migrate(self) -> None:
        await migrate(self.pool, "hooks", PG_MIGRATIONS)

    async def list_hooks(self) -> list[StoredHook]:
        return [hook_row(r) for r in await self.pool.fetch("SELECT * FROM hooks ORDER BY name")]

    async def put_hook(self, hook: HookConfig, stored_secret: str) -> None:
        await self.pool.execute(
            "INSERT INTO hooks (name, kind, events, url, secret, secret_env, command, timeout_s,"
            " enabled, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
            " ON CONFLICT (name) DO UPDATE SET kind = $2, events = $3, url = $4, secret = $5,"
            " secret_env = $6, command = $7, timeout_s = $8, enabled = $9",
            hook.name,
            hook.kind,
            orjson.dumps(list(hook.events)).decode(),
            hook.url,
            stored_secret,
            hook.secret_env,
            hook.command,
            hook.timeout_s,
            hook.enabled,
            time.time(),
        )

    async def delete_hook(self, name: str) -> bool:
        status = await self.pool.execute("DELETE FROM hooks WHERE name = $1", name)
        return str(status).endswith(" 1")

    async def accept(self, event: AuthEvent, hooks: list[str]) -> int:
        if not hooks:
            return 0
        now = time.time()
        rows = await self.pool.fetch(
            "INSERT INTO hook_deliveries (hook, event_id, type, body, next_at, created_at,"
            " updated_at) SELECT h, $2, $3, $4, $5, $5, $5 FROM unnest($1::text[]) AS h"
            " ON CONFLICT DO NOTHING RETURNING hook",
            hooks,
            event.id,
            event.type,
            event.to_json(),
            now,
        )
        return len(rows)

    async def claim(self, now: float, lease: float, limit: int) -> list[Delivery]:
        rows = await self.pool.fetch(
            "UPDATE hook_deliveries d SET next_at = $2, attempts = d.attempts + 1"
            " FROM (SELECT hook, event_id FROM hook_deliveries WHERE state = 'pending'"
            "       AND next_at <= $1 ORDER BY next_at, created_at LIMIT $3"
            "       FOR UPDATE SKIP LOCKED) due"
            " WHERE d.hook = due.hook AND d.event_id = due.event_id"
            " RETURNING d.hook, d.event_id, d.type, d.body, d.attempts",
            now,
            now + lease,
            limit,
        )
        return [
            Delivery(r["hook"], r["event_id"], r["type"], bytes(r["body"]), r["attempts"])
            for r in rows
        ]

    async def record(
        self, d: Delivery, *, state: str, next_at: float, status: int | None, error: str | None
    ) -> None:
        await self.pool.execute(
            "UPDATE hook_deliveries SET state = $1, next_at = $2, last_status = $3,"
            " last_error = $4, updated_at = $5 WHERE hook = $6 AND event_id = $7",
            state,
            next_at,
            status,
            error,
            time.time(),
            d.hook,
            d.event_id,
        )

    async def log(self, *, failed: bool, limit: int, event_id: str | None) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if failed:
            where.append(FAILED_WHERE)
        if event_id:
            args.append(event_id)
            where.append(f"event_id = ${len(args)}")
        sql = f"SELECT {LOG_COLUMNS} FROM hook_deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        args.append(limit)
        sql += f" ORDER BY updated_at DESC LIMIT ${len(args)}"
        return [log_row(r) for r in await self.pool.fetch(sql, *args)]

    async def requeue(self, event_id: str) -> int:
        rows = await self.pool.fetch(
            "UPDATE hook_deliveries SET state = 'pending', attempts = 0, next_at = $1,"
            " last_error = NULL, last_status = NULL WHERE event_id = $2 RETURNING hook",
            time.time(),
            event_id,
        )
        return len(rows)
