"""The settle step: one usage event per request, published without blocking,
plus the metrics and the access-log line built from the same fields."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tokgateway.common.contracts import USAGE_SUBJECT, Bus, UsageEvent
from tokgateway.common.errors import summary
from tokgateway.common.logs import AccessLog
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.pricing import PriceTable
from tokgateway.router.context import CLIENT_CLOSED, RequestContext
from tokgateway.router.governor import Governor
from tokgateway.router.spans import GenAISpans
from tokgateway.router.usage import Usage, estimate_tokens

log = logging.getLogger("tokgateway.router")

UsageSink = Callable[[UsageEvent], None]


class Settler:
    """Turns a finished request into a usage event: metrics, the access log,
    and the ledger. Events go to the ledger over the bus (a mesh: NATS), or
    straight into ``sink`` when the ledger lives in the same process."""

    def __init__(
        self,
        bus: Bus,
        metrics: RouterMetrics,
        access: AccessLog,
        sink: UsageSink | None = None,
    ) -> None:
        self.spans: GenAISpans | None = None  # set by the router when it exports traces
        self.governor: Governor | None = None  # set by the router: limits and budgets
        self.bus = bus
        self.metrics = metrics
        self.access = access
        self._emit: UsageSink = sink or self._publish

    def _publish(self, event: UsageEvent) -> None:
        self.bus.publish_nowait(USAGE_SUBJECT, event.to_json())

    def settle(self, ctx: RequestContext, prices: PriceTable | None) -> UsageEvent:
        """The request's usage event; ``ctx.error`` says how it failed, if it did."""
        end = time.perf_counter()
        latency = (end - ctx.started) * 1000.0
        upstream_ms = ctx.upstream_ms()
        ttft = None
        if ctx.stream and ctx.first_chunk is not None:
            ttft = (ctx.first_chunk - ctx.started) * 1000.0
        overhead = latency - upstream_ms if upstream_ms is not None else latency

        usage = ctx.usage
        estimated = False
        if usage is None and ctx.provider is not None and ctx.status < 400:
            # The upstream reported nothing: estimate from the text relayed, and say so.
            estimated = True
            ctx.count_held()
            usage = Usage(
                prompt_tokens=ctx.prompt_estimate,
                completion_tokens=max(ctx.content_chunks, estimate_tokens(ctx.content_chars)),
            )
        usage = usage or Usage()

        err = ctx.error
        status = ctx.status
        error_class: str | None = None
        message = None
        if err is not None:
            status = err.http_status
            error_class = err.error_class
            message = summary(err.message)
        elif ctx.client_gone and ctx.shutdown is not None and ctx.shutdown.cut:
            status = 503  # the server stopped it at the end of the drain time
            error_class = "shutdown"
            message = "gateway shutdown: the drain time ran out"
        elif ctx.client_gone:
            status = CLIENT_CLOSED
            error_class = "client"
            message = "client closed the connection"
        elif ctx.in_stream_error is not None:
            status = 502
            error_class = "upstream"
            message = summary(ctx.in_stream_error)

        cost = 0.0
        if prices is not None and ctx.upstream_model:
            price = prices.price_for(
                ctx.provider or "", ctx.provider_kind, ctx.upstream_model, ctx.model
            )
            if price is not None:
                cost = price.cost(
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.cached_tokens,
                    usage.cache_write_tokens,
                )
            elif usage.total and ctx.provider_kind != "echo":
                # Metered at cost 0: say so, so an operator can add a [prices] line.
                model = self.metrics.model_label(ctx.upstream_model)
                self.metrics.unpriced.labels(model).inc()

        key = ctx.key
        reservation = ctx.reservation
        if reservation is not None and self.governor is not None:
            self.governor.settle(reservation, usage.total, cost)
        event = UsageEvent(
            request_id=ctx.request_id,
            ts=time.time(),
            key_id=key.id if key else None,
            user_id=key.user_id if key else None,
            team_id=key.team_id if key else None,
            route=ctx.route,
            model=ctx.model,
            provider=ctx.provider,
            upstream_model=ctx.upstream_model,
            stream=ctx.stream,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            usage_estimated=estimated,
            cost_usd=cost,
            status=status,
            error_class=error_class,
            error=message,
            latency_ms=round(latency, 3),
            upstream_ms=round(upstream_ms, 3) if upstream_ms is not None else None,
            ttft_ms=round(ttft, 3) if ttft is not None else None,
            overhead_ms=round(overhead, 3),
            attempts=ctx.attempts,
        )
        if ctx.tried:
            event.extra["attempts"] = ctx.tried
        self._observe(event)
        if key is not None:
            # Requests refused before a key was known are logged, not billed.
            self._emit(event)
        if self.spans is not None:
            self.spans.finish(ctx, event, err)
        return event

    def _observe(self, ev: UsageEvent) -> None:
        m = self.metrics
        provider = ev.provider or ""
        model = m.model_label(ev.model)
        m.requests.labels(ev.route, model, provider, str(ev.status)).inc()
        if ev.error_class:
            m.errors.labels(ev.error_class).inc()
        if ev.overhead_ms is not None:
            m.overhead.observe(ev.overhead_ms / 1000.0)
        if ev.upstream_ms is not None and provider:
            m.upstream.labels(provider).observe(ev.upstream_ms / 1000.0)
        if ev.ttft_ms is not None and provider:
            m.ttft.labels(provider).observe(ev.ttft_ms / 1000.0)
        if ev.prompt_tokens or ev.completion_tokens:
            m.tokens.labels(model, provider, "prompt").inc(ev.prompt_tokens)
            m.tokens.labels(model, provider, "completion").inc(ev.completion_tokens)
            if ev.cached_tokens:
                m.tokens.labels(model, provider, "cached").inc(ev.cached_tokens)
        if ev.cost_usd:
            m.cost.labels(model, provider).inc(ev.cost_usd)
        if self.access.enabled:
            fields = {
                "ts": round(time.time(), 6),
                "level": "info",
                "logger": "tokgateway.access",
                "msg": "request",
                "request_id": ev.request_id,
                "key_id": ev.key_id,
                "route": ev.route,
                "model": ev.model,
                "provider": ev.provider,
                "upstream_model": ev.upstream_model,
                "stream": ev.stream,
                "status": ev.status,
                "prompt_tokens": ev.prompt_tokens,
                "completion_tokens": ev.completion_tokens,
                "cached_tokens": ev.cached_tokens,
                "cost_usd": ev.cost_usd,
                "latency_ms": ev.latency_ms,
                "upstream_ms": ev.upstream_ms,
                "ttft_ms": ev.ttft_ms,
                "overhead_ms": ev.overhead_ms,
            }
            if ev.error_class:
                fields["error_class"] = ev.error_class
                fields["error"] = ev.error
            self.access.write(fields)
