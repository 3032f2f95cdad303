"""Governor counters in the data directory's SQLite file, shared by the
worker processes of ``gateway run --workers N``. Each booking is one
``BEGIN IMMEDIATE`` transaction (read, check, add), so two workers never both
take the last slot. The table is emptied at bootstrap: budget counters are
rebuilt from the ledger on first use, windows start afresh."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from tokgateway.common.contracts import SpendSource
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.router.governor import EPSILON, Check, CounterGovernor, Outcome

SCHEMA = """
CREATE TABLE IF NOT EXISTS governor_counters (
    counter TEXT PRIMARY KEY,
    value REAL NOT NULL,
    expires REAL
)
"""
PRUNE_EVERY = 2000


def reset_counters(conn: sqlite3.Connection) -> None:
    """Create the table, empty (bootstrap, before workers start)."""
    conn.execute(SCHEMA)
    conn.execute("DELETE FROM governor_counters")


class SQLiteGovernor(CounterGovernor):
    def __init__(
        self, db: SQLiteDB, spend: SpendSource | None, metrics: RouterMetrics | None = None
    ) -> None:
        super().__init__(spend, metrics)
        self.db = db
        self._calls = 0
        self._ready = False

    async def _prepare(self) -> None:
        if not self._ready:
            await self.db.run(lambda c: c.execute(SCHEMA))
            self._ready = True

    async def _book(self, checks: Sequence[Check], now: float) -> Outcome:
        await self._prepare()
        self._calls += 1
        prune = self._calls % PRUNE_EVERY == 0
        return await self.db.run(lambda conn: _book(conn, checks, now, prune))

    async def _seed(self, check: Check, value: float) -> None:
        expires = None if check.ttl is None else time.time() + check.ttl
        await self.db.run(
            lambda conn: conn.execute(
                "INSERT OR IGNORE INTO governor_counters (counter, value, expires) "
                "VALUES (?, ?, ?)",
                (check.counter, value, expires),
            )
        )

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        await self.db.run(lambda conn: _add(conn, deltas))
        if self.metrics is not None:
            budgets = [c for c, _ in deltas if c.metric == "budget"]
            if budgets:
                values = await self.db.run(lambda conn: _values(conn, budgets))
                for check, value in zip(budgets, values, strict=True):
                    self.metrics.budget(
                        check.scope, check.scope_id, check.period, value, check.limit
                    )

    async def counter(self, name: str) -> float:
        """One counter's value, 0 when absent (tests, displays)."""
        await self._prepare()
        row = await self.db.run(
            lambda c: c.execute(
                "SELECT value FROM governor_counters WHERE counter = ?", (name,)
            ).fetchone()
        )
        return float(row[0]) if row is not None else 0.0

    async def close(self) -> None:
        await super().close()
        await self.db.close()


def _values(conn: sqlite3.Connection, checks: Sequence[Check]) -> list[float]:
    out = []
    for check in checks:
        row = conn.execute(
            "SELECT value FROM governor_counters WHERE counter = ?", (check.counter,)
        ).fetchone()
        out.append(float(row[0]) if row is not None else 0.0)
    return out


def _book(conn: sqlite3.Connection, checks: Sequence[Check], now: float, prune: bool) -> Outcome:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if prune:
            conn.execute("DELETE FROM governor_counters WHERE expires < ?", (now,))
        current: list[float] = []
        missing: list[int] = []
        for i, check in enumerate(checks):
            row = conn.execute(
                "SELECT value FROM governor_counters WHERE counter = ?", (check.counter,)
            ).fetchone()
            if row is None and check.metric == "budget":
                missing.append(i)
            current.append(float(row[0]) if row is not None else 0.0)
        refused = _refused(checks, current) if not missing else None
        if missing or refused is not None:
            conn.execute("ROLLBACK")
            if missing:
                return Outcome(missing=missing)
            assert refused is not None
            return Outcome(values=[current[refused]], rejected=refused)
        after = []
        for check, value in zip(checks, current, strict=True):
            expires = None if check.ttl is None else now + check.ttl
            conn.execute(
                "INSERT INTO governor_counters (counter, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(counter) DO UPDATE SET value = value + excluded.value",
                (check.counter, check.amount, expires),
            )
            after.append(value + check.amount)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return Outcome(values=after)


def _refused(checks: Sequence[Check], current: Sequence[float]) -> int | None:
    for i, (check, value) in enumerate(zip(checks, current, strict=True)):
        if value + check.amount > check.limit + EPSILON:
            return i
    return None


def _add(conn: sqlite3.Connection, deltas: list[tuple[Check, float]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for check, delta in deltas:
            conn.execute(
                "UPDATE governor_counters SET value = value + ? WHERE counter = ?",
                (delta, check.counter),
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
