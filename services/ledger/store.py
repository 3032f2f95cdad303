"""Ledger tables on the embedded SQLite database: idempotent batch insert and
the usage queries."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import orjson

from tokgateway.common.contracts import UsageEvent
from tokgateway.common.sqlite import transaction
from tokgateway.ledger.filters import EVERYTHING, UsageFilter

COLUMNS = (
    "request_id",
    "ts",
    "key_id",
    "user_id",
    "team_id",
    "route",
    "model",
    "provider",
    "upstream_model",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "usage_estimated",
    "cost_usd",
    "status",
    "error_class",
    "error",
    "latency_ms",
    "upstream_ms",
    "ttft_ms",
    "overhead_ms",
    "attempts",
    "attempt_log",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_events (
    request_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    key_id TEXT,
    user_id TEXT,
    team_id TEXT,
    route TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT,
    upstream_model TEXT,
    stream INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    usage_estimated INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    error_class TEXT,
    error TEXT,
    latency_ms REAL,
    upstream_ms REAL,
    ttft_ms REAL,
    overhead_ms REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    attempt_log TEXT
);
CREATE INDEX IF NOT EXISTS usage_key_ts ON usage_events(key_id, ts);
CREATE INDEX IF NOT EXISTS usage_model_ts ON usage_events(model, ts);
CREATE INDEX IF NOT EXISTS usage_ts ON usage_events(ts);
"""

# Added after the first release; older ledgers get them in ``migrate``.
LATER_COLUMNS = (("team_id", "TEXT"), ("attempt_log", "TEXT"))
INDEXES = """
CREATE INDEX IF NOT EXISTS usage_user_ts ON usage_events(user_id, ts);
CREATE INDEX IF NOT EXISTS usage_team_ts ON usage_events(team_id, ts);
"""

# The ledger column naming each kind of budget holder (contracts.SCOPE_KINDS).
SCOPE_COLUMNS = {"key": "key_id", "user": "user_id", "team": "team_id"}

