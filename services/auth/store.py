"""Users, teams and keys on the embedded SQLite database.

The record types and the row-to-record mapping are shared with the PostgreSQL
store (store_pg.py): both select the same column names, and sqlite3.Row and
asyncpg's Record both read by name."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tokgateway.common.contracts import KeyInfo, Limits, Scope
from tokgateway.common.errors import BadRequest
from tokgateway.common.sqlite import transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    rpm INTEGER,
    tpm INTEGER,
    budget_usd REAL,
    budget_period TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS team_members (
    team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at REAL NOT NULL,
    PRIMARY KEY (team_id, user_id)
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
"""

# Columns added after the first release: databases made before get them here.
LATER_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (
        ("role", "TEXT NOT NULL DEFAULT 'member'"),
        ("status", "TEXT NOT NULL DEFAULT 'active'"),
        ("rpm", "INTEGER"),
        ("tpm", "INTEGER"),
        ("budget_usd", "REAL"),
        ("budget_period", "TEXT"),
        ("updated_at", "REAL"),
    ),
    "api_keys": (
        ("team_id", "TEXT REFERENCES teams(id)"),
        ("tpm", "INTEGER"),
        ("budget_usd", "REAL"),
        ("budget_period", "TEXT"),
        ("updated_at", "REAL"),
    ),
}

INDEXES = """
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
CREATE INDEX IF NOT EXISTS api_keys_team ON api_keys(team_id);
CREATE INDEX IF NOT EXISTS team_members_user ON team_members(user_id);
"""

LIMIT_COLUMNS = ("rpm", "tpm", "budget_usd", "budget_period")
USER_FIELDS = frozenset({"role", "status", *LIMIT_COLUMNS})
TEAM_FIELDS = frozenset({"name", *LIMIT_COLUMNS})
KEY_FIELDS = frozenset({"name", "models", *LIMIT_COLUMNS})


def limits_of(row: Mapping[str, Any], prefix: str = "") -> Limits:
    budget = row[prefix + "budget_usd"]
    return Limits(
        rpm=row[prefix + "rpm"],
        tpm=row[prefix + "tpm"],
        budget_usd=float(budget) if budget is not None else None,
        budget_period=row[prefix + "budget_period"] or "month",
    )


def limit_values(limits: Limits) -> tuple[Any, ...]:
    return (limits.rpm, limits.tpm, limits.budget_usd, limits.budget_period)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    role: str
    status: str
    limits: Limits
    is_admin: bool
    created_at: float
    updated_at: float | None
    teams: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "user",
            "email": self.email,
            "role": self.role,
            "status": self.status,
            **self.limits.to_dict(),
            "teams": list(self.teams),
            "is_admin": self.is_admin,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class TeamRecord:
    id: str
    name: str
    limits: Limits
    created_at: float
    updated_at: float | None
    members: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "team",
            "name": self.name,
            **self.limits.to_dict(),
            "members": list(self.members),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    hint: str
    user_id: str | None
    team_id: str | None
    models: tuple[str, ...]
    limits: Limits
    is_admin: bool
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    updated_at: float | None = None

    @property
    def rpm(self) -> int | None:
        return self.limits.rpm

    def public(self) -> dict[str, Any]:
        now = time.time()
        status = "active"
        if self.revoked_at is not None:
            status = "revoked"
        elif self.expires_at is not None and self.expires_at <= now:
            status = "expired"
        return {
            "id": self.id,
            "object": "key",
            "name": self.name,
            "hint": self.hint,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "models": list(self.models),
            **self.limits.to_dict(),
            "is_admin": self.is_admin,
            "status": status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def key_record(row: Mapping[str, Any]) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        hint=row["hint"],
        user_id=row["user_id"],
        team_id=row["team_id"],
        models=tuple(orjson.loads(row["models"] or "[]")),
        limits=limits_of(row),
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        updated_at=row["updated_at"],
    )


def user_record(row: Mapping[str, Any], teams: tuple[str, ...] = ()) -> UserRecord:
    return UserRecord(
        id=row["id"],
        email=row["email"],
        role=row["role"],
        status=row["status"],
        limits=limits_of(row),
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        teams=teams,
    )


