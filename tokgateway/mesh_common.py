"""What every mesh service app shares: the app factory with /healthz, /readyz
and /metrics, the lifespan that starts and stops a service node in order, the
settings each node requires, and serving with uvicorn.

Shutdown order: uvicorn stops intake (closes the listener) and drains in-flight
requests under ``timeout_graceful_shutdown``; then the lifespan's exit lets the
node flush (buffered events, the batch in hand) and close its pools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import uvicorn
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tokgateway.common.clients import ServiceUnavailable
from tokgateway.common.errors import GatewayError, InternalError, NotFound, UpstreamUnavailable
from tokgateway.common.http import JSONResponse, error_response
from tokgateway.common.logs import configure_logging
from tokgateway.common.metrics import process_metrics, render
from tokgateway.common.nats_bus import NatsBus
from tokgateway.common.postgres import UNAVAILABLE, LazyPool
from tokgateway.common.settings import ConfigError, Settings
from tokgateway.common.tracing import TraceMiddleware, Tracing

log = logging.getLogger("tokgateway.mesh")

READY_CHECK_TIMEOUT = 3.0


class Node(Protocol):
    """One mesh service: the routes it serves and its lifecycle."""

    name: str
    tracing: Tracing
    metrics: CollectorRegistry
    bus: NatsBus

    def routes(self) -> list[BaseRoute]: ...

    async def start(self) -> None:
        """Open clients and pools; must not wait for dependencies (readiness does)."""

    async def checks(self) -> dict[str, bool]:
        """Each dependency: does it answer now?"""

    async def stop(self) -> None:
        """Flush and close, after intake stopped and in-flight requests drained."""


def require(settings: Settings, service: str, *keys: str) -> dict[str, str]:
    """The named gateway.* settings, failing fast with every missing key named."""
    values = {k: str(settings.get(f"gateway.{k}")) for k in keys}
    missing = [k for k, v in values.items() if not v]
    if missing:
        names = ", ".join(f"gateway.{k} (GATEWAY_{k.upper()})" for k in missing)
        raise ConfigError(f"--service {service} needs {names}")
    return values


# What each state gauge counts: the HELP line Prometheus and its users see.
STATE_HELP: Mapping[str, str] = MappingProxyType(
    {
        "bus_connected": "1 while the NATS connection is up, 0 while it is away",
        "store_started": "1 once the PostgreSQL store is migrated and serving, else 0",
        "events_received": "usage events taken from the JetStream stream since start",
        "rows_inserted": "usage rows committed to PostgreSQL since start",
        "duplicates_skipped": "redelivered usage events already in the ledger, not inserted again",
        "malformed_events": "usage events that could not be decoded, acknowledged and dropped",
        "insert_failures": "batch inserts that failed and were retried since start",
        "snapshot_version": "version of the route snapshot built or loaded (grows on each change)",
        "usage_buffered": "usage events held in memory waiting for NATS",
        "usage_published": "usage events published to JetStream since start",
        "usage_dropped": "usage events dropped because the buffer was full while NATS was away",
        "usage_publish_errors": "failed publish attempts of usage events since start",
        "routes_loaded": "1 once a route snapshot from the registry is loaded, else 0",
        "consumer_pending": "usage events in JetStream not yet delivered to this ledger",
        "consumer_ack_pending": "usage events delivered to this ledger and not yet acknowledged",
        "events_relayed": "governance events moved from the auth outbox to JetStream since start",
        "hook_events_received": "governance events taken by the hook deliverer since start",
        "hook_deliveries": "hook deliveries that succeeded since start",
        "hook_failed_attempts": "hook delivery attempts that failed and will be retried",
        "hook_dead_letters": "hook deliveries that ran out of attempts since start",
    }
)


class StateCollector(Collector):
    """Gauges read from a node's state at scrape time."""

    def __init__(self, prefix: str, read: Callable[[], dict[str, float]]) -> None:
        self.prefix = prefix
        self.read = read

    def collect(self) -> Any:
        for name, value in self.read().items():
            service = self.prefix.removeprefix("gateway_")
            what = STATE_HELP.get(name, name.replace("_", " "))
            family = GaugeMetricFamily(f"{self.prefix}_{name}", f"{service}: {what}")
            family.add_metric([], float(value))
            yield family


