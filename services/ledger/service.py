"""The ledger service: consumes usage events from the bus, writes them, serves
usage queries."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.contracts import (
    BUDGET_PERIODS,
    SCOPE_KINDS,
    USAGE_SUBJECT,
    Bus,
    UsageEvent,
)
from tokgateway.common.crypto import token_matches
from tokgateway.common.errors import BadRequest, GatewayError, NotFound, Unauthenticated
from tokgateway.common.http import (
    AdminGuard,
    Identity,
    JSONResponse,
    error_response,
    read_json,
)
from tokgateway.common.keys import bearer_token
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger import store
from tokgateway.ledger.filters import EVERYTHING, UsageFilter
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
        self, filters: UsageFilter = EVERYTHING, group_by: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.store.query_usage(filters, group_by)

    async def latency(self, filters: UsageFilter = EVERYTHING) -> dict[str, Any]:
        return await self.store.latency(filters)

    # -- the SpendSource contract ---------------------------------------------------
    async def spend_since(self, kind: str, id: str, since: float) -> float:
        """USD recorded for one key, user or team (``kind`` in SCOPE_KINDS) in
        requests at or after ``since``: the spend of one budget period when
        ``since`` is ``periods.period_start(period, now)``."""
        if kind not in SCOPE_KINDS:
            raise BadRequest(f"'kind' must be one of {', '.join(SCOPE_KINDS)}.", param="kind")
        return await self.store.spend_since(kind, id, since)

    async def spend_by_scope(
        self, since_by_period: dict[str, float]
    ) -> dict[tuple[str, str, str], float]:
        """Every key's, user's and team's spend per budget period, in a few
        grouped scans: ``{(kind, id, period): usd}``, each period counted from
        ``since_by_period[period]`` (e.g. ``{"day": period_start("day", now),
        "month": period_start("month", now), "total": 0.0}``). Holders without
        rows in a period are absent (spend 0). For rebuilding budget counters
        at router start."""
        unknown = set(since_by_period) - set(BUDGET_PERIODS)
        if unknown:
            raise BadRequest(f"Unknown budget period {sorted(unknown)[0]!r}.", param="period")
        return await self.store.spend_by_scope(dict(since_by_period))

    async def record(self, request_id: str) -> dict[str, Any] | None:
        return await self.store.by_request(request_id)


class LedgerAdminAPI:
    def __init__(self, service: LedgerService, guard: AdminGuard) -> None:
        self.service = service
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/admin/usage", self.usage, methods=["GET"]),
            Route("/admin/usage/latency", self.latency, methods=["GET"]),
            Route("/admin/usage/{request_id}", self.record, methods=["GET"]),
        ]

    async def usage(self, request: Request) -> Response:
        """Admin and viewers see all usage; a member's key sees only its
        user's (any other filter narrows within that)."""
        try:
            who = await self.guard.identify(request)
            group_by = request.query_params.get("group_by") or None
            if group_by is not None and group_by not in store.GROUPS:
                raise BadRequest(
                    f"'group_by' must be one of {', '.join(store.GROUPS)}.", param="group_by"
                )
            rows = await self.service.usage(_filters(request, who), group_by)
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "group_by": group_by, "data": rows})

    async def latency(self, request: Request) -> Response:
        """p50/p99 latency of the requests in a window, scoped like ``usage``."""
        try:
            who = await self.guard.identify(request)
            stats = await self.service.latency(_filters(request, who))
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "latency", **stats})

    async def record(self, request: Request) -> Response:
        try:
            who = await self.guard.identify(request)
            row = await self.service.record(request.path_params["request_id"])
            if row is None or not who.owns(row.get("user_id")):
                raise NotFound("No usage recorded for this request id.", code="not_found")
        except GatewayError as err:
            return error_response(err)
        return JSONResponse(row)


def _filters(request: Request, who: Identity) -> UsageFilter:
    """The rows a usage query may read: its ``key``, ``user``, ``team``,
    ``since`` and ``until`` parameters, within the caller's own user's rows
    when the caller is a member."""
    q = request.query_params
    user_id = q.get("user") or None
    if not who.sees_all:
        if user_id is not None and user_id != who.user_id:
            raise BadRequest("A member's key sees only its own usage.", param="user")
        user_id = who.user_id or "-"
    return UsageFilter(
        key_id=q.get("key") or None,
        user_id=user_id,
        team_id=q.get("team") or None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
    )


class LedgerInternalAPI:
    """What other mesh services call: spend queries (budget displays in auth,
    counter rebuilds in routers). Guarded by the service token."""

    def __init__(self, service: LedgerService, service_token: str) -> None:
        self.service = service
        self.token = service_token

    def routes(self) -> list[Route]:
        return [
            Route("/internal/spend", self.spend, methods=["POST"]),
            Route("/internal/spend_by_scope", self.spend_by_scope, methods=["POST"]),
        ]

    def _check(self, request: Request) -> None:
        given = bearer_token(request.headers.get("authorization"), None)
        if not token_matches(given, self.token):
            raise Unauthenticated("Missing or wrong service token.")

    async def spend(self, request: Request) -> Response:
        """{"kind", "id", "since"} -> {"spend_usd"}."""
        try:
            self._check(request)
            data = await read_json(request, 4096)
            kind, scope_id, since = data.get("kind"), data.get("id"), data.get("since")
            if not isinstance(scope_id, str) or not isinstance(since, int | float):
                raise BadRequest("'id' must be a string and 'since' a number.", param="id")
            spent = await self.service.spend_since(str(kind), scope_id, float(since))
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"spend_usd": spent})

    async def spend_by_scope(self, request: Request) -> Response:
        """{"since_by_period": {period: since}} -> {"data": [{kind, id, period, spend_usd}]}."""
        try:
            self._check(request)
            data = await read_json(request, 4096)
            raw = data.get("since_by_period")
            if not isinstance(raw, dict) or not all(
                isinstance(v, int | float) for v in raw.values()
            ):
                raise BadRequest(
                    "'since_by_period' must map periods to numbers.", param="since_by_period"
                )
            spent = await self.service.spend_by_scope({str(k): float(v) for k, v in raw.items()})
        except GatewayError as err:
            return error_response(err)
        rows = [
            {"kind": kind, "id": scope_id, "period": period, "spend_usd": usd}
            for (kind, scope_id, period), usd in spent.items()
        ]
        return JSONResponse({"object": "list", "data": rows})
