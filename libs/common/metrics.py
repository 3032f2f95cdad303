"""Prometheus metrics of one app. Each app owns its CollectorRegistry, so two
gateways in one process (tests) never share counters.

The request path updates plain numbers (no lock: the event loop is the only
writer); a collector turns them into Prometheus families when ``/metrics`` is
scraped. prometheus_client's own Counter and Histogram take a lock per update,
which cost several microseconds per request."""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Family(Collector):
    """A counter or histogram with labels, registered as its own collector."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: tuple[float, ...] | None = None,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.buckets = buckets
        self.children: dict[tuple[str, ...], Any] = {}
        registry.register(self)

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            child = _HistogramChild(self.buckets) if self.buckets else _CounterChild()
            self.children[values] = child
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        if self.buckets is None:
            counter = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, child in list(self.children.items()):
                counter.add_metric(list(values), child.value)
            yield counter
            return
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self.children.items()):
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*self.buckets, float("inf")), child.counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            histogram.add_metric(list(values), buckets, child.sum)
        yield histogram


class Gauges(Collector):
    """A gauge family whose values are set (not counted) by the request path or
    a background task; rendered at scrape time like ``Family``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def set(self, value: float, *labels: str) -> None:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        self.values[labels] = value

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            gauge.add_metric(list(labels), value)
        yield gauge


PoolStats = Iterable[tuple[str, int | None, int]]
"""Upstream connections per origin: ``(origin, in_use, idle)``; ``in_use`` is
None where a pool does not count it."""

PoolSource = Callable[[], PoolStats]
"""What an upstream client hands to ``RouterMetrics.watch_pool``: called at
scrape time only, so the client keeps its counts however it likes."""


class _PoolCollector(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sources: list[PoolSource] = []
        registry.register(self)

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "gateway_upstream_connections",
            "Upstream HTTP connections per origin, in use or idle (kept alive)",
            labels=("origin", "state"),
        )
        totals: dict[tuple[str, str], float] = {}
        for source in list(self.sources):
            for origin, in_use, idle in source():
                for state, count in (("in_use", in_use), ("idle", idle)):
                    if count is not None:
                        totals[(origin, state)] = totals.get((origin, state), 0.0) + count
        for (origin, state), total in totals.items():
            gauge.add_metric([origin, state], total)
        yield gauge


def process_metrics(registry: CollectorRegistry) -> None:
    """CPU seconds, resident memory and open files of this process
    (``process_*``), once per registry."""
    with contextlib.suppress(ValueError):  # already registered
        ProcessCollector(registry=registry)


OTHER_MODELS = "(other)"


