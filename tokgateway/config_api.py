"""GET /admin/config: the effective configuration as `gateway config show`
prints it (secrets masked, the layer that set each key), for the console's
Settings page. Admin and viewer keys only."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.errors import GatewayError
from tokgateway.common.http import AdminGuard, JSONResponse, error_response
from tokgateway.common.settings import Settings


def config_routes(current: Callable[[], Settings], guard: AdminGuard) -> list[Route]:
    """``current`` returns the settings in force (they change on reload)."""

    async def show(request: Request) -> Response:
        try:
            await guard.reader(request)
        except GatewayError as err:
            return error_response(err)
        settings = current()
        rows = [{"key": k, "value": v, "layer": layer} for k, v, layer in settings.rows()]
        return JSONResponse(
            {
                "object": "list",
                "data": rows,
                "files": [str(f) for f in settings.files],
                "env": settings.env,
            }
        )

    return [Route("/admin/config", show, methods=["GET"])]
