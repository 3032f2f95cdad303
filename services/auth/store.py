"""Key and user storage on the embedded SQLite database."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from tokgateway.common.contracts import KeyInfo, Limits, Scope
from tokgateway.common.sqlite import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    user_id TEXT REFERENCES users(id),
    models TEXT NOT NULL DEFAULT '[]',
    rpm INTEGER,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
"""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    hint: str
    user_id: str | None
    models: tuple[str, ...]
    rpm: int | None
    is_admin: bool
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def info(self) -> KeyInfo:
        return KeyInfo(
            id=self.id,
            name=self.name,
            user_id=self.user_id,
            models=self.models,
            expires_at=self.expires_at,
            revoked=self.revoked_at is not None,
            is_admin=self.is_admin,
            role="admin" if self.is_admin else "member",
            scopes=(Scope("key", self.id, Limits(rpm=self.rpm)),) if self.rpm else (),
        )

    def public(self) -> dict[str, Any]:
        now = time.time()
        status = "active"
        if self.revoked_at is not None:
            status = "revoked"
        elif self.expires_at is not None and self.expires_at <= now:
            status = "expired"
        return {
            "id": self.id,
            "name": self.name,
            "hint": self.hint,
            "user_id": self.user_id,
            "models": list(self.models),
            "rpm": self.rpm,
            "is_admin": self.is_admin,
            "status": status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def _record(row: sqlite3.Row) -> KeyRecord:
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


def migrate(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def ensure_user(conn: sqlite3.Connection, user_id: str, email: str, is_admin: bool) -> str:
    row = conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
    if row is not None:
        return str(row["id"])
    conn.execute(
        "INSERT INTO users (id, email, is_admin, created_at) VALUES (?, ?, ?, ?)",
        (user_id, email, int(is_admin), time.time()),
    )
    return user_id


def insert_key(
    conn: sqlite3.Connection,
    *,
    key_id: str,
    name: str,
    key_hash: str,
    hint: str,
    user_id: str | None,
    models: tuple[str, ...],
    rpm: int | None,
    is_admin: bool,
    expires_at: float | None,
) -> KeyRecord:
    now = time.time()
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, hint, user_id, models, rpm, is_admin,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key_id,
            name,
            key_hash,
            hint,
            user_id,
            orjson.dumps(list(models)).decode(),
            rpm,
            int(is_admin),
            now,
            expires_at,
        ),
    )
    return KeyRecord(key_id, name, hint, user_id, models, rpm, is_admin, now, expires_at, None)


def replace_admin_key(
    conn: sqlite3.Connection, *, key_id: str, key_hash: str, hint: str, user_id: str
) -> KeyRecord | None:
    """Make key_hash the one admin key; None when it already is."""
    with transaction(conn):
        row = conn.execute(
            "SELECT * FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL"
        ).fetchall()
        if any(r["key_hash"] == key_hash for r in row):
            return None
        conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE is_admin = 1 AND revoked_at IS NULL",
            (time.time(),),
        )
        return insert_key(
            conn,
            key_id=key_id,
            name="admin",
            key_hash=key_hash,
            hint=hint,
            user_id=user_id,
            models=(),
            rpm=None,
            is_admin=True,
            expires_at=None,
        )


def has_admin_key(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL LIMIT 1"
    ).fetchone()
    return row is not None


def by_hash(conn: sqlite3.Connection, key_hash: str) -> KeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
    return _record(row) if row is not None else None


def by_id(conn: sqlite3.Connection, key_id: str) -> KeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return _record(row) if row is not None else None


def hash_of(conn: sqlite3.Connection, key_id: str) -> str | None:
    row = conn.execute("SELECT key_hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else str(row["key_hash"])


def list_keys(conn: sqlite3.Connection, include_revoked: bool = True) -> list[KeyRecord]:
    sql = "SELECT * FROM api_keys"
    if not include_revoked:
        sql += " WHERE revoked_at IS NULL"
    return [_record(r) for r in conn.execute(sql + " ORDER BY created_at")]


def revoked_since(conn: sqlite3.Connection, since: float) -> list[tuple[str, float]]:
    rows = conn.execute(
        "SELECT id, revoked_at FROM api_keys WHERE revoked_at > ? ORDER BY revoked_at",
        (since,),
    )
    return [(str(r["id"]), float(r["revoked_at"])) for r in rows]


def revoke(conn: sqlite3.Connection, key_id: str) -> KeyRecord | None:
    with transaction(conn):
        conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return by_id(conn, key_id)
