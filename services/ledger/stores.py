"""Where usage rows live: the ``LedgerStore`` protocol and its SQLite
implementation (all-in-one). The PostgreSQL one (mesh) is in store_pg.py."""

from __future__ import annotations

from typing import Any, Protocol

from tokgateway.common.contracts import UsageEvent
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger import store
from tokgateway.ledger.filters import EVERYTHING, UsageFilter


class LedgerStore(Protocol):
    async def migrate(self) -> None: ...

    async def insert_batch(self, events: list[UsageEvent]) -> int:
        """Insert in one transaction; a request seen before is skipped. Returns
        the rows actually inserted."""

    async def query_usage(
        self, filters: UsageFilter = EVERYTHING, group_by: str | None = None
    ) -> list[dict[str, Any]]:
        """Sums per ``group_by`` (a key of store.GROUPS; None: one row) of the
        rows ``filters`` selects."""

    async def latency(self, filters: UsageFilter = EVERYTHING) -> dict[str, Any]:
        """{"requests", "p50_ms", "p99_ms"} of the total latency of the rows
        ``filters`` selects."""

    async def spend_since(self, kind: str, scope_id: str, since: float) -> float:
        """Sum of cost_usd of the key, user or team since ``since``."""

    async def spend_by_scope(
        self, since_by_period: dict[str, float]
    ) -> dict[tuple[str, str, str], float]:
        """{(kind, id, period): usd} for every holder with rows since its period start."""

    async def by_request(self, request_id: str) -> dict[str, Any] | None: ...

    async def maintain(self) -> None:
        """Periodic upkeep (partitions ahead, retention)."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class SQLiteLedgerStore:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.run(store.migrate)

    async def insert_batch(self, events: list[UsageEvent]) -> int:
        return await self.db.run(lambda c: store.insert_batch(c, events))

    async def query_usage(
        self, filters: UsageFilter = EVERYTHING, group_by: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.db.run(lambda c: store.query_usage(c, filters, group_by))

    async def latency(self, filters: UsageFilter = EVERYTHING) -> dict[str, Any]:
        return await self.db.run(lambda c: store.latency(c, filters))

    async def spend_since(self, kind: str, scope_id: str, since: float) -> float:
        return await self.db.run(lambda c: store.spend_since(c, kind, scope_id, since))

    async def spend_by_scope(
        self, since_by_period: dict[str, float]
    ) -> dict[tuple[str, str, str], float]:
        return await self.db.run(lambda c: store.spend_by_scope(c, since_by_period))

    async def by_request(self, request_id: str) -> dict[str, Any] | None:
        return await self.db.run(lambda c: store.by_request(c, request_id))

    async def maintain(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        await self.db.close()
