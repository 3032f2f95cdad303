"""The router service: the public /v1 API and its request path

    authenticate -> authorize -> resolve -> forward -> settle

Each step is a small function; the handlers only chain them."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp
from tokgateway.common.contracts import AUTH_SUBJECT_PREFIX, Bus, KeyInfo, KeyVerifier
from tokgateway.common.errors import ApiFormat, Forbidden, GatewayError, InternalError, RateLimited
from tokgateway.common.http import JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token
from tokgateway.common.logs import AccessLog
from tokgateway.common.metrics import RouterMetrics, render
from tokgateway.common.routing import RouteTable
from tokgateway.router import validate
from tokgateway.router.forward import forward
from tokgateway.router.keycache import KeyCache
from tokgateway.router.limits import Limiter, LocalLimiter
from tokgateway.router.providers import Provider, build_provider
from tokgateway.router.providers.base import Endpoint
from tokgateway.router.relay import Meter, relay_anthropic, relay_openai
from tokgateway.router.settle import RequestInfo, Settler
from tokgateway.router.streaming import StreamResponse
from tokgateway.router.usage import estimate_tokens, from_anthropic, from_openai

log = logging.getLogger("tokgateway.router")

Checker = Callable[[dict[str, Any]], tuple[str, bool]]


@dataclass(frozen=True)
class RouterOptions:
    max_body_bytes: int = 32 << 20
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 1000
    key_cache_ttl: float = 300.0
    access_log: bool = True


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


class RouterService:
    def __init__(
        self,
        *,
        table: RouteTable,
        verifier: KeyVerifier,
        bus: Bus,
        options: RouterOptions,
        limiter: Limiter | None = None,
        metrics: RouterMetrics | None = None,
    ) -> None:
        self.table = table
        self.bus = bus
        self.options = options
        self.keys = KeyCache(verifier, options.key_cache_ttl)
        self.limiter: Limiter = limiter or LocalLimiter()
        self.metrics = metrics or RouterMetrics()
        self.settler = Settler(bus, self.metrics, AccessLog(options.access_log))
        self.providers: dict[str, Provider] = {}
        self._session: aiohttp.ClientSession | None = None
        self.ready = False

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.options.max_connections,
            limit_per_host=0,
            ttl_dns_cache=300,
            keepalive_timeout=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.options.connect_timeout),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )
        self._build_providers(self.table)
        self.bus.subscribe(AUTH_SUBJECT_PREFIX, self.keys.on_auth_event)
        self.ready = True

    def _build_providers(self, table: RouteTable) -> None:
        assert self._session is not None
        self.providers = {
            name: build_provider(cfg, self._session, self.options.read_timeout)
            for name, cfg in table.providers.items()
        }

    def replace_table(self, table: RouteTable) -> None:
        """A new registry snapshot: swap it in whole; requests in flight keep the old."""
        self.table = table
        self._build_providers(table)

    async def close(self) -> None:
        self.ready = False
        for provider in self.providers.values():
            await provider.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.limiter.close()

    # -- routes ---------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]

    async def chat_completions(self, request: Request) -> ASGIApp:
        return await self._proxy(request, "chat", "openai", validate.check_chat)

    async def completions(self, request: Request) -> ASGIApp:
        return await self._proxy(request, "completions", "openai", validate.check_completions)

    async def embeddings(self, request: Request) -> ASGIApp:
        return await self._proxy(request, "embeddings", "openai", validate.check_embeddings)

    async def messages(self, request: Request) -> ASGIApp:
        return await self._proxy(request, "messages", "anthropic", validate.check_messages)

    async def count_tokens(self, request: Request) -> ASGIApp:
        return await self._proxy(
            request,
            "count_tokens",
            "anthropic",
            lambda b: validate.check_messages(b, count_only=True),
        )

    # -- the request path -------------------------------------------------------------
    async def _authenticate(self, request: Request) -> KeyInfo:
        headers = request.headers
        token = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
        return await self.keys.authenticate(token)

    async def _authorize(self, key: KeyInfo, model: str, target: str) -> None:
        if key.models and not any(
            fnmatchcase(model, p) or fnmatchcase(target, p) for p in key.models
        ):
            raise Forbidden(
                f"This API key may not use model `{model}`.",
                code="model_not_allowed",
                param="model",
            )
        if key.rpm:
            wait = await self.limiter.hit(key.id, key.rpm)
            if wait is not None:
                raise RateLimited(
                    f"Rate limit of {key.rpm} requests per minute reached for this key "
                    f"(gateway limit). Retry in {wait:.0f} s.",
                    code="gateway_rate_limit",
                    headers={"retry-after": str(max(1, round(wait)))},
                )

    async def _proxy(
        self, request: Request, endpoint: Endpoint, fmt: ApiFormat, check: Checker
    ) -> ASGIApp:
        meter = Meter()
        table = self.table
        info = RequestInfo(request_id=_request_id(), route=request.url.path)
        try:
            info.key = await self._authenticate(request)
            body = await read_json(request, self.options.max_body_bytes)
            info.model, info.stream = check(body)
            resolution = table.resolve(info.model)
            await self._authorize(info.key, info.model, resolution.target)
            info.prompt_estimate = estimate_tokens(validate.prompt_chars(body))
            resp, strip = await forward(
                resolution, self.providers, endpoint, fmt, body, request.headers, info, meter
            )
        except GatewayError as err:
            info.status = err.http_status
            self.settler.settle(info, meter, table.prices, err)
            return error_response(err, fmt, **self._ids(info))
        except Exception as exc:  # a bug: never leave a request unsettled
            log.exception("internal error", extra={"request_id": info.request_id})
            internal = InternalError(f"Internal gateway error ({type(exc).__name__}).")
            info.status = 500
            self.settler.settle(info, meter, table.prices, internal)
            return error_response(internal, fmt, **self._ids(info))

        info.status = resp.status
        if resp.chunks is None:
            return self._complete(resp.body or b"", resp.status, fmt, info, meter, table)
        return self._stream(resp.chunks, resp.close, fmt, strip, info, meter, table)

    def _complete(
        self,
        raw: bytes,
        status: int,
        fmt: ApiFormat,
        info: RequestInfo,
        meter: Meter,
        table: RouteTable,
    ) -> Response:
        meter.upstream_done = time.perf_counter()
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            usage = obj.get("usage")
            if fmt == "anthropic":
                meter.usage = from_anthropic(usage) if usage is not None else None
                if "input_tokens" in obj and usage is None:  # count_tokens
                    meter.usage = None
            else:
                meter.usage = from_openai(usage)
        event = self.settler.settle(info, meter, table.prices)
        headers = self._ids(info)
        headers["x-gateway-overhead-ms"] = f"{event.overhead_ms or 0:.3f}"
        return Response(raw, status_code=status, headers=headers, media_type="application/json")

    def _stream(
        self,
        chunks: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
        fmt: ApiFormat,
        strip: bool,
        info: RequestInfo,
        meter: Meter,
        table: RouteTable,
    ) -> StreamResponse:
        relay = (
            relay_anthropic(chunks, meter)
            if fmt == "anthropic"
            else relay_openai(chunks, meter, strip_usage=strip)
        )

        async def body() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for piece in relay:
                    yield piece
                finished = True
            finally:
                if not finished:
                    meter.client_gone = meter.error is None
                await relay.aclose()
                await close()
                self.settler.settle(info, meter, table.prices)

        headers = self._ids(info)
        now = time.perf_counter()
        up = (meter.upstream_headers or now) - (meter.upstream_started or now)
        headers["x-gateway-overhead-ms"] = f"{(now - meter.started - up) * 1000:.3f}"
        headers["x-accel-buffering"] = "no"
        return StreamResponse(body(), status=200, headers=headers)

    @staticmethod
    def _ids(info: RequestInfo) -> dict[str, str]:
        return {"x-request-id": info.request_id, "request-id": info.request_id}

    # -- models -----------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        anthropic = "anthropic-version" in request.headers
        try:
            await self._authenticate(request)
        except GatewayError as err:
            return error_response(err, "anthropic" if anthropic else "openai")
        models = self.table.listed_models()
        if anthropic:
            data = [_anthropic_model(m) for m, _ in models]
            return JSONResponse(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )
        return JSONResponse({"object": "list", "data": [_openai_model(m, o) for m, o in models]})

    async def get_model(self, request: Request) -> Response:
        anthropic = "anthropic-version" in request.headers
        fmt: ApiFormat = "anthropic" if anthropic else "openai"
        model_id = request.path_params["model_id"]
        try:
            await self._authenticate(request)
            res = self.table.resolve(model_id)
        except GatewayError as err:
            return error_response(err, fmt)
        if anthropic:
            return JSONResponse(_anthropic_model(model_id))
        return JSONResponse(_openai_model(model_id, res.deployments[0].provider.name))

    # -- operations -------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if not self.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(self, request: Request) -> Response:
        data, content_type = render(self.metrics.registry)
        return Response(data, headers={"content-type": content_type})


_EPOCH = 1_700_000_000


def _openai_model(model_id: str, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _EPOCH, "owned_by": owner}


def _anthropic_model(model_id: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "type": "model",
        "display_name": model_id,
        "created_at": "2023-11-14T22:13:20Z",
    }
