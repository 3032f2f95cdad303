"""The ledger service: consumes usage events from the bus, writes them, serves
usage queries."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.contracts import USAGE_SUBJECT, Bus, UsageEvent
from tokgateway.common.errors import BadRequest, GatewayError
from tokgateway.common.http import AdminGuard, JSONResponse, error_response
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger import store
from tokgateway.ledger.stores import LedgerStore, SQLiteLedgerStore
from tokgateway.ledger.writer import LedgerWriter

log = logging.getLogger("tokgateway.ledger")


def parse_time(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"'{name}' must be an ISO 8601 time or a Unix time.", param=name) from None
    if dt.tzinfo is None:
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class LedgerService:
    """Usage rows over a ``LedgerStore``. All-in-one: a ``SQLiteDB`` (wrapped)
    fed from the in-process bus through the batching writer. Mesh: a PostgreSQL
    store and ``bus=None``; the JetStream consumer (consumer.py) feeds it."""

    def __init__(
        self,
        db: SQLiteDB | LedgerStore,
        bus: Bus | None,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        queue_limit: int = 100_000,
    ) -> None:
        self.store: LedgerStore = SQLiteLedgerStore(db) if isinstance(db, SQLiteDB) else db
        self.bus = bus
        self.writer = LedgerWriter(
            self.store.insert_batch,
            batch_size=batch_size,
            flush_interval=flush_interval,
            queue_limit=queue_limit,
        )
        self.bad_events = 0

    async def start(self) -> None:
        await self.store.migrate()
        if self.bus is not None:
            self.bus.subscribe(USAGE_SUBJECT, self._on_usage)
            self.writer.start()

    def _on_usage(self, subject: str, payload: bytes) -> None:
        try:
            event = UsageEvent.from_json(payload)
        except (ValueError, TypeError):
            self.bad_events += 1
            log.error("malformed usage event dropped", extra={"subject": subject})
            return
        self.writer.submit(event)

    def submit(self, event: UsageEvent) -> None:
        """An event from a router in the same process."""
        self.writer.submit(event)

    async def close(self) -> None:
        await self.writer.close()
        await self.store.close()

    async def usage(
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        group_by: str | None = None,
    ) -> list[dict[str, Any]]:
        return await self.store.query_usage(
            key_id=key_id, since=since, until=until, group_by=group_by
        )

    async def record(self, request_id: str) -> dict[str, Any] | None:
        return await self.store.by_request(request_id)


class LedgerAdminAPI:
    def __init__(self, service: LedgerService, guard: AdminGuard) -> None:
        self.service = service
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/admin/usage", self.usage, methods=["GET"]),
            Route("/admin/usage/{request_id}", self.record, methods=["GET"]),
        ]

    async def usage(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            q = request.query_params
            group_by = q.get("group_by") or None
            if group_by is not None and group_by not in store.GROUPS:
                raise BadRequest(
                    f"'group_by' must be one of {', '.join(store.GROUPS)}.", param="group_by"
                )
            rows = await self.service.usage(
                key_id=q.get("key") or None,
                since=parse_time(q.get("since"), "since"),
                until=parse_time(q.get("until"), "until"),
                group_by=group_by,
            )
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "group_by": group_by, "data": rows})

    async def record(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            row = await self.service.record(request.path_params["request_id"])
        except GatewayError as err:
            return error_response(err)
        if row is None:
            return JSONResponse(
                {
                    "error": {
                        "message": "not found",
                        "type": "not_found_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=404,
            )
        return JSONResponse(row)
