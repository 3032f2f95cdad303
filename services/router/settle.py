"""The settle step: one usage event per request, published without blocking,
plus the metrics and the access-log line built from the same fields."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tokgateway.common.contracts import USAGE_SUBJECT, Bus, KeyInfo, UsageEvent
from tokgateway.common.errors import GatewayError, summary
from tokgateway.common.lifecycle import ShutdownState
from tokgateway.common.logs import AccessLog
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.pricing import PriceTable
from tokgateway.router.governor import Governor, Reservation
from tokgateway.router.relay import Meter
from tokgateway.router.snapshot import RoutingSnapshot
from tokgateway.router.spans import GenAISpans
from tokgateway.router.usage import Usage, estimate_tokens

log = logging.getLogger("tokgateway.router")

CLIENT_CLOSED = 499


@dataclass(slots=True)
class RequestInfo:
    request_id: str
    route: str
    model: str = ""
    stream: bool = False
    key: KeyInfo | None = None
    provider: str | None = None
    provider_kind: str = ""
    upstream_model: str | None = None
    attempts: int = 0
    status: int = 200
    prompt_estimate: int = 0
    reservation: Reservation | None = None
    tried: list[dict[str, object]] | None = None  # every upstream attempt
    snapshot: RoutingSnapshot | None = None  # the routing snapshot the request holds
    shutdown: ShutdownState | None = None  # set by the server: a cut at the drain end


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

    def settle(
        self,
        info: RequestInfo,
        meter: Meter,
        prices: PriceTable | None,
        error: GatewayError | None = None,
    ) -> UsageEvent:
        end = time.perf_counter()
        latency = (end - meter.started) * 1000.0
        upstream_ms = meter.upstream_ms()
        ttft = None
        if info.stream and meter.first_chunk is not None:
            ttft = (meter.first_chunk - meter.started) * 1000.0
        overhead = latency - upstream_ms if upstream_ms is not None else latency

        usage = meter.usage
        estimated = False
        if usage is None and info.provider is not None and info.status < 400:
            # The upstream reported nothing: estimate, and say so.
            estimated = True
            meter.count_held()
            usage = Usage(
                prompt_tokens=info.prompt_estimate,
                completion_tokens=max(meter.content_chunks, estimate_tokens(meter.content_chars)),
            )
        usage = usage or Usage()

        err = error or meter.error
        status = info.status
        error_class: str | None = None
        message = None
        if err is not None:
            status = err.http_status if info.status < 400 or error is not None else info.status
            error_class = err.error_class
            message = summary(err.message)
        elif meter.client_gone and info.shutdown is not None and info.shutdown.cut:
            status = 503  # the server stopped it at the end of the drain time
            error_class = "shutdown"
            message = "gateway shutdown: the drain time ran out"
        elif meter.client_gone:
            status = CLIENT_CLOSED
            error_class = "client"
            message = "client closed the connection"
        elif meter.in_stream_error is not None:
            status = 502
            error_class = "upstream"
            message = summary(meter.in_stream_error)

        cost = 0.0
        if prices is not None and info.upstream_model:
            price = prices.price_for(
                info.provider or "", info.provider_kind, info.upstream_model, info.model
            )
            if price is not None:
                cost = price.cost(
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.cached_tokens,
                    usage.cache_write_tokens,
                )
            elif usage.total and info.provider_kind != "echo":
                # Metered at cost 0: say so, so an operator can add a [prices] line.
                model = self.metrics.model_label(info.upstream_model)
                self.metrics.unpriced.labels(model).inc()

        key = info.key
        reservation = info.reservation
        if reservation is not None and self.governor is not None:
            self.governor.settle(reservation, usage.total, cost)
        event = UsageEvent(
            request_id=info.request_id,
            ts=time.time(),
            key_id=key.id if key else None,
            user_id=key.user_id if key else None,
            team_id=key.team_id if key else None,
            route=info.route,
            model=info.model,
            provider=info.provider,
            upstream_model=info.upstream_model,
            stream=info.stream,
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
            attempts=info.attempts,
        )
        if info.tried:
            event.extra["attempts"] = info.tried
        self._observe(event)
        if key is not None:
            # Requests refused before a key was known are logged, not billed.
            self._emit(event)
        if self.spans is not None:
            self.spans.finish(info, event, err)
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
