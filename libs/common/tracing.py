"""Trace context across the mesh (W3C traceparent via OpenTelemetry).

Each service app owns a ``Tracing`` object (no global tracer provider is set).
Incoming HTTP requests continue the caller's trace; outgoing HTTP calls and NATS
messages carry the current context in their headers. Spans are recorded and
exported only when an OTLP endpoint is configured; without one the incoming
context is still passed on unchanged, so traces stay joined end to end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Tracer
from starlette.types import ASGIApp, Receive, Scope, Send

UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class Tracing:
    def __init__(
        self,
        service: str,
        *,
        otlp_endpoint: str = "",
        exporter: SpanExporter | None = None,
    ) -> None:
        self.service = service
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        if otlp_endpoint and exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                from tokgateway.common.settings import ConfigError

                raise ConfigError(
                    "gateway.otlp_endpoint: the OTLP exporter is not installed "
                    "(pip install 'tokgateway[mesh]')"
                ) from None

            exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
        if exporter is not None:
            resource = Resource.create({"service.name": f"tokgateway-{service}"})
            self.provider = TracerProvider(resource=resource)
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
            self.tracer = self.provider.get_tracer("tokgateway")

    @contextlib.contextmanager
    def span(
        self, name: str, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL
    ) -> Iterator[None]:
        """A recorded span when exporting; otherwise just the parent context made current."""
        if self.tracer is None:
            token = otel_context.attach(parent) if parent is not None else None
            try:
                yield
            finally:
                if token is not None:
                    otel_context.detach(token)
            return
        with self.tracer.start_as_current_span(name, context=parent, kind=kind):
            yield

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None
            self.tracer = None


def inject(headers: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Headers carrying the current trace context (empty when there is none)."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(headers or {}))


class TraceMiddleware:
    """Pure ASGI: continue the caller's trace for the whole request, streamed
    bodies included (BaseHTTPMiddleware would break the contextvars)."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate", b"baggage")
        }
        if not carrier and self.tracing.tracer is None:
            await self.app(scope, receive, send)
            return
        name = f"{scope['method']} {scope['path']}"
        with self.tracing.span(name, extract(carrier), SpanKind.SERVER):
            await self.app(scope, receive, send)
