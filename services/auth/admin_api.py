"""The admin HTTP API of users, teams and keys (all-in-one and the mesh's auth
service). Who may do what is decided per route from the caller's ``Identity``:
the admin key and the local control token change everything; a viewer reads
everything; a member reads its own keys (and, in the ledger, its own usage)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.auth import validate
from tokgateway.auth.service import AuthService
from tokgateway.auth.store import KeyRecord
from tokgateway.common.contracts import Limits, SpendSource
from tokgateway.common.errors import GatewayError, NotFound
from tokgateway.common.http import AdminGuard, Identity, JSONResponse, error_response, read_json
from tokgateway.common.periods import period_end, period_id, period_start

BODY_LIMIT = 1 << 16

Op = Callable[[Request, Identity], Awaitable[Any]]


def listing(items: list[Any]) -> dict[str, Any]:
    return {"object": "list", "data": items}


class AuthAdminAPI:
    def __init__(
        self, service: AuthService, guard: AdminGuard, spend: SpendSource | None = None
    ) -> None:
        self.service = service
        self.guard = guard
        self.spend = spend

    def routes(self) -> list[Route]:
        r = self._route
        return [
            r("/admin/whoami", "GET", self.guard.identify, self.whoami),
            r("/admin/users", "GET", self.guard.reader, self.list_users),
            r("/admin/users", "POST", self.guard.check, self.create_user, 201),
            r("/admin/users/{user_id}", "GET", self.guard.identify, self.get_user),
            r("/admin/users/{user_id}", "PATCH", self.guard.check, self.update_user),
            r("/admin/users/{user_id}", "DELETE", self.guard.check, self.delete_user),
            r("/admin/users/{user_id}/disable", "POST", self.guard.check, self.disable_user),
            r("/admin/teams", "GET", self.guard.reader, self.list_teams),
            r("/admin/teams", "POST", self.guard.check, self.create_team, 201),
            r("/admin/teams/{team_id}", "GET", self.guard.reader, self.get_team),
            r("/admin/teams/{team_id}", "PATCH", self.guard.check, self.update_team),
            r("/admin/teams/{team_id}", "DELETE", self.guard.check, self.delete_team),
            r(
                "/admin/teams/{team_id}/members/{user_id}",
                "POST",
                self.guard.check,
                self.add_member,
            ),
            r(
                "/admin/teams/{team_id}/members/{user_id}",
                "DELETE",
                self.guard.check,
                self.remove_member,
            ),
            r("/admin/keys", "GET", self.guard.identify, self.list_keys),
            r("/admin/keys", "POST", self.guard.check, self.create_key, 201),
            r("/admin/keys/{key_id}", "GET", self.guard.identify, self.get_key),
            r("/admin/keys/{key_id}", "PATCH", self.guard.check, self.update_key),
            r("/admin/keys/{key_id}", "DELETE", self.guard.check, self.revoke_key),
            r("/admin/keys/{key_id}/revoke", "POST", self.guard.check, self.revoke_key),
            r("/admin/keys/{key_id}/rotate", "POST", self.guard.check, self.rotate_key),
        ]

    def _route(
        self,
        path: str,
        method: str,
        admit: Callable[[Request], Awaitable[Identity]],
        op: Op,
        status: int = 200,
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                who = await admit(request)
                result = await op(request, who)
            except GatewayError as err:
                return error_response(err)
            return JSONResponse(result, status_code=status)

        return Route(path, endpoint, methods=[method])

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        return await read_json(request, BODY_LIMIT)

    # -- the caller -------------------------------------------------------------------
    async def whoami(self, request: Request, who: Identity) -> Any:
        """Who the calling key is and what it may do, so a client (the console)
        offers only the changes the API would accept."""
        return {
            "object": "identity",
            "access": who.access,
            "can_write": who.can_write,
            "sees_all": who.sees_all,
            "key_id": who.key_id,
            "user_id": who.user_id,
            "team_id": who.team_id,
        }

    # -- users --------------------------------------------------------------------
    async def list_users(self, request: Request, who: Identity) -> Any:
        return listing([u.public() for u in await self.service.list_users()])

    async def create_user(self, request: Request, who: Identity) -> Any:
        params = validate.parse_user_create(await self._body(request))
        return (await self.service.create_user(**params, actor=who.actor)).public()

    async def get_user(self, request: Request, who: Identity) -> Any:
        user_id = request.path_params["user_id"]
        if not who.owns(user_id):
            raise NotFound(f"No user with id {user_id!r}.", code="user_not_found")
        return (await self.service.get_user(user_id)).public()

    async def update_user(self, request: Request, who: Identity) -> Any:
        changes = validate.parse_user_patch(await self._body(request))
        user_id = request.path_params["user_id"]
        return (await self.service.update_user(user_id, changes, who.actor)).public()

    async def disable_user(self, request: Request, who: Identity) -> Any:
        user_id = request.path_params["user_id"]
        return (await self.service.disable_user(user_id, who.actor)).public()

    async def delete_user(self, request: Request, who: Identity) -> Any:
        user = await self.service.delete_user(request.path_params["user_id"], who.actor)
        return {"id": user.id, "object": "user", "deleted": True}

    # -- teams --------------------------------------------------------------------
    async def list_teams(self, request: Request, who: Identity) -> Any:
        return listing([t.public() for t in await self.service.list_teams()])

    async def create_team(self, request: Request, who: Identity) -> Any:
        params = validate.parse_team_create(await self._body(request))
        return (await self.service.create_team(**params, actor=who.actor)).public()

    async def get_team(self, request: Request, who: Identity) -> Any:
        return (await self.service.get_team(request.path_params["team_id"])).public()

    async def update_team(self, request: Request, who: Identity) -> Any:
        changes = validate.parse_team_patch(await self._body(request))
        team_id = request.path_params["team_id"]
        return (await self.service.update_team(team_id, changes, who.actor)).public()

    async def delete_team(self, request: Request, who: Identity) -> Any:
        team = await self.service.delete_team(request.path_params["team_id"], who.actor)
        return {"id": team.id, "object": "team", "deleted": True}

    async def add_member(self, request: Request, who: Identity) -> Any:
        p = request.path_params
        return (await self.service.add_member(p["team_id"], p["user_id"], who.actor)).public()

    async def remove_member(self, request: Request, who: Identity) -> Any:
        p = request.path_params
        return (await self.service.remove_member(p["team_id"], p["user_id"], who.actor)).public()

    # -- keys ---------------------------------------------------------------------
    async def list_keys(self, request: Request, who: Identity) -> Any:
        if who.sees_all:
            keys = await self.service.list_keys()
        elif who.user_id is not None:
            keys = [k for k in await self.service.list_keys(who.user_id) if not k.is_admin]
        else:
            keys = []
        return listing([k.public() for k in keys])

    async def create_key(self, request: Request, who: Identity) -> Any:
        params = validate.parse_key_request(await self._body(request))
        rec, secret = await self.service.create_key(**params, actor=who.actor)
        return {**rec.public(), "key": secret}

    async def get_key(self, request: Request, who: Identity) -> Any:
        key_id = request.path_params["key_id"]
        rec = await self.service.store.by_id(key_id)
        if rec is None or not who.owns(rec.user_id) or (rec.is_admin and not who.sees_all):
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        return {**rec.public(), **await self.budgets(rec)}

    async def update_key(self, request: Request, who: Identity) -> Any:
        changes = validate.parse_key_patch(await self._body(request))
        key_id = request.path_params["key_id"]
        return (await self.service.update_key(key_id, changes, who.actor)).public()

    async def revoke_key(self, request: Request, who: Identity) -> Any:
        return (await self.service.revoke(request.path_params["key_id"], who.actor)).public()

    async def rotate_key(self, request: Request, who: Identity) -> Any:
        rec, secret = await self.service.rotate_key(request.path_params["key_id"], who.actor)
        return {**rec.public(), "key": secret}

    # -- spend --------------------------------------------------------------------
    async def budgets(self, rec: KeyRecord, now: float | None = None) -> dict[str, Any]:
        """The key's spend in its current budget period and what is left, and
        the same for each budget its user and team hold over it."""
        now = time.time() if now is None else now
        holders: list[tuple[str, str, Limits]] = [("key", rec.id, rec.limits)]
        store = self.service.store
        if rec.user_id is not None and (user := await store.get_user(rec.user_id)) is not None:
            holders.append(("user", user.id, user.limits))
        if rec.team_id is not None and (team := await store.get_team(rec.team_id)) is not None:
            holders.append(("team", team.id, team.limits))
        rows = []
        for kind, scope_id, limits in holders:
            if kind != "key" and limits.budget_usd is None:
                continue
            rows.append(await self._spend_row(kind, scope_id, limits, now))
        key_row = rows[0]
        return {
            "spend_usd": key_row["spend_usd"],
            "remaining_usd": key_row["remaining_usd"],
            "period_id": key_row["period_id"],
            "budgets": rows,
        }

    async def _spend_row(
        self, kind: str, scope_id: str, limits: Limits, now: float
    ) -> dict[str, Any]:
        period = limits.budget_period
        since = period_start(period, now)
        spent = None if self.spend is None else await self.spend.spend_since(kind, scope_id, since)
        remaining = None
        if limits.budget_usd is not None and spent is not None:
            remaining = max(limits.budget_usd - spent, 0.0)
        return {
            "kind": kind,
            "id": scope_id,
            "budget_usd": limits.budget_usd,
            "budget_period": period,
            "period_id": period_id(period, now),
            "since": since,
            "until": period_end(period, now),
            "spend_usd": None if spent is None else round(spent, 10),
            "remaining_usd": None if remaining is None else round(remaining, 10),
        }
