"""Small HTTP helpers shared by the service apps: orjson responses, wire errors,
the admin guard, body parsing with a size limit."""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

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
