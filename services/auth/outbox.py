"""The event outbox: every lifecycle event auth emits is written to a table
before it goes on the bus, so a restart loses nothing and other readers can
follow it by sequence number.

All-in-one (SQLite) the outbox is also the transport between worker
processes: each worker polls rows written by the others and republishes them
on its in-process bus, and the hook deliverer keeps a cursor over it. In the
mesh (PostgreSQL) a relay publishes unpublished rows to JetStream (message id
= event id, so a retried publish is stored once) and marks them published, so
an event emitted while NATS is down goes out when it is back."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Protocol

from tokgateway.common.contracts import AuthEvent
from tokgateway.common.sqlite import SQLiteDB

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    origin TEXT NOT NULL DEFAULT '',
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_key_expiry (key_id TEXT PRIMARY KEY, announced_at REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    origin: str
    event: AuthEvent
    body: bytes
    trace: str = ""  # W3C traceparent of the call that emitted it ('' when untraced)


class Outbox(Protocol):
    async def migrate(self) -> None: ...

    async def append(self, event: AuthEvent, origin: str) -> int:
        """Store the event; returns its sequence number."""

    async def since(self, seq: int, limit: int = 500) -> list[OutboxRow]:
        """Rows after ``seq``, oldest first."""

    async def last_seq(self) -> int: ...

    async def by_id(self, event_id: str) -> AuthEvent | None: ...

    async def claim_expired(self, key_ids: list[str]) -> list[str]:
        """The ids not announced as expired before, now marked (once across
        every worker and replica)."""

    async def prune(self, before: float) -> int:
        """Drop events older than ``before`` (seconds since the epoch)."""


def outbox_row(seq: int, origin: str, body: bytes, trace: str = "") -> OutboxRow:
    return OutboxRow(int(seq), str(origin), AuthEvent.from_json(body), bytes(body), trace or "")


class SQLiteOutbox:
    """The outbox in the gateway's SQLite file, on the auth store's connection."""

    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.run(lambda c: c.executescript(SQLITE_SCHEMA))

    async def append(self, event: AuthEvent, origin: str) -> int:
        body = event.to_json()

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO auth_events (id, type, ts, origin, body) VALUES (?, ?, ?, ?, ?)",
                (event.id, event.type, event.ts, origin, body),
            )
            return int(cur.lastrowid or 0)

        return await self.db.run(op)

    async def since(self, seq: int, limit: int = 500) -> list[OutboxRow]:
        def op(conn: sqlite3.Connection) -> list[OutboxRow]:
            rows = conn.execute(
                "SELECT seq, origin, body FROM auth_events WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
            return [outbox_row(r["seq"], r["origin"], r["body"]) for r in rows]

        return await self.db.run(op)

    async def last_seq(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) AS s FROM auth_events").fetchone()
            return int(row["s"])

        return await self.db.run(op)

    async def by_id(self, event_id: str) -> AuthEvent | None:
        def op(conn: sqlite3.Connection) -> AuthEvent | None:
            row = conn.execute("SELECT body FROM auth_events WHERE id = ?", (event_id,)).fetchone()
            return AuthEvent.from_json(row["body"]) if row is not None else None

        return await self.db.run(op)

    async def claim_expired(self, key_ids: list[str]) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            now = time.time()
            return [
                k
                for k in key_ids
                if conn.execute(
                    "INSERT OR IGNORE INTO auth_key_expiry (key_id, announced_at) VALUES (?, ?)",
                    (k, now),
                ).rowcount
            ]

        return await self.db.run(op) if key_ids else []

    async def prune(self, before: float) -> int:
        return await self.db.run(
            lambda c: c.execute("DELETE FROM auth_events WHERE ts < ?", (before,)).rowcount
        )


def outbox_for(store: Any) -> Outbox | None:
    """The outbox beside an auth store: on its SQLite file or its PostgreSQL pool."""
    db = getattr(store, "db", None)
    if isinstance(db, SQLiteDB):
        return SQLiteOutbox(db)
    pool = getattr(store, "pool", None)
    if pool is not None:
        from tokgateway.auth.outbox_pg import PgOutbox

        return PgOutbox(pool)
    return None