def team_record(row: Mapping[str, Any], members: tuple[str, ...] = ()) -> TeamRecord:
    return TeamRecord(
        id=row["id"],
        name=row["name"],
        limits=limits_of(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        members=members,
    )


# One join answers a cache miss: the key, its user's role, status and limits,
# its team's limits.
VERIFY_SELECT = (
    "SELECT k.*, u.role AS u_role, u.status AS u_status, u.rpm AS u_rpm, u.tpm AS u_tpm,"
    " u.budget_usd AS u_budget_usd, u.budget_period AS u_budget_period,"
    " t.rpm AS t_rpm, t.tpm AS t_tpm, t.budget_usd AS t_budget_usd,"
    " t.budget_period AS t_budget_period"
    " FROM api_keys k LEFT JOIN users u ON u.id = k.user_id"
    " LEFT JOIN teams t ON t.id = k.team_id"
)


def key_info(row: Mapping[str, Any]) -> KeyInfo:
    """The router's view of a key row joined with its user and team (VERIFY_SELECT)."""
    rec = key_record(row)
    scopes: list[Scope] = []
    if not rec.limits.empty:
        scopes.append(Scope("key", rec.id, rec.limits))
    if rec.user_id is not None and row["u_role"] is not None:
        user_limits = limits_of(row, "u_")
        if not user_limits.empty:
            scopes.append(Scope("user", rec.user_id, user_limits))
    if rec.team_id is not None:
        team_limits = limits_of(row, "t_")
        if not team_limits.empty:
            scopes.append(Scope("team", rec.team_id, team_limits))
    role = row["u_role"] or ("admin" if rec.is_admin else "member")
    return KeyInfo(
        id=rec.id,
        name=rec.name,
        user_id=rec.user_id,
        team_id=rec.team_id,
        models=rec.models,
        expires_at=rec.expires_at,
        revoked=rec.revoked_at is not None,
        is_admin=rec.is_admin,
        role=role,
        scopes=tuple(scopes),
        disabled=row["u_status"] == "disabled",
    )


# -- schema ---------------------------------------------------------------------------
def migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing; add the later columns to older databases. Safe to
    run again and from several processes (one transaction, taken up front)."""
    with transaction(conn):
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        for table, columns in LATER_COLUMNS.items():
            have = {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns:
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                    if table == "users" and name == "role":
                        conn.execute("UPDATE users SET role = 'admin' WHERE is_admin = 1")
        for stmt in INDEXES.split(";"):
            if stmt.strip():
                conn.execute(stmt)


# -- users ----------------------------------------------------------------------------
def ensure_user(conn: sqlite3.Connection, user_id: str, email: str, is_admin: bool) -> str:
    row = conn.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()
    if row is not None:
        return str(row["id"])
    now = time.time()
    conn.execute(
        "INSERT INTO users (id, email, is_admin, role, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, email, int(is_admin), "admin" if is_admin else "member", now, now),
    )
    return user_id


def create_user(
    conn: sqlite3.Connection, *, user_id: str, email: str, role: str, limits: Limits
) -> UserRecord:
    now = time.time()
    try:
        conn.execute(
            "INSERT INTO users (id, email, is_admin, role, status, rpm, tpm, budget_usd,"
            " budget_period, created_at, updated_at)"
            " VALUES (?, ?, 0, ?, 'active', ?, ?, ?, ?, ?, ?)",
            (user_id, email, role, *limit_values(limits), now, now),
        )
    except sqlite3.IntegrityError:
        raise email_taken(email) from None
    return UserRecord(user_id, email, role, "active", limits, False, now, now)


def email_taken(email: str) -> BadRequest:
    return BadRequest(f"A user with email {email!r} exists.", param="email", code="email_taken")


def name_taken(name: str) -> BadRequest:
    return BadRequest(f"A team named {name!r} exists.", param="name", code="team_name_taken")


def get_user(conn: sqlite3.Connection, user_id: str) -> UserRecord | None:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    teams = conn.execute(
        "SELECT team_id FROM team_members WHERE user_id = ? ORDER BY team_id", (user_id,)
    )
    return user_record(row, tuple(r["team_id"] for r in teams))


def list_users(conn: sqlite3.Connection) -> list[UserRecord]:
    teams: dict[str, list[str]] = {}
    for r in conn.execute("SELECT team_id, user_id FROM team_members ORDER BY team_id"):
        teams.setdefault(r["user_id"], []).append(r["team_id"])
    rows = conn.execute("SELECT * FROM users ORDER BY created_at, id")
    return [user_record(r, tuple(teams.get(r["id"], ()))) for r in rows]


def _update(
    conn: sqlite3.Connection,
    table: str,
    allowed: frozenset[str],
    row_id: str,
    changes: dict[str, Any],
) -> bool:
    cols = [c for c in changes if c in allowed]
    if set(changes) - allowed:
        raise ValueError(f"not updatable in {table}: {sorted(set(changes) - allowed)}")
    sets = ", ".join(f"{c} = ?" for c in cols)
    values = [
        orjson.dumps(list(changes[c])).decode() if c == "models" else changes[c] for c in cols
    ]
    sql = f"UPDATE {table} SET {sets + ', ' if sets else ''}updated_at = ? WHERE id = ?"
    return conn.execute(sql, (*values, time.time(), row_id)).rowcount > 0


def update_user(
    conn: sqlite3.Connection, user_id: str, changes: dict[str, Any]
) -> UserRecord | None:
    with transaction(conn):
        if not _update(conn, "users", USER_FIELDS, user_id, changes):
            return None
        return get_user(conn, user_id)


def delete_user(
    conn: sqlite3.Connection, user_id: str
) -> tuple[UserRecord, list[KeyRecord]] | None:
    """Remove the user and its memberships; its keys are revoked (and kept,
    without an owner, so their history stays). Returns the keys it revoked."""
    with transaction(conn):
        user = get_user(conn, user_id)
        if user is None:
            return None
        live = [
            r["id"]
            for r in conn.execute(
                "SELECT id FROM api_keys WHERE user_id = ? AND revoked_at IS NULL", (user_id,)
            )
        ]
        now = time.time()
        conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), user_id = NULL,"
            " team_id = NULL, updated_at = ? WHERE user_id = ?",
            (now, now, user_id),
        )
        conn.execute("DELETE FROM team_members WHERE user_id = ?", (user_id,))
        conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
        keys = [k for k in (by_id(conn, i) for i in live) if k is not None]
        return user, keys


# -- teams ----------------------------------------------------------------------------
def create_team(conn: sqlite3.Connection, *, team_id: str, name: str, limits: Limits) -> TeamRecord:
    now = time.time()
    try:
        conn.execute(
            "INSERT INTO teams (id, name, rpm, tpm, budget_usd, budget_period, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (team_id, name, *limit_values(limits), now, now),
        )
    except sqlite3.IntegrityError:
        raise name_taken(name) from None
    return TeamRecord(team_id, name, limits, now, now)


def get_team(conn: sqlite3.Connection, team_id: str) -> TeamRecord | None:
    row = conn.execute("SELECT * FROM teams WHERE id = ?", (team_id,)).fetchone()
    if row is None:
        return None
    members = conn.execute(
        "SELECT user_id FROM team_members WHERE team_id = ? ORDER BY added_at, user_id",
        (team_id,),
    )
    return team_record(row, tuple(r["user_id"] for r in members))


def list_teams(conn: sqlite3.Connection) -> list[TeamRecord]:
    members: dict[str, list[str]] = {}
    for r in conn.execute("SELECT team_id, user_id FROM team_members ORDER BY added_at, user_id"):
        members.setdefault(r["team_id"], []).append(r["user_id"])
    rows = conn.execute("SELECT * FROM teams ORDER BY created_at, id")
    return [team_record(r, tuple(members.get(r["id"], ()))) for r in rows]


def update_team(
    conn: sqlite3.Connection, team_id: str, changes: dict[str, Any]
) -> TeamRecord | None:
    with transaction(conn):
        try:
            if not _update(conn, "teams", TEAM_FIELDS, team_id, changes):
                return None
        except sqlite3.IntegrityError:
            raise name_taken(str(changes.get("name"))) from None
        return get_team(conn, team_id)


def delete_team(
    conn: sqlite3.Connection, team_id: str
) -> tuple[TeamRecord, list[KeyRecord]] | None:
    """Remove the team; its keys stay with their users, without a team.
    Returns those keys as they are now."""
    with transaction(conn):
        team = get_team(conn, team_id)
        if team is None:
            return None
        ids = [
            r["id"] for r in conn.execute("SELECT id FROM api_keys WHERE team_id = ?", (team_id,))
        ]
        conn.execute(
            "UPDATE api_keys SET team_id = NULL, updated_at = ? WHERE team_id = ?",
            (time.time(), team_id),
        )
        conn.execute("DELETE FROM team_members WHERE team_id = ?", (team_id,))
        conn.execute("DELETE FROM teams WHERE id = ?", (team_id,))
        return team, [k for k in (by_id(conn, i) for i in ids) if k is not None]


def add_member(conn: sqlite3.Connection, team_id: str, user_id: str) -> bool:
    """True when added, False when the user already was a member."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO team_members (team_id, user_id, added_at) VALUES (?, ?, ?)",
        (team_id, user_id, time.time()),
    )
    return cur.rowcount > 0