_INSERT = (
    f"INSERT OR IGNORE INTO usage_events ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)

GROUPS = {
    "model": "model",
    "provider": "COALESCE(provider, '')",
    "key": "COALESCE(key_id, '')",
    "user": "COALESCE(user_id, '')",
    "team": "COALESCE(team_id, '')",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
}


def migrate(conn: sqlite3.Connection) -> None:
    """Create the table, add later columns to an older one; idempotent, one
    transaction (workers of one gateway may run it together)."""
    with transaction(conn):
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        have = {r["name"] for r in conn.execute("PRAGMA table_info(usage_events)")}
        for name, decl in LATER_COLUMNS:
            if name not in have:
                conn.execute(f"ALTER TABLE usage_events ADD COLUMN {name} {decl}")
        for stmt in INDEXES.split(";"):
            if stmt.strip():
                conn.execute(stmt)


def _row(ev: UsageEvent) -> tuple[Any, ...]:
    return (
        ev.request_id,
        ev.ts,
        ev.key_id,
        ev.user_id,
        ev.team_id,
        ev.route,
        ev.model,
        ev.provider,
        ev.upstream_model,
        int(ev.stream),
        ev.prompt_tokens,
        ev.completion_tokens,
        ev.cached_tokens,
        ev.cache_write_tokens,
        int(ev.usage_estimated),
        ev.cost_usd,
        ev.status,
        ev.error_class,
        ev.error,
        ev.latency_ms,
        ev.upstream_ms,
        ev.ttft_ms,
        ev.overhead_ms,
        ev.attempts,
        attempt_log(ev),
    )


def attempt_log(ev: UsageEvent) -> str | None:
    """Every upstream attempt (provider, status, latency_ms) as JSON text."""
    tried = ev.extra.get("attempts")
    return orjson.dumps(tried).decode() if tried else None


def insert_batch(conn: sqlite3.Connection, events: list[UsageEvent]) -> int:
    """Insert in one transaction; a request id seen before is ignored."""
    with transaction(conn):
        before = conn.total_changes
        conn.executemany(_INSERT, [_row(e) for e in events])
        return conn.total_changes - before


def query_usage(
    conn: sqlite3.Connection, filters: UsageFilter = EVERYTHING, group_by: str | None = None
) -> list[dict[str, Any]]:
    where, args = filters.where(_sqlite_placeholder)
    group_sql = GROUPS.get(group_by or "")
    select = f"{group_sql} AS grp, " if group_sql else "'all' AS grp, "
    sql = (
        "SELECT " + select + "COUNT(*) AS requests, "
        "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, "
        "COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, "
        "COALESCE(SUM(completion_tokens), 0) AS completion_tokens, "
        "COALESCE(SUM(cached_tokens), 0) AS cached_tokens, "
        "COALESCE(SUM(cost_usd), 0) AS cost_usd "
        "FROM usage_events"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    if group_sql:
        sql += " GROUP BY grp ORDER BY grp"
    rows = []
    for r in conn.execute(sql, args):
        if not group_sql and r["requests"] == 0:
            continue
        rows.append(
            {
                "group": r["grp"],
                "requests": r["requests"],
                "errors": r["errors"] or 0,
                "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"],
                "cached_tokens": r["cached_tokens"],
                "cost_usd": round(r["cost_usd"], 10),
            }
        )
    return rows


def recent(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM usage_events ORDER BY ts DESC LIMIT ?", (limit,))
    return [dict(r) for r in rows]


def _sqlite_placeholder(n: int) -> str:
    return "?"


def nearest_rank(count: int, fraction: float) -> int:
    """The 0-based position of the ``fraction`` percentile in ``count``
    ascending values (nearest rank: the same as PostgreSQL's percentile_disc)."""
    return max(math.ceil(fraction * count) - 1, 0)


def latency(conn: sqlite3.Connection, filters: UsageFilter = EVERYTHING) -> dict[str, Any]:
    """p50 and p99 of the total latency of the requests in the window."""
    where, args = filters.where(_sqlite_placeholder)
    where.append("latency_ms IS NOT NULL")
    cond = " WHERE " + " AND ".join(where)
    count = int(conn.execute(f"SELECT COUNT(*) FROM usage_events{cond}", args).fetchone()[0])
    out: dict[str, Any] = {"requests": count, "p50_ms": None, "p99_ms": None}
    if count:
        sql = f"SELECT latency_ms FROM usage_events{cond} ORDER BY latency_ms LIMIT 1 OFFSET ?"
        for name, fraction in (("p50_ms", 0.5), ("p99_ms", 0.99)):
            row = conn.execute(sql, [*args, nearest_rank(count, fraction)]).fetchone()
            out[name] = float(row[0])
    return out


def by_request(conn: sqlite3.Connection, request_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM usage_events WHERE request_id = ?", (request_id,)).fetchone()
    return dict(row) if row is not None else None


def spend_since(conn: sqlite3.Connection, kind: str, scope_id: str, since: float) -> float:
    column = SCOPE_COLUMNS[kind]
    row = conn.execute(
        f"SELECT COALESCE(SUM(cost_usd), 0) AS spend FROM usage_events"
        f" WHERE {column} = ? AND ts >= ?",
        (scope_id, since),
    ).fetchone()
    return float(row["spend"])


def spend_by_scope(
    conn: sqlite3.Connection, since_by_period: dict[str, float]
) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for period, since in since_by_period.items():
        for kind, column in SCOPE_COLUMNS.items():
            rows = conn.execute(
                f"SELECT {column} AS scope, SUM(cost_usd) AS spend FROM usage_events"
                f" WHERE ts >= ? AND {column} IS NOT NULL GROUP BY {column}",
                (since,),
            )
            for r in rows:
                out[(kind, str(r["scope"]), period)] = float(r["spend"] or 0.0)
    return out
