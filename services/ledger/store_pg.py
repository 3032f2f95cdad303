"""The ledger on PostgreSQL (asyncpg), for the mesh.

``usage_events`` is range-partitioned by day on ``ts`` (Unix seconds). Retention
drops whole partitions, so old rows leave no dead tuples behind and no VACUUM
debt. The primary key is (request_id, ts): a partitioned table's unique key
must contain the partition key, and a redelivered event repeats both, so
``ON CONFLICT DO NOTHING`` keeps inserts idempotent. Indexes serve the usage
queries: (key_id, ts) and (model, ts)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tokgateway.common.contracts import UsageEvent
from tokgateway.common.postgres import Migration, affected, migrate, ping
from tokgateway.ledger.filters import EVERYTHING, UsageFilter
from tokgateway.ledger.store import COLUMNS, GROUPS, SCOPE_COLUMNS, attempt_log

log = logging.getLogger("tokgateway.ledger")

DAY = 86400
PARTITION_PREFIX = "usage_events_p"

MIGRATIONS = (
    Migration(
        1,
        "usage events partitioned by day",
        """
        CREATE TABLE IF NOT EXISTS usage_events (
            request_id TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            key_id TEXT,
            user_id TEXT,
            route TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT,
            upstream_model TEXT,
            stream BOOLEAN NOT NULL DEFAULT false,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            cache_write_tokens BIGINT NOT NULL DEFAULT 0,
            usage_estimated BOOLEAN NOT NULL DEFAULT false,
            cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
            status INTEGER NOT NULL,
            error_class TEXT,
            error TEXT,
            latency_ms DOUBLE PRECISION,
            upstream_ms DOUBLE PRECISION,
            ttft_ms DOUBLE PRECISION,
            overhead_ms DOUBLE PRECISION,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (request_id, ts)
        ) PARTITION BY RANGE (ts);
        CREATE INDEX IF NOT EXISTS usage_key_ts ON usage_events (key_id, ts);
        CREATE INDEX IF NOT EXISTS usage_model_ts ON usage_events (model, ts);
        CREATE INDEX IF NOT EXISTS usage_ts ON usage_events (ts);
        """,
    ),
    Migration(
        2,
        "team of each usage row; user and team spend indexes",
        """
        ALTER TABLE usage_events ADD COLUMN IF NOT EXISTS team_id TEXT;
        CREATE INDEX IF NOT EXISTS usage_user_ts ON usage_events (user_id, ts);
        CREATE INDEX IF NOT EXISTS usage_team_ts ON usage_events (team_id, ts);
        """,
    ),
    Migration(
        3,
        "every upstream attempt of a request (provider, status, latency)",
        "ALTER TABLE usage_events ADD COLUMN IF NOT EXISTS attempt_log TEXT;",
    ),
)

_TYPES = {
    "request_id": "text",
    "ts": "float8",
    "key_id": "text",
    "user_id": "text",
    "team_id": "text",
    "route": "text",
    "model": "text",
    "provider": "text",
    "upstream_model": "text",
    "stream": "bool",
    "prompt_tokens": "int8",
    "completion_tokens": "int8",
    "cached_tokens": "int8",
    "cache_write_tokens": "int8",
    "usage_estimated": "bool",
    "cost_usd": "float8",
    "status": "int4",
    "error_class": "text",
    "error": "text",
    "latency_ms": "float8",
    "upstream_ms": "float8",
    "ttft_ms": "float8",
    "overhead_ms": "float8",
    "attempts": "int4",
    "attempt_log": "text",
}

# One statement per batch: columns arrive as arrays and unnest into rows.
_INSERT = (
    f"INSERT INTO usage_events ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{_TYPES[c]}[]" for i, c in enumerate(COLUMNS))
    + ") ON CONFLICT DO NOTHING"
)

_PG_GROUPS = {
    **GROUPS,
    "day": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def _pg_placeholder(n: int) -> str:
    return f"${n}"


def day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


class PgLedgerStore:
    def __init__(self, pool: Any, *, retention_days: int = 0, days_ahead: int = 2) -> None:
        self.pool = pool
        self.retention_days = retention_days
        self.days_ahead = days_ahead
        self._partitions: set[date] = set()

    async def migrate(self) -> None:
        await migrate(self.pool, "ledger", MIGRATIONS)
        await self.maintain()

    async def _load_partitions(self, conn: Any) -> None:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_events'"
        )
        self._partitions = set()
        for r in rows:
            name = str(r["relname"])
            if name.startswith(PARTITION_PREFIX):
                self._partitions.add(
                    datetime.strptime(name.removeprefix(PARTITION_PREFIX), "%Y%m%d").date()
                )

    async def ensure_partitions(self, days: set[date]) -> None:
        missing = days - self._partitions
        if not missing:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ledger.partitions'))")
            await self._load_partitions(conn)
            for day in sorted(days - self._partitions):
                lo = _day_start(day)
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF usage_events"
                    f" FOR VALUES FROM ({lo!r}) TO ({lo + DAY!r})"
                )
                self._partitions.add(day)

    async def insert_batch(self, events: list[UsageEvent]) -> int:
        if not events:
            return 0
        await self.ensure_partitions({day_of(e.ts) for e in events})
        columns: list[list[Any]] = [[] for _ in COLUMNS]
        for ev in events:
            for i, name in enumerate(COLUMNS):
                columns[i].append(attempt_log(ev) if name == "attempt_log" else getattr(ev, name))
        status = await self.pool.execute(_INSERT, *columns)
        return affected(status)

    async def query_usage(
        self, filters: UsageFilter = EVERYTHING, group_by: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = filters.where(_pg_placeholder)
        group_sql = _PG_GROUPS.get(group_by or "")
        select = f"{group_sql} AS grp, " if group_sql else "'all' AS grp, "
        sql = (
            "SELECT " + select + "COUNT(*) AS requests, "
            "COUNT(*) FILTER (WHERE status >= 400) AS errors, "
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
        out = []
        for r in await self.pool.fetch(sql, *args):
            if not group_sql and r["requests"] == 0:
                continue
            out.append(
                {
                    "group": r["grp"],
                    "requests": int(r["requests"]),
                    "errors": int(r["errors"] or 0),
                    "prompt_tokens": int(r["prompt_tokens"]),
                    "completion_tokens": int(r["completion_tokens"]),
                    "cached_tokens": int(r["cached_tokens"]),
                    "cost_usd": round(float(r["cost_usd"]), 10),
                }
            )
        return out

    async def latency(self, filters: UsageFilter = EVERYTHING) -> dict[str, Any]:
        where, args = filters.where(_pg_placeholder)
        where.append("latency_ms IS NOT NULL")
        row = await self.pool.fetchrow(
            "SELECT COUNT(*) AS n,"
            " percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,"
            " percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99"
            " FROM usage_events WHERE " + " AND ".join(where),
            *args,
        )
        count = int(row["n"]) if row is not None else 0
        return {
            "requests": count,
            "p50_ms": float(row["p50"]) if count and row is not None else None,
            "p99_ms": float(row["p99"]) if count and row is not None else None,
        }

    async def spend_since(self, kind: str, scope_id: str, since: float) -> float:
        column = SCOPE_COLUMNS[kind]
        spend = await self.pool.fetchval(
            f"SELECT COALESCE(SUM(cost_usd), 0) FROM usage_events WHERE {column} = $1 AND ts >= $2",
            scope_id,
            since,
        )
        return float(spend)

    async def spend_by_scope(
        self, since_by_period: dict[str, float]
    ) -> dict[tuple[str, str, str], float]:
        """One scan per period: GROUPING SETS sum by key, user and team at once."""
        out: dict[tuple[str, str, str], float] = {}
        for period, since in since_by_period.items():
            rows = await self.pool.fetch(
                "SELECT key_id, user_id, team_id, GROUPING(key_id) AS gk,"
                " GROUPING(user_id) AS gu, SUM(cost_usd) AS spend FROM usage_events"
                " WHERE ts >= $1 GROUP BY GROUPING SETS ((key_id), (user_id), (team_id))",
                since,
            )
            for r in rows:
                if r["gk"] == 0:
                    kind, scope = "key", r["key_id"]
                elif r["gu"] == 0:
                    kind, scope = "user", r["user_id"]
                else:
                    kind, scope = "team", r["team_id"]
                if scope is not None:
                    out[(kind, str(scope), period)] = float(r["spend"] or 0.0)
        return out

    async def by_request(self, request_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM usage_events WHERE request_id = $1 LIMIT 1", request_id
        )
        return dict(row) if row is not None else None

    async def maintain(self) -> None:
        """Partitions for today and the next days; drop those past retention."""
        today = datetime.now(UTC).date()
        ahead = {today + timedelta(days=i) for i in range(self.days_ahead + 1)}
        await self.ensure_partitions(ahead)
        if self.retention_days <= 0:
            return
        cutoff = today - timedelta(days=self.retention_days)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ledger.partitions'))")
            await self._load_partitions(conn)
            for day in sorted(self._partitions):
                if day < cutoff:
                    await conn.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
                    self._partitions.discard(day)
                    log.info("ledger partition dropped", extra={"day": day.isoformat()})

    async def ping(self) -> bool:
        return await ping(self.pool)

    async def close(self) -> None:
        await self.pool.close()