def remove_member(
    conn: sqlite3.Connection, team_id: str, user_id: str
) -> tuple[bool, list[KeyRecord]]:
    """Take the user out of the team; the user's keys in that team leave it too.
    Returns (was a member, the keys that left)."""
    with transaction(conn):
        ids = [
            r["id"]
            for r in conn.execute(
                "SELECT id FROM api_keys WHERE team_id = ? AND user_id = ?", (team_id, user_id)
            )
        ]
        conn.execute(
            "UPDATE api_keys SET team_id = NULL, updated_at = ? WHERE team_id = ? AND user_id = ?",
            (time.time(), team_id, user_id),
        )
        cur = conn.execute(
            "DELETE FROM team_members WHERE team_id = ? AND user_id = ?", (team_id, user_id)
        )
        return cur.rowcount > 0, [k for k in (by_id(conn, i) for i in ids) if k is not None]


def is_member(conn: sqlite3.Connection, team_id: str, user_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM team_members WHERE team_id = ? AND user_id = ?", (team_id, user_id)
    ).fetchone()
    return row is not None


# -- keys -----------------------------------------------------------------------------
def insert_key(
    conn: sqlite3.Connection,
    *,
    key_id: str,
    name: str,
    key_hash: str,
    hint: str,
    user_id: str | None,
    team_id: str | None = None,
    models: tuple[str, ...],
    limits: Limits | None = None,
    is_admin: bool,
    expires_at: float | None,
) -> KeyRecord:
    limits = limits or Limits()
    now = time.time()
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, hint, user_id, team_id, models, rpm, tpm,"
        " budget_usd, budget_period, is_admin, created_at, updated_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key_id,
            name,
            key_hash,
            hint,
            user_id,
            team_id,
            orjson.dumps(list(models)).decode(),
            *limit_values(limits),
            int(is_admin),
            now,
            now,
            expires_at,
        ),
    )
    return KeyRecord(
        key_id, name, hint, user_id, team_id, models, limits, is_admin, now, expires_at, None, now
    )


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
            is_admin=True,
            expires_at=None,
        )


