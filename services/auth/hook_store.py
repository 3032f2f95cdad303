"""Where provisioning hooks keep their state: hooks added through the admin
API, and one delivery row per (hook, event) with its state, attempts, next
try and last error. The SQLite store serves the all-in-one gateway (and keeps
its cursor over the outbox and the lease that lets one worker deliver); the
PostgreSQL store serves the mesh, where replicas claim due deliveries with
``FOR UPDATE SKIP LOCKED`` so no two send the same one at once.

A delivery is claimed by pushing its ``next_at`` past a lease and counting the
attempt, before it is sent: a deliverer killed mid-send leaves a row that is
due again when the lease ends, and a crash loop still runs out of attempts."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tokgateway.common.contracts import AuthEvent
from tokgateway.common.settings import HookConfig
from tokgateway.common.sqlite import SQLiteDB, transaction

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    events TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    secret TEXT NOT NULL DEFAULT '',
    secret_env TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    timeout_s REAL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hook_deliveries (
    hook TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (hook, event_id)
);
CREATE INDEX IF NOT EXISTS hook_deliveries_due ON hook_deliveries(state, next_at);
CREATE TABLE IF NOT EXISTS hook_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hook_lease (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    hook: str
    event_id: str
    type: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredHook:
    """A hook added through the API; ``secret`` as stored (sealed when the
    gateway has a secret key)."""

    config: HookConfig
    stored_secret: str


class HookStore(Protocol):
    async def migrate(self) -> None: ...
    async def list_hooks(self) -> list[StoredHook]: ...
    async def put_hook(self, hook: HookConfig, stored_secret: str) -> None: ...
    async def delete_hook(self, name: str) -> bool: ...
    async def accept(self, event: AuthEvent, hooks: list[str]) -> int:
        """A pending delivery per hook (existing ones untouched); returns how many are new."""

    async def claim(self, now: float, lease: float, limit: int) -> list[Delivery]: ...
    async def record(
        self,
        d: Delivery,
        *,
        state: str,
        next_at: float,
        status: int | None,
        error: str | None,
    ) -> None: ...
    async def log(self, *, failed: bool, limit: int, event_id: str | None) -> list[dict[str, Any]]:
        """Newest first; ``failed`` keeps dead rows and pending ones that have failed."""

    async def requeue(self, event_id: str) -> int: ...


def hook_row(row: Any) -> StoredHook:
    cfg = HookConfig(
        name=row["name"],
        kind=row["kind"],
        events=tuple(orjson.loads(row["events"])),
        url=row["url"],
        secret_env=row["secret_env"],
        command=row["command"],
        timeout_s=row["timeout_s"],
        enabled=bool(row["enabled"]),
    )
    return StoredHook(cfg, row["secret"])


def log_row(row: Any) -> dict[str, Any]:
    return {
        "hook": row["hook"],
        "event_id": row["event_id"],
        "type": row["type"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_at": row["next_at"] if row["state"] == PENDING else None,
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


LOG_COLUMNS = (
    "hook, event_id, type, state, attempts, next_at, last_status, last_error,"
    " created_at, updated_at"
)
FAILED_WHERE = "(state = 'dead' OR (state = 'pending' AND last_error IS NOT NULL))"


class SQLiteHookStore:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.run(lambda c: c.executescript(SQLITE_SCHEMA))

    async def list_hooks(self) -> list[StoredHook]:
        def op(conn: sqlite3.Connection) -> list[StoredHook]:
            return [hook_row(r) for r in conn.execute("SELECT * FROM hooks ORDER BY name")]

        return await self.db.run(op)

    async def put_hook(self, hook: HookConfig, stored_secret: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO hooks (name, kind, events, url, secret, secret_env,"
                " command, timeout_s, enabled, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    hook.name,
                    hook.kind,
                    orjson.dumps(list(hook.events)).decode(),
                    hook.url,
                    stored_secret,
                    hook.secret_env,
                    hook.command,
                    hook.timeout_s,
                    int(hook.enabled),
                    time.time(),
                ),
            )

        await self.db.run(op)

    async def delete_hook(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM hooks WHERE name = ?", (name,)).rowcount > 0

        return await self.db.run(op)

    async def accept(self, event: AuthEvent, hooks: list[str]) -> int:
        body = event.to_json()
        now = time.time()

        def op(conn: sqlite3.Connection) -> int:
            new = 0
            with transaction(conn):
                for hook in hooks:
                    new += conn.execute(
                        "INSERT OR IGNORE INTO hook_deliveries (hook, event_id, type, body,"
                        " next_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                        (hook, event.id, event.type, body, now, now, now),
                    ).rowcount
            return new

        return await self.db.run(op)

    async def claim(self, now: float, lease: float, limit: int) -> list[Delivery]:
        def op(conn: sqlite3.Connection) -> list[Delivery]:
            # Most passes find nothing due: look before taking the write lock
            # the ledger's inserts also need.
            due = conn.execute(
                "SELECT 1 FROM hook_deliveries WHERE state = 'pending' AND next_at <= ? LIMIT 1",
                (now,),
            ).fetchone()
            if due is None:
                return []
            with transaction(conn):
                rows = conn.execute(
                    "SELECT hook, event_id, type, body, attempts FROM hook_deliveries"
                    " WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, created_at"
                    " LIMIT ?",
                    (now, limit),
                ).fetchall()
                for r in rows:
                    conn.execute(
                        "UPDATE hook_deliveries SET next_at = ?, attempts = attempts + 1"
                        " WHERE hook = ? AND event_id = ?",
                        (now + lease, r["hook"], r["event_id"]),
                    )
            return [
                Delivery(r["hook"], r["event_id"], r["type"], bytes(r["body"]), r["attempts"] + 1)
                for r in rows
            ]

        return await self.db.run(op)

    async def record(
        self, d: Delivery, *, state: str, next_at: float, status: int | None, error: str | None
    ) -> None:
        await self.db.run(
            lambda c: c.execute(
                "UPDATE hook_deliveries SET state = ?, next_at = ?, last_status = ?,"
                " last_error = ?, updated_at = ? WHERE hook = ? AND event_id = ?",
                (state, next_at, status, error, time.time(), d.hook, d.event_id),
            )
        )

    async def log(self, *, failed: bool, limit: int, event_id: str | None) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if failed:
            where.append(FAILED_WHERE)
        if event_id:
            where.append("event_id = ?")
            args.append(event_id)
        sql = f"SELECT {LOG_COLUMNS} FROM hook_deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC LIMIT ?"

        def op(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [log_row(r) for r in conn.execute(sql, (*args, limit))]

        return await self.db.run(op)

    async def requeue(self, event_id: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE hook_deliveries SET state = 'pending', attempts = 0, next_at = ?,"
                " last_error = NULL, last_status = NULL WHERE event_id = ?",
                (time.time(), event_id),
            ).rowcount

        return await self.db.run(op)

    # -- all-in-one only: the cursor over the outbox and the deliverer's lease -------
    async def cursor(self, name: str) -> int | None:
        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT seq FROM hook_cursor WHERE name = ?", (name,)).fetchone()
            return None if row is None else int(row["seq"])

        return await self.db.run(op)

    async def set_cursor(self, name: str, seq: int) -> None:
        await self.db.run(
            lambda c: c.execute(
                "INSERT INTO hook_cursor (name, seq) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )
        )

    async def lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the named lease; True while ``holder`` has it."""

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT holder, until FROM hook_lease WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row["holder"] != holder and row["until"] > now:
                return False
            if row is not None and row["holder"] == holder and row["until"] - now > ttl / 2:
                return True  # renewed recently enough: no write
            with transaction(conn):
                row = conn.execute(
                    "SELECT holder, until FROM hook_lease WHERE name = ?", (name,)
                ).fetchone()
                if row is not None and row["holder"] != holder and row["until"] > now:
                    return False
                conn.execute(
                    "INSERT INTO hook_lease (name, holder, until) VALUES (?, ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                    " until = excluded.until",
                    (name, holder, now + ttl),
                )
                return True

        return await self.db.run(op)

    async def release(self, name: str, holder: str) -> None:
        await self.db.run(
            lambda c: c.execute(
                "DELETE FROM hook_lease WHERE name = ? AND holder = ?", (name, holder)
            )
        )
