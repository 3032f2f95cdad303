"""The PostgreSQL outbox of the mesh auth service (see ``outbox``), kept apart
so the all-in-one gateway imports no PostgreSQL driver."""

from __future__ import annotations

import time
from typing import Any

from tokgateway.auth.outbox import OutboxRow, outbox_row
from tokgateway.common.contracts import AuthEvent
from tokgateway.common.postgres import Migration, migrate
from tokgateway.common.tracing import inject

PG_MIGRATIONS = (
    Migration(
        1,
        "auth event outbox",
        """
        CREATE TABLE IF NOT EXISTS auth_events (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            origin TEXT NOT NULL DEFAULT '',
            body BYTEA NOT NULL,
            published_at DOUBLE PRECISION
        );
        CREATE INDEX IF NOT EXISTS auth_events_unpublished ON auth_events(seq)
            WHERE published_at IS NULL;
        CREATE TABLE IF NOT EXISTS auth_key_expiry (
            key_id TEXT PRIMARY KEY, announced_at DOUBLE PRECISION NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "trace context of each event, so its publish continues the call that emitted it",
        "ALTER TABLE auth_events ADD COLUMN IF NOT EXISTS trace TEXT NOT NULL DEFAULT ''",
    ),
)


class PgOutbox:
    """The outbox on PostgreSQL (mesh), with the relay's view of it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def migrate(self) -> None:
        await migrate(self.pool, "auth_events", PG_MIGRATIONS)

    async def append(self, event: AuthEvent, origin: str) -> int:
        seq = await self.pool.fetchval(
            "INSERT INTO auth_events (id, type, ts, origin, body, trace)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            event.id,
            event.type,
            event.ts,
            origin,
            event.to_json(),
            inject().get("traceparent", ""),
        )
        return int(seq)

    async def since(self, seq: int, limit: int = 500) -> list[OutboxRow]:
        rows = await self.pool.fetch(
            "SELECT seq, origin, body FROM auth_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            seq,
            limit,
        )
        return [outbox_row(r["seq"], r["origin"], r["body"]) for r in rows]

    async def last_seq(self) -> int:
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(seq), 0) FROM auth_events"))

    async def by_id(self, event_id: str) -> AuthEvent | None:
        body = await self.pool.fetchval("SELECT body FROM auth_events WHERE id = $1", event_id)
        return AuthEvent.from_json(body) if body is not None else None

    async def claim_expired(self, key_ids: list[str]) -> list[str]:
        if not key_ids:
            return []
        rows = await self.pool.fetch(
            "INSERT INTO auth_key_expiry (key_id, announced_at) SELECT k, $2"
            " FROM unnest($1::text[]) AS k ON CONFLICT DO NOTHING RETURNING key_id",
            key_ids,
            time.time(),
        )
        return [str(r["key_id"]) for r in rows]

    async def prune(self, before: float) -> int:
        rows = await self.pool.fetch(
            "DELETE FROM auth_events WHERE ts < $1 AND published_at IS NOT NULL RETURNING seq",
            before,
        )
        return len(rows)

    async def unpublished(self, limit: int = 200) -> list[OutboxRow]:
        rows = await self.pool.fetch(
            "SELECT seq, origin, body, trace FROM auth_events WHERE published_at IS NULL"
            " ORDER BY seq LIMIT $1",
            limit,
        )
        return [outbox_row(r["seq"], r["origin"], r["body"], r["trace"]) for r in rows]

    async def mark_published(self, seqs: list[int]) -> None:
        if seqs:
            await self.pool.execute(
                "UPDATE auth_events SET published_at = $1 WHERE seq = ANY($2::bigint[])",
                time.time(),
                seqs,
            )
