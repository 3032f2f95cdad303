"""Prometheus metrics of one app. Each app owns its CollectorRegistry, so two
gateways in one process (tests) never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Requests settled, by route, model, provider and HTTP status",
            ("route", "model", "provider", "status"),
            registry=r,
        )
        self.errors = Counter(
            "gateway_errors",
            "Failed requests by class: client, policy (gateway limits), upstream, internal",
            ("error_class",),
            registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Time the gateway itself added: total minus upstream time",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "gateway_upstream_seconds",
            "Upstream latency (until the last byte)",
            ("provider",),
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time to the first streamed token seen by the client",
            ("provider",),
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens",
            "Tokens metered, by model, provider and kind (prompt, completion, cached)",
            ("model", "provider", "kind"),
            registry=r,
        )
        self.unpriced = Counter(
            "gateway_unpriced_requests",
            "Requests with tokens for a model the price table lacks (metered at cost 0)",
            ("upstream_model",),
            registry=r,
        )
        self.cost = Counter(
            "gateway_cost_usd",
            "Cost metered in USD, by model and provider",
            ("model", "provider"),
            registry=r,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: labels() takes a lock and
        builds a tuple on every call."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            if len(self._children) > 50_000:
                self._children.clear()
            found = self._children[key] = metric.labels(*labels)
        return found


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