class RouterMetrics:
    """``max_models`` bounds the model names used as label values: model names
    come from clients, and every new one would be a new series kept forever."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_models: int = 1000,
        max_scope_ids: int = 1000,
    ) -> None:
        self.max_models = max_models
        self._models: set[str] = set()
        self.max_scope_ids = max_scope_ids
        self._scope_ids: set[tuple[str, str]] = set()
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Family(
            "gateway_requests",
            "Requests settled, by route, model, provider and HTTP status",
            ("route", "model", "provider", "status"),
            registry=r,
        )
        self.errors = Family(
            "gateway_errors",
            "Failed requests by class: client, policy (gateway limits), upstream, internal",
            ("error_class",),
            registry=r,
        )
        self.overhead = Family(
            "gateway_overhead_seconds",
            "Time the gateway itself added: total minus upstream time",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.upstream = Family(
            "gateway_upstream_seconds",
            "Upstream latency (until the last byte)",
            ("provider",),
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.ttft = Family(
            "gateway_time_to_first_token_seconds",
            "Time to the first streamed token seen by the client",
            ("provider",),
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.tokens = Family(
            "gateway_tokens",
            "Tokens metered, by model, provider and kind (prompt, completion, cached)",
            ("model", "provider", "kind"),
            registry=r,
        )
        self.unpriced = Family(
            "gateway_unpriced_requests",
            "Requests with tokens for a model the price table lacks (metered at cost 0)",
            ("upstream_model",),
            registry=r,
        )
        self.cost = Family(
            "gateway_cost_usd",
            "Cost metered in USD, by model and provider",
            ("model", "provider"),
            registry=r,
        )
        # -- governance ----------------------------------------------------------------
        self.rejections = Family(
            "gateway_limit_rejections",
            "Requests refused by a gateway limit, by scope (key, user, team), the scope's "
            "id and the limit (rpm, tpm, budget)",
            ("scope", "scope_id", "limit"),
            registry=r,
        )
        budget_labels = ("scope", "scope_id", "period")
        self.budget_spend = Gauges(
            "gateway_budget_spend_usd",
            "Spend counted against a budget in its current period, USD",
            budget_labels,
            registry=r,
        )
        self.budget_limit = Gauges(
            "gateway_budget_limit_usd", "The budget of a scope for its period, USD",
            budget_labels, registry=r,
        )  # fmt: skip
        self.budget_ratio = Gauges(
            "gateway_budget_used_ratio",
            "Spend divided by budget (1 = the budget is used up)",
            budget_labels,
            registry=r,
        )
        # -- upstreams -----------------------------------------------------------------
        self.fallbacks = Family(
            "gateway_fallbacks",
            "Upstream attempts that failed and were handed to the next deployment",
            ("provider",),
            registry=r,
        )
        self.cooldown = Gauges(
            "gateway_provider_cooldown",
            "1 while a provider is held out of routing by its circuit breaker, else 0",
            ("provider",),
            registry=r,
        )
        self.healthy = Gauges(
            "gateway_provider_healthy",
            "1 while a provider's last health check passed, 0 after a failed one",
            ("provider",),
            registry=r,
        )
        self.probe_latency = Gauges(
            "gateway_provider_probe_latency_seconds",
            "How long a provider's last health check took",
            ("provider",),
            registry=r,
        )
        self._pools = _PoolCollector(r)
        process_metrics(r)

    # -- calls for the request path and its helpers ------------------------------------
    def reject(self, scope: str, scope_id: str, limit: str) -> None:
        """A request refused by a gateway limit; ``scope`` key|user|team, ``limit``
        rpm|tpm|budget."""
        self.rejections.labels(scope, self.scope_label(scope, scope_id), limit).inc()

    def budget(self, scope: str, scope_id: str, period: str, spend: float, limit: float) -> None:
        """The current spend of a budget and its limit (USD); the ratio follows."""
        labels = (scope, self.scope_label(scope, scope_id), period)
        self.budget_spend.set(spend, *labels)
        self.budget_limit.set(limit, *labels)
        self.budget_ratio.set(spend / limit if limit > 0 else 0.0, *labels)

    def drop_budget(self, scope: str, scope_id: str, period: str) -> None:
        """A budget removed: its series go (a stale ratio would keep alerting)."""
        labels = (scope, self.scope_label(scope, scope_id), period)
        for family in (self.budget_spend, self.budget_limit, self.budget_ratio):
            family.values.pop(labels, None)

    def fallback(self, provider: str) -> None:
        """An attempt on ``provider`` failed and the next deployment is tried."""
        self.fallbacks.labels(provider).inc()

    def set_cooldown(self, provider: str, cooling: bool) -> None:
        self.cooldown.set(1.0 if cooling else 0.0, provider)

    def set_probe(self, provider: str, healthy: bool, latency_s: float) -> None:
        """The result of a provider's health check (router/prober.py)."""
        self.healthy.set(1.0 if healthy else 0.0, provider)
        self.probe_latency.set(latency_s, provider)

    def drop_probe(self, provider: str) -> None:
        """A provider left the routing snapshot: its health series go."""
        for family in (self.healthy, self.probe_latency):
            family.values.pop((provider,), None)

    def watch_pool(self, source: PoolSource) -> None:
        """Report an upstream client's connections (read at scrape time)."""
        self._pools.sources.append(source)

    def unwatch_pool(self, source: PoolSource) -> None:
        with contextlib.suppress(ValueError):
            self._pools.sources.remove(source)

    def scope_label(self, scope: str, scope_id: str) -> str:
        """Like ``model_label``: at most ``max_scope_ids`` ids as label values,
        then ``(other)``."""
        item = (scope, scope_id)
        if item in self._scope_ids:
            return scope_id
        if len(self._scope_ids) >= self.max_scope_ids:
            return OTHER_MODELS
        self._scope_ids.add(item)
        return scope_id

    def model_label(self, model: str) -> str:
        """``model`` while fewer than ``max_models`` names are in use, then
        ``(other)`` for every new one."""
        if model in self._models:
            return model
        if len(self._models) >= self.max_models:
            return OTHER_MODELS
        self._models.add(model)
        return model


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
