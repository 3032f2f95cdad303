"""Where usage rows live: the ``LedgerStore`` protocol and its SQLite
implementation (all-in-one). The PostgreSQL one (mesh) is in store_pg.py."""

from __future__ import annotations

from typing import Any, Protocol

from tokgateway.common.contracts import UsageEvent
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger import store


class LedgerStore(Protocol):
    async def migrate(self) -> None: ...

    async def insert_batch(self, events: list[UsageEvent]) -> int:
        """Insert in one transaction; a request seen before is skipped. Returns
        the rows actually inserted."""

    async def query_usage(
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        group_by: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
    ) -> list[dict[str, Any]]: ...

    async def latency(
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
    ) -> dict[str, Any]:
        """{"requests", "p50_ms", "p99_ms"} of the total latency in the window."""

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
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        group_by: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
    ) -> list[dict[str, Any]]:
        return await self.db.run(
            lambda c: store.query_usage(
                c,
                key_id=key_id,
                since=since,
                until=until,
                group_by=group_by,
                user_id=user_id,
                team_id=team_id,
            )
        )

    async def latency(
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
    ) -> dict[str, Any]:
        return await self.db.run(
            lambda c: store.latency(
                c, key_id=key_id, since=since, until=until, user_id=user_id, team_id=team_id
            )
        )

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
