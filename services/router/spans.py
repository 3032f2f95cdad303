"""Spans of the request path in OpenTelemetry's GenAI semantic conventions.

One span per request (``{operation} {model}``, the gateway's view: the model
asked, the model that answered, tokens, cost) and one CLIENT span per upstream
attempt (the provider, the upstream model; failed attempts carry
``error.type``). The request span is current while the request is handled, so
the auth lookup (HTTP), the attempts and the usage event (NATS headers) are
its children. It ends when the request settles, a stream's last byte included.

Without an exporter the router holds no ``GenAISpans`` at all (``None``): the
request path pays one ``is None`` check per call site and builds no span."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from tokgateway.common.contracts import UsageEvent
from tokgateway.common.errors import GatewayError

if TYPE_CHECKING:
    from tokgateway.common.metrics import RouterMetrics
    from tokgateway.common.settings import ProviderConfig
    from tokgateway.router.context import RequestContext

# gen_ai.operation.name per gateway endpoint (the convention's well-known values
# where one fits; count_tokens has none, so it keeps the endpoint's own name).
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "count_tokens": "count_tokens",
}

# gen_ai.provider.name: the convention's values for the upstream API spoken.
PROVIDER_NAMES = {
    "openai": "openai",
    "openai-compatible": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
}


class GenAISpans:
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self._requests: dict[str, tuple[Span, str]] = {}
        self._attempts: dict[str, Span] = {}
        self._pending: tuple[Span, str] | None = None

    @contextlib.contextmanager
    def request(self, endpoint: str) -> Iterator[None]:
        """The request span, current for the handler's duration; ``bind`` ties it
        to the request id once the handler made one."""
        op = OPERATIONS.get(endpoint, endpoint)
        span = self.tracer.start_span(op, kind=SpanKind.INTERNAL)
        span.set_attribute("gen_ai.operation.name", op)
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            self._pending = (span, op)
            try:
                yield
            finally:
                self._pending = None

    def bind(self, info: RequestContext) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._requests[info.request_id] = pending
            pending[0].set_attribute("gateway.request_id", info.request_id)

    def attempt(self, info: RequestContext, provider: ProviderConfig, endpoint: str) -> None:
        """An upstream attempt starts (``endpoint``: the API spoken upstream)."""
        self._end_attempt(info.request_id, None)
        op = OPERATIONS.get(endpoint, endpoint)
        model = info.upstream_model or ""
        span = self.tracer.start_span(f"{op} {model}", kind=SpanKind.CLIENT)
        host = urlsplit(provider.base_url)
        span.set_attributes(
            {
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": PROVIDER_NAMES.get(provider.kind, provider.kind),
                "gen_ai.request.model": model,
                "server.address": host.hostname or "",
                "server.port": host.port or (443 if host.scheme == "https" else 80),
                "gateway.provider": provider.name,
                "gateway.attempt": info.attempts,
            }
        )
        self._attempts[info.request_id] = span

    def failed(self, info: RequestContext, err: GatewayError) -> None:
        self._end_attempt(info.request_id, err)

    def _end_attempt(self, request_id: str, err: GatewayError | None) -> None:
        span = self._attempts.pop(request_id, None)
        if span is None:
            return
        if err is not None:
            _error(span, err)
        span.end()

    def finish(self, info: RequestContext, event: UsageEvent, err: GatewayError | None) -> None:
        """The request settled: its attempt and request spans get the outcome."""
        attrs: dict[str, str | int | float | bool] = {
            "gen_ai.usage.input_tokens": event.prompt_tokens,
            "gen_ai.usage.output_tokens": event.completion_tokens,
        }
        if event.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = event.cached_tokens
        if event.upstream_model:
            attrs["gen_ai.response.model"] = event.upstream_model
        attempt = self._attempts.pop(info.request_id, None)
        if attempt is not None:
            attempt.set_attributes(attrs)
            if event.status >= 400 and err is not None:
                _error(attempt, err)
            attempt.end()
        found = self._requests.pop(info.request_id, None)
        if found is None:
            return
        span, op = found
        span.set_attributes(attrs)
        span.set_attributes(
            {
                "gen_ai.request.model": event.model,
                "gateway.route": event.route,
                "gateway.status": event.status,
                "gateway.attempts": event.attempts,
                "gateway.cost_usd": event.cost_usd,
                "gateway.stream": event.stream,
            }
        )
        if event.provider:
            span.set_attribute("gateway.provider", event.provider)
        if event.key_id:
            span.set_attribute("gateway.key_id", event.key_id)
        if event.model:
            span.update_name(f"{op} {event.model}")
        if event.error_class:
            span.set_attribute("error.type", event.error_class)
            span.set_status(Status(StatusCode.ERROR, (event.error or "")[:200]))
        span.end()


def _error(span: Span, err: GatewayError) -> None:
    status = getattr(err, "upstream_status", None)
    span.set_attribute("error.type", str(status) if status else type(err).__name__)
    span.set_status(Status(StatusCode.ERROR, err.message[:200]))


def failover(
    metrics: RouterMetrics | None,
    spans: GenAISpans | None,
    info: RequestContext,
    provider: str,
    err: GatewayError,
    more: bool,
) -> None:
    """An attempt failed: it ends, and counts as a fallback when a next
    deployment is tried."""
    if spans is not None:
        spans.failed(info, err)
    if more and metrics is not None:
        metrics.fallback(provider)
