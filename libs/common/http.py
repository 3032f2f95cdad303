"""Small HTTP helpers shared by the service apps: orjson responses, wire errors,
the admin guard, body parsing with a size limit."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tokgateway.common.contracts import KeyInfo, KeyVerifier
from tokgateway.common.errors import (
    ApiFormat,
    BadRequest,
    ClientClosed,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    Unauthenticated,
    summary,
)
from tokgateway.common.keys import bearer_token, hash_key


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


HEADER_LINES = "tokgateway.header_lines"
"""An ASGI extension of the gateway's own server (``scope["extensions"]``):
a response start may carry ``(lines, count)``, header lines already encoded
(``name: value`` and CRLF each, lower-case names, no framing header: those
stay in ``headers``), written after its ``headers``."""


def header_pairs(lines: bytes, count: int) -> list[tuple[bytes, bytes]]:
    """The first ``count`` header lines (``name: value`` and CRLF each) as pairs."""
    out = []
    for line in lines.split(b"\r\n")[:count]:
        name, _, value = line.partition(b": ")
        out.append((name, value))
    return out


class BytesResponse:
    """A whole body with its headers given as encoded header lines (lower-case
    names, ``count`` of them): the answers of the request path. Under the
    gateway's server the lines go to the wire as they are (the server checks
    their count); under any other ASGI server they are split into pairs."""

    __slots__ = ("body", "count", "lines", "status")

    def __init__(self, body: bytes, status: int, lines: bytes, count: int) -> None:
        self.body = body
        self.status = status
        self.lines = lines
        self.count = count

    def pairs(self) -> list[tuple[bytes, bytes]]:
        return header_pairs(self.lines, self.count)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = (b"content-length", b"%d" % len(self.body))
        extensions = scope.get("extensions")
        if extensions is not None and HEADER_LINES in extensions:
            start: dict[str, Any] = {
                "type": "http.response.start",
                "status": self.status,
                "headers": [length],
                HEADER_LINES: (self.lines, self.count),
            }
        else:
            headers = self.pairs()
            headers.append(length)
            start = {"type": "http.response.start", "status": self.status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": self.body})


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
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"Request body is larger than the limit of {max_bytes} bytes."
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientClosed("The client closed the connection during the upload.") from None
    raw = b"".join(chunks)
    if not raw:
        raise BadRequest("Request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {summary(str(exc))}") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.")
    if raw.count(b"[") + raw.count(b"{") >= MAX_DEPTH:
        _check_depth(data)
    return data


# orjson writes at most 254 levels: a deeper body could be read but never
# forwarded, so it is refused up front, with room for the levels a format
# translation adds. Counting brackets (a C loop over the bytes) keeps the walk
# off every ordinary request.
MAX_DEPTH = 200


def _check_depth(data: Any) -> None:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"Request body is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling an admin endpoint. ``admin``: the admin key or the local
    control token, may read and change everything. ``viewer``: a key whose user
    is a viewer, may read everything and change nothing. ``member``: any other
    valid key (also a key of a user with the admin role that is not the admin
    key), may read only what belongs to its own user."""

    access: str  # admin | viewer | member
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None

    @property
    def can_write(self) -> bool:
        return self.access == "admin"

    @property
    def sees_all(self) -> bool:
        return self.access in ("admin", "viewer")

    @property
    def actor(self) -> str:
        """How lifecycle events name the caller."""
        return self.key_id or "local"

    def owns(self, user_id: str | None) -> bool:
        """May this caller read an object of ``user_id``?"""
        return self.sees_all or (user_id is not None and user_id == self.user_id)


class AdminGuard:
    """Knows who calls the admin API: the admin key, or the local control token
    the all-in-one gateway writes into its data dir for the CLI on the same
    machine, or any other valid key (a viewer or a member, see ``Identity``).
    ``check`` admits only those who may change things; ``identify`` admits
    every valid key and says who it is."""

    def __init__(self, verifier: KeyVerifier, local_token: str | None = None) -> None:
        self._verifier = verifier
        self._local_token = local_token

    async def identify(self, request: Request) -> Identity:
        token = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if token is None:
            raise Unauthenticated("Missing admin key: send 'Authorization: Bearer <admin key>'.")
        if self._local_token and hmac.compare_digest(token, self._local_token):
            return Identity("admin")
        info = await self._verifier.verify(hash_key(token))
        if info is None or info.revoked or info.expired():
            raise Unauthenticated("Invalid admin key.")
        if info.disabled:
            raise Unauthenticated("The user of this API key is disabled.", code="user_disabled")
        return Identity(_access(info), info.id, info.user_id, info.team_id)

    async def check(self, request: Request) -> Identity:
        """The caller, when it may change things (the admin key); 403 otherwise."""
        who = await self.identify(request)
        if not who.can_write:
            raise Forbidden("This key is not an admin key.")
        return who

    async def reader(self, request: Request) -> Identity:
        """The caller, when it may read everything (admin or viewer); 403 otherwise."""
        who = await self.identify(request)
        if not who.sees_all:
            raise Forbidden("This key may read only its own keys and usage.")
        return who


def _access(info: KeyInfo) -> str:
    if info.is_admin:
        return "admin"
    return "viewer" if info.role == "viewer" else "member"


Handler = Callable[[Request], ASGIApp]  # the request's answer, as an ASGI app


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
                await handler(Request(scope, receive))(scope, receive, send)
                return
        await self.app(scope, receive, send)
