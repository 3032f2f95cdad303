"""Small HTTP helpers shared by the service apps: orjson responses, wire errors,
the admin guard, body parsing with a size limit."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tokgateway.common.contracts import KeyInfo, KeyVerifier
from tokgateway.common.errors import (
    ApiFormat,
    BadRequest,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    Unauthenticated,
)
from tokgateway.common.keys import bearer_token, hash_key


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(err: GatewayError, fmt: ApiFormat = "openai", **headers: str) -> Response:
    hdrs = {**err.response_headers(), **headers}
    return Response(
        err.body(fmt), status_code=err.http_status, headers=hdrs, media_type="application/json"
    )


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 the client can read."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"Request body is larger than the limit of {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"Request body is larger than the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise BadRequest("Request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.")
    return data


class AdminGuard:
    """Admits the admin key, or the local control token the all-in-one gateway
    writes into its data dir for the CLI on the same machine."""

    def __init__(self, verifier: KeyVerifier, local_token: str | None = None) -> None:
        self._verifier = verifier
        self._local_token = local_token

    async def check(self, request: Request) -> KeyInfo:
        token = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if token is None:
            raise Unauthenticated("Missing admin key: send 'Authorization: Bearer <admin key>'.")
        if self._local_token and hmac.compare_digest(token, self._local_token):
            return KeyInfo(id="local", name="local control token", is_admin=True)
        info = await self._verifier.verify(hash_key(token))
        if info is None or info.revoked or info.expired():
            raise Unauthenticated("Invalid admin key.")
        if not info.is_admin:
            raise Forbidden("This key is not an admin key.")
        return info


Handler = Callable[[Request], Awaitable[ASGIApp]]


class FastRoutes:
    """Pure ASGI dispatch of the hot /v1 routes by exact (method, path), in
    front of the Starlette app that serves everything else (and the lifespan).
    The handlers settle and answer every error themselves, so the middleware
    stack and the route scan are not needed on the request path."""

    def __init__(self, app: ASGIApp, routes: Mapping[tuple[str, str], Handler]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.routes.get((scope["method"], scope["path"]))
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
