"""The router service: lifecycle (upstream connection pool, providers, route
snapshot), the /v1 routes, models and operations endpoints. The request path
itself lives in pipeline.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tokgateway.common.contracts import AUTH_SUBJECT_PREFIX, Bus, KeyVerifier
from tokgateway.common.errors import ApiFormat, GatewayError
from tokgateway.common.http import JSONResponse, error_response
from tokgateway.common.logs import AccessLog
from tokgateway.common.metrics import RouterMetrics, render
from tokgateway.common.routing import RouteTable
from tokgateway.common.tracing import Tracing
from tokgateway.router.catalogue import ModelCatalogue
from tokgateway.router.catalogue import anthropic_model as _anthropic_model
from tokgateway.router.catalogue import openai_model as _openai_model
from tokgateway.router.governor import Governor, LocalGovernor
from tokgateway.router.keycache import KeyCache
from tokgateway.router.pipeline import Pipeline, PipelineDeps
from tokgateway.router.prober import Prober
from tokgateway.router.providers import Provider, build_provider
from tokgateway.router.providers.client import HTTPClient
from tokgateway.router.providers.options import ClientOptions, HeaderHook
from tokgateway.router.responses_store import ResponseStore
from tokgateway.router.settle import Settler, UsageSink
from tokgateway.router.snapshot import RoutingSnapshot, Snapshots
from tokgateway.router.spans import GenAISpans

log = logging.getLogger("tokgateway.router")


@dataclass(frozen=True)
class RouterOptions:
    max_body_bytes: int = 32 << 20
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 256
    key_cache_ttl: float = 300.0
    access_log: bool = True
    work_mode: str = "auto"
    default_max_tokens: int = 4096  # output cap assumed by limits when a request sets none
    health_check_s: float = 0.0  # seconds between provider health checks; 0: none
    client: ClientOptions = field(default_factory=ClientOptions)


class RouterService:
    def __init__(
        self,
        *,
        table: RouteTable,
        verifier: KeyVerifier,
        bus: Bus,
        options: RouterOptions,
        governor: Callable[[RouterMetrics], Governor] | None = None,
        metrics: RouterMetrics | None = None,
        header_hooks: list[HeaderHook] | None = None,
        usage_sink: UsageSink | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.snapshots = Snapshots.of(table)
        self._header_hooks = list(header_hooks or ())
        self.bus = bus
        self.options = options
        self.keys = KeyCache(verifier, options.key_cache_ttl)
        self.metrics = metrics or RouterMetrics()
        self.governor: Governor = (
            governor(self.metrics) if governor is not None else LocalGovernor(None, self.metrics)
        )
        self.settler = Settler(bus, self.metrics, AccessLog(options.access_log), usage_sink)
        self.settler.governor = self.governor
        tracer = tracing.tracer if tracing is not None else None
        self.settler.spans = GenAISpans(tracer) if tracer is not None else None
        self.pipeline = Pipeline(
            PipelineDeps(
                keys=self.keys,
                governor=self.governor,
                settler=self.settler,
                responses=ResponseStore(),
                max_body_bytes=options.max_body_bytes,
                work_mode=options.work_mode,
                default_max_tokens=options.default_max_tokens,
                spans=self.settler.spans,
            ),
            snapshots=self.snapshots,
        )
        self.prober = Prober(
            lambda: self.providers,
            self.pipeline.chooser.breaker,
            self.metrics,
            interval_s=options.health_check_s,
        )
        self._client: HTTPClient | None = None
        self.catalogue = ModelCatalogue()
        self.ready = False

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._client = self.options.client.build(
            self.options.connect_timeout, self.options.max_connections, self._header_hooks
        )
        self.metrics.watch_pool(self._client.pool_stats)
        table = self.table
        self.snapshots.current = RoutingSnapshot(table, MappingProxyType(self._providers_of(table)))
        self.bus.subscribe(AUTH_SUBJECT_PREFIX, self.keys.on_auth_event)
        self.prober.start()
        self.ready = True

    @property
    def table(self) -> RouteTable:
        return self.snapshots.current.table

    @table.setter
    def table(self, table: RouteTable) -> None:
        if self._client is None:  # not started: providers are built at start
            self.snapshots.current = RoutingSnapshot(table, MappingProxyType({}))
        else:
            self.replace_table(table)

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self.snapshots.current.providers

    def _providers_of(self, table: RouteTable) -> dict[str, Provider]:
        assert self._client is not None
        return {
            name: build_provider(
                self.options.client.with_network(cfg), self._client, self.options.read_timeout
            )
            for name, cfg in table.providers.items()
        }

    def replace_table(self, table: RouteTable) -> None:
        """A new registry snapshot: swap it in whole; requests in flight keep the
        old one, whose providers close when the last of them ends."""
        self.snapshots.swap(table, self._providers_of(table))

    async def close(self) -> None:
        self.ready = False
        await self.prober.close()
        await self.catalogue.close()
        await self.snapshots.close()
        if self._client is not None:
            self.metrics.unwatch_pool(self._client.pool_stats)
            await self._client.close()
            self._client = None
        await self.governor.close()
        self.settler.access.flush()

    # -- routes ---------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/responses", self.responses_api, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]

    def hot_routes(self) -> dict[tuple[str, str], Callable[[Request], ASGIApp]]:
        """The /v1 calls that carry traffic, for exact-path dispatch: each
        makes the request's ``Exchange`` without a coroutine of its own."""
        exchange = self.pipeline.exchange
        return {
            ("POST", "/v1/chat/completions"): partial(exchange, "chat"),
            ("POST", "/v1/completions"): partial(exchange, "completions"),
            ("POST", "/v1/embeddings"): partial(exchange, "embeddings"),
            ("POST", "/v1/messages"): partial(exchange, "messages"),
            ("POST", "/v1/responses"): partial(exchange, "responses"),
        }

    async def chat_completions(self, request: Request) -> ASGIApp:
        return self.pipeline.exchange("chat", request)

    async def completions(self, request: Request) -> ASGIApp:
        return self.pipeline.exchange("completions", request)

    async def embeddings(self, request: Request) -> ASGIApp:
        return self.pipeline.exchange("embeddings", request)

    async def messages(self, request: Request) -> ASGIApp:
        return self.pipeline.exchange("messages", request)

    async def count_tokens(self, request: Request) -> ASGIApp:
        return self.pipeline.exchange("count_tokens", request)

    async def responses_api(self, request: Request) -> ASGIApp:
        return self.pipeline.exchange("responses", request)

    # -- models -----------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        anthropic = "anthropic-version" in request.headers
        try:
            await self.pipeline.authenticate(request)
        except GatewayError as err:
            return error_response(err, "anthropic" if anthropic else "openai")
        models = await self.catalogue.listed(self.table, self.providers)
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
            await self.pipeline.authenticate(request)
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