def has_admin_key(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM api_keys WHERE is_admin = 1 AND revoked_at IS NULL LIMIT 1"
    ).fetchone()
    return row is not None


def verify(conn: sqlite3.Connection, key_hash: str) -> KeyInfo | None:
    row = conn.execute(VERIFY_SELECT + " WHERE k.key_hash = ?", (key_hash,)).fetchone()
    return key_info(row) if row is not None else None


def by_hash(conn: sqlite3.Connection, key_hash: str) -> KeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
    return key_record(row) if row is not None else None


def by_id(conn: sqlite3.Connection, key_id: str) -> KeyRecord | None:
    row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return key_record(row) if row is not None else None


def hash_of(conn: sqlite3.Connection, key_id: str) -> str | None:
    row = conn.execute("SELECT key_hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else str(row["key_hash"])


def list_keys(conn: sqlite3.Connection, user_id: str | None = None) -> list[KeyRecord]:
    if user_id is not None:
        rows = conn.execute(
            "SELECT * FROM api_keys WHERE user_id = ? ORDER BY created_at, id", (user_id,)
        )
    else:
        rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at, id")
    return [key_record(r) for r in rows]


def update_key(conn: sqlite3.Connection, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
    with transaction(conn):
        if not _update(conn, "api_keys", KEY_FIELDS, key_id, changes):
            return None
        return by_id(conn, key_id)


def rotate_key(conn: sqlite3.Connection, key_id: str, key_hash: str, hint: str) -> KeyRecord | None:
    """A new secret for a live key: same id, name and limits; the old hash is
    gone, so the old secret is refused on the next lookup."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE api_keys SET key_hash = ?, hint = ?, updated_at = ?"
            " WHERE id = ? AND revoked_at IS NULL AND is_admin = 0",
            (key_hash, hint, time.time(), key_id),
        )
        return by_id(conn, key_id) if cur.rowcount else None


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