class ConnectionCollector(Collector):
    """The node's links to NATS and PostgreSQL, one family each for every
    service (the ``service`` label), so one panel shows the whole mesh."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Any:
        service = [self.node.name]
        bus = self.node.bus
        up = GaugeMetricFamily(
            "gateway_nats_connected", "1 while connected to NATS", labels=["service"]
        )
        up.add_metric(service, float(bus.connected))
        yield up
        again = CounterMetricFamily(
            "gateway_nats_reconnects", "NATS connections re-established", labels=["service"]
        )
        again.add_metric(service, bus.reconnects)
        yield again
        pool = getattr(self.node, "pool", None)
        if isinstance(pool, LazyPool):
            opened = CounterMetricFamily(
                "gateway_db_connections_opened",
                "PostgreSQL server connections opened: the first and every reconnect",
                labels=["service"],
            )
            opened.add_metric(service, pool.connections_opened)
            yield opened
            failed = CounterMetricFamily(
                "gateway_db_connect_failures",
                "Failed attempts to open the PostgreSQL pool",
                labels=["service"],
            )
            failed.add_metric(service, pool.connect_failures)
            yield failed


def build_app(node: Node) -> Starlette:
    node.metrics.register(ConnectionCollector(node))
    process_metrics(node.metrics)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": node.name})

    async def readyz(request: Request) -> Response:
        try:
            async with asyncio.timeout(READY_CHECK_TIMEOUT):
                checks = await node.checks()
        except TimeoutError:
            checks = {"checks": False}
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not ready", "service": node.name, **checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        data, content_type = render(node.metrics)
        return Response(data, headers={"content-type": content_type})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        log.info("service started", extra={"service": node.name})
        try:
            yield
        finally:
            await node.stop()
            node.tracing.shutdown()
            log.info("service stopped", extra={"service": node.name})

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *node.routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(TraceMiddleware, tracing=node.tracing)],
        exception_handlers={
            HTTPException: _http_error,  # type: ignore[dict-item]
            Exception: _server_error,
        },
    )


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(NotFound(f"Unknown path {request.url.path}.", code="unknown_path"))
    return error_response(_Status(str(exc.detail or "error"), exc.status_code))


async def _server_error(request: Request, exc: Exception) -> Response:
    """A dependency outage is a 503 the caller may retry; anything else a 500."""
    if isinstance(exc, (*UNAVAILABLE, ServiceUnavailable)):
        log.warning("dependency unavailable", extra={"path": request.url.path, "err": repr(exc)})
        return error_response(UpstreamUnavailable("A service this one needs is unavailable."))
    log.error("internal error", exc_info=exc, extra={"path": request.url.path})
    return error_response(InternalError(f"Internal error ({type(exc).__name__})."))


class _Status(GatewayError):
    error_class = "client"
    error_type = "invalid_request_error"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status


def build_node(service: str, settings: Settings) -> Node:
    if service == "router":
        from tokgateway.mesh_router import RouterNode

        return RouterNode(settings)
    if service == "auth":
        from tokgateway.mesh_auth import AuthNode

        return AuthNode(settings)
    if service == "ledger":
        from tokgateway.mesh_ledger import LedgerNode

        return LedgerNode(settings)
    if service == "registry":
        from tokgateway.mesh_registry import RegistryNode

        return RegistryNode(settings)
    raise ConfigError(f"unknown service {service!r}")


def serve_node(service: str, settings: Settings, host: str | None, port: int | None) -> None:
    configure_logging(str(settings.get("gateway.log_level")))
    node = build_node(service, settings)
    app = build_app(node)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=str(settings.get("gateway.log_level")),
        timeout_graceful_shutdown=20,
        timeout_keep_alive=75,
        backlog=4096,
    )
    import uvloop

    uvloop.run(uvicorn.Server(config).serve())
