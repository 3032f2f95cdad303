"""Active health checks: a failed check holds a provider's deployments in
cooldown before any request fails; a good one closes a cooling breaker; the
results reach the metrics and the breaker, and a hung provider is bounded."""

from __future__ import annotations

import asyncio

from tokgateway.common.errors import UpstreamUnavailable
from tokgateway.common.metrics import RouterMetrics, render
from tokgateway.common.routing import Deployment, Resolution
from tokgateway.common.settings import ProviderConfig
from tokgateway.router.prober import Prober
from tokgateway.router.providers import Provider
from tokgateway.router.providers.base import UpstreamCall, UpstreamResponse
from tokgateway.router.strategies import Breaker, Chooser


class FakeProvider(Provider):
    def __init__(self, name: str) -> None:
        super().__init__(ProviderConfig(name=name, kind="openai-compatible", base_url=""))
        self.up = True
        self.hang = False

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        raise NotImplementedError

    async def probe(self) -> None:
        if self.hang:
            await asyncio.sleep(10)
        if not self.up:
            raise UpstreamUnavailable(f"{self.name} refused the connection")


def _res(*names: str) -> Resolution:
    deps = tuple(
        Deployment(ProviderConfig(name=n, kind="openai-compatible", base_url=""), "m")
        for n in names
    )
    return Resolution("m", "m", deps)


def test_failed_probe_holds_every_deployment_of_the_provider_until_a_good_one() -> None:
    changes: list[tuple[str, bool]] = []
    breaker = Breaker(threshold=3, cooldown_s=30.0, on_change=lambda k, c: changes.append((k, c)))
    assert breaker.idle
    breaker.probed("a", False)
    assert not breaker.idle and breaker.down() == {"a"}
    assert breaker.cooling("a:m1", 0.0) and breaker.cooling("a:m2", 1e9)
    assert not breaker.cooling("b:m1", 0.0)
    breaker.probed("a", False)  # still down: announced once
    assert changes == [("a:", True)]
    breaker.probed("a", True)
    assert breaker.idle and not breaker.cooling("a:m1", 0.0)
    assert changes == [("a:", True), ("a:", False)]


def test_good_probe_closes_a_cooling_breaker_and_a_request_success_lifts_a_probe() -> None:
    breaker = Breaker(threshold=1, cooldown_s=30.0)
    breaker.failure("a:m1", 100.0)
    breaker.failure("b:m1", 100.0)
    assert breaker.cooling("a:m1", 101.0)
    breaker.probed("a", True)
    assert not breaker.cooling("a:m1", 101.0) and breaker.cooling("b:m1", 101.0)
    breaker.probed("c", False)
    breaker.success("c:m9")  # a request got through: the provider works
    assert breaker.down() == frozenset()


def test_chooser_routes_around_a_provider_a_probe_found_down() -> None:
    chooser = Chooser()
    res, _ = chooser.choose(_res("a", "b"), {"model": "m"})
    assert [d.provider.name for d in res.deployments] == ["a", "b"]
    chooser.breaker.probed("a", False)
    res, _ = chooser.choose(_res("a", "b"), {"model": "m"})
    assert [d.provider.name for d in res.deployments] == ["b", "a"]


async def test_prober_feeds_breaker_and_metrics_and_bounds_a_hung_provider() -> None:
    a, b, c = FakeProvider("a"), FakeProvider("b"), FakeProvider("c")
    providers: dict[str, Provider] = {"a": a, "b": b, "c": c}
    metrics = RouterMetrics()
    chooser = Chooser.with_metrics(metrics)
    prober = Prober(lambda: providers, chooser.breaker, metrics, interval_s=0.05, timeout_s=0.2)
    b.up = False
    c.hang = True
    results = await prober.check_all()
    assert results["a"].healthy and not results["b"].healthy and not results["c"].healthy
    assert "refused" in results["b"].error and "0.2 s" in results["c"].error
    assert results["c"].latency_s < 1.0
    assert chooser.breaker.down() == {"b", "c"}
    text = render(metrics.registry)[0].decode()
    assert 'gateway_provider_healthy{provider="a"} 1.0' in text
    assert 'gateway_provider_healthy{provider="b"} 0.0' in text
    assert 'gateway_provider_cooldown{provider="b"} 1.0' in text
    assert 'gateway_provider_probe_latency_seconds{provider="a"}' in text
    public = prober.public()
    assert public["b"]["healthy"] is False and public["a"]["latency_ms"] >= 0

    # periodic: the loop notices b coming back; c leaves the snapshot
    b.up = True
    del providers["c"]
    prober.start()
    try:
        for _ in range(100):
            if prober.results["b"].healthy:
                break
            await asyncio.sleep(0.02)
    finally:
        await prober.close()
    assert prober.results["b"].healthy and "c" not in prober.results
    assert chooser.breaker.down() == frozenset() and chooser.breaker.idle
    text = render(metrics.registry)[0].decode()
    assert 'gateway_provider_healthy{provider="b"} 1.0' in text
    assert 'gateway_provider_healthy{provider="c"}' not in text


async def test_interval_zero_never_probes() -> None:
    a = FakeProvider("a")
    a.up = False
    prober = Prober(lambda: {"a": a}, Breaker(), None, interval_s=0)
    prober.start()
    await asyncio.sleep(0.05)
    await prober.close()
    assert prober.results == {}
