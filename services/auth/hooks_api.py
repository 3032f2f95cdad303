"""Admin API of provisioning hooks, behind the same AdminGuard as keys:
list, add, remove and test hooks; the delivery log; replay of one event."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.auth.hooks import Hooks, public
from tokgateway.common.errors import BadRequest, GatewayError
from tokgateway.common.http import AdminGuard, JSONResponse, error_response, read_json

LOG_LIMIT_MAX = 1000


class HooksAdminAPI:
    def __init__(self, hooks: Hooks, guard: AdminGuard) -> None:
        self.hooks = hooks
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/admin/hooks", self.list_hooks, methods=["GET"]),
            Route("/admin/hooks", self.add_hook, methods=["POST"]),
            Route("/admin/hooks/log", self.log, methods=["GET"]),
            Route("/admin/hooks/replay/{event_id}", self.replay, methods=["POST"]),
            Route("/admin/hooks/{name}", self.remove_hook, methods=["DELETE"]),
            Route("/admin/hooks/{name}/test", self.test_hook, methods=["POST"]),
        ]

    async def list_hooks(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            data = await self.hooks.listing()
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "data": data})

    async def add_hook(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            hook, generated = await self.hooks.add(await read_json(request, 1 << 16))
        except GatewayError as err:
            return error_response(err)
        body = {**public(hook), "source": "api"}
        if generated:
            body["secret"] = generated  # shown once
        return JSONResponse(body, status_code=201)

    async def remove_hook(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            name = request.path_params["name"]
            await self.hooks.remove(name)
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"name": name, "deleted": True})

    async def test_hook(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            result = await self.hooks.test(request.path_params["name"])
        except GatewayError as err:
            return error_response(err)
        return JSONResponse(result.to_dict())

    async def log(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            q = request.query_params
            try:
                limit = int(q.get("limit") or 100)
            except ValueError:
                raise BadRequest("'limit' must be an integer.", param="limit") from None
            rows = await self.hooks.log(
                failed=q.get("failed", "").lower() in ("1", "true", "yes"),
                limit=max(1, min(limit, LOG_LIMIT_MAX)),
                event_id=q.get("event_id") or None,
            )
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "data": rows})

    async def replay(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            event_id = request.path_params["event_id"]
            queued = await self.hooks.replay(event_id)
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"event_id": event_id, "queued": queued})
