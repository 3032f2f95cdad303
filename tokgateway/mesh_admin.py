"""The admin API at a mesh router, so the console it serves at /ui works from
the one address the mesh publishes: every admin route is passed to the service
that owns it (the caller's identity, keys, users, teams and hooks to auth; usage to the ledger;
providers, routes, models, prices and the marketplace to the registry). The router
decides nothing here: the caller's key goes along unchanged and the owning
service checks it, exactly as when it is called directly. The router's own
/admin/config (tokgateway/config_api.py) is answered by the router itself."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.errors import (
    ClientClosed,
    GatewayError,
    PayloadTooLarge,
    UpstreamUnavailable,
)
from tokgateway.common.http import error_response
from tokgateway.common.tracing import inject

# The first path segments after /admin and the service that owns each.
OWNERS: Mapping[str, str] = {
    "whoami": "auth",
    "users": "auth",
    "teams": "auth",
    "keys": "auth",
    "hooks": "auth",
    "usage": "ledger",
    "providers": "registry",
    "routes": "registry",
    "models": "registry",
    "market": "registry",
    "prices": "registry",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# What travels with the call each way; nothing else (no cookies, no hop-by-hop headers).
REQUEST_HEADERS = ("authorization", "x-api-key", "content-type", "accept")
RESPONSE_HEADERS = ("content-type", "retry-after", "location")
MAX_BODY = 4 << 20
TIMEOUT = 30.0
SETTING = {
    "auth": "gateway.auth_url",
    "ledger": "gateway.ledger_url",
    "registry": "gateway.registry_url",
}


class AdminForward:
    """``bases`` maps a service (auth, ledger, registry) to its URL; a service
    without one answers a clear error naming the setting to give it."""

    def __init__(self, bases: Mapping[str, str], *, timeout: float = TIMEOUT) -> None:
        self.bases = {name: url.rstrip("/") for name, url in bases.items() if url}
        # no default headers: a call without a key goes on without one
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    def routes(self) -> list[Route]:
        out: list[Route] = []
        for segment in OWNERS:
            out.append(Route(f"/admin/{segment}", self.forward, methods=METHODS))
            out.append(Route(f"/admin/{segment}/{{rest:path}}", self.forward, methods=METHODS))
        return out

    async def forward(self, request: Request) -> Response:
        owner = OWNERS[request.url.path.split("/")[2]]
        base = self.bases.get(owner)
        if base is None:
            return error_response(
                UpstreamUnavailable(
                    f"This router does not know the {owner} service: set {SETTING[owner]} "
                    f"(GATEWAY_{owner.upper()}_URL) to reach its admin API from here.",
                    code="service_not_configured",
                )
            )
        try:
            body = await _body(request)
        except GatewayError as err:
            return error_response(err)
        headers = inject({k: v for k in REQUEST_HEADERS if (v := request.headers.get(k))})
        # the path as the client sent it, still percent-encoded (a model name may hold "/" or "?")
        raw = request.scope.get("raw_path")
        target = base + (raw.decode("latin-1") if raw else quote(request.url.path))
        try:
            resp = await self._client.request(
                request.method,
                target,
                params=request.url.query or None,
                content=body or None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return error_response(
                UpstreamUnavailable(
                    f"The {owner} service is unavailable ({type(exc).__name__}).",
                    code="service_unavailable",
                )
            )
        kept = {k: v for k in RESPONSE_HEADERS if (v := resp.headers.get(k))}
        return Response(resp.content, status_code=resp.status_code, headers=kept)

    async def close(self) -> None:
        await self._client.aclose()


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise PayloadTooLarge(f"Request body is larger than the limit of {MAX_BODY} bytes.")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise PayloadTooLarge(f"Request body is larger than the limit of {MAX_BODY} bytes.")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientClosed("The client closed the connection during the upload.") from None
    return b"".join(chunks)
