"""Deployment order: strategies, the OpenRouter-style `provider` object and
the circuit breaker, as pure functions and small state."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tokgateway.common.errors import BadRequest, NotFound
from tokgateway.common.pricing import Price, PriceTable
from tokgateway.common.routing import Deployment, Resolution
from tokgateway.common.settings import ConfigError, ProviderConfig, load_settings
from tokgateway.router.strategies import (
    Breaker,
    Chooser,
    DeploymentStats,
    ProviderPrefs,
    Window,
    order,
    parse_provider,
)


def _deps(*names: str) -> list[Deployment]:
    return [
        Deployment(ProviderConfig(name=n, kind="openai-compatible", base_url=""), f"m-{n}")
        for n in names
    ]


def _names(deps: list[Deployment]) -> list[str]:
    return [d.provider.name for d in deps]


STATS = {
    "a:m-a": DeploymentStats(p50_ms=300.0, inflight=5, price=(3.0, 15.0), weight=1.0),
    "b:m-b": DeploymentStats(p50_ms=80.0, inflight=0, price=(0.5, 1.0), weight=0.0),
    "c:m-c": DeploymentStats(p50_ms=None, inflight=2, price=None, weight=1.0),
}


def test_each_strategy_orders_by_what_it_says() -> None:
    cands = _deps("a", "b", "c")
    assert _names(order(cands, STATS, "priority")) == ["a", "b", "c"]
    assert _names(order(cands, STATS, "cheapest")) == ["b", "a", "c"]  # unpriced last
    assert _names(order(cands, STATS, "fastest")) == ["b", "a", "c"]  # unmeasured last
    assert _names(order(cands, STATS, "least-busy")) == ["b", "c", "a"]
    with pytest.raises(ValueError):
        order(cands, STATS, "random")


def test_weighted_follows_the_weights() -> None:
    cands = _deps("a", "b", "c")
    stats = {"a:m-a": DeploymentStats(weight=3.0), "b:m-b": DeploymentStats(weight=1.0)}
    draws = itertools.cycle([0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 0.6, 0.4, 0.05, 0.95])
    firsts = [
        order(cands, stats, "weighted", rng=lambda: next(draws))[0].provider.name
        for _ in range(300)
    ]
    assert firsts.count("a") > firsts.count("b") and firsts.count("a") > firsts.count("c")
    zero = {"a:m-a": DeploymentStats(weight=1.0), "b:m-b": DeploymentStats(weight=0.0)}
    assert _names(order(_deps("b", "a"), zero, "weighted", rng=lambda: 0.5)) == ["a", "b"]


def test_provider_object_filters_reorders_and_caps() -> None:
    cands = _deps("a", "b", "c")
    prefs, body = parse_provider({"model": "x", "provider": {"order": ["c", "a"], "ignore": ["b"]}})
    assert body == {"model": "x"}  # stripped before the upstream
    assert prefs is not None and _names(order(cands, STATS, "cheapest", prefs)) == ["c", "a"]
    only = ProviderPrefs(only=("b", "c"))
    assert _names(order(cands, STATS, "priority", only)) == ["b", "c"]
    capped = ProviderPrefs(max_prompt=1.0)
    assert _names(order(cands, STATS, "priority", capped)) == ["b"]  # unpriced: excluded
    sorted_prefs, _ = parse_provider({"provider": {"sort": "latency"}})
    assert _names(order(cands, STATS, "priority", sorted_prefs)) == ["b", "a", "c"]
    single = ProviderPrefs(allow_fallbacks=False)
    assert _names(order(cands, STATS, "priority", single)) == ["a"]
    for bad in (
        {"provider": "a"},
        {"provider": {"sort": "vibes"}},
        {"provider": {"order": "a"}},
        {"provider": {"max_price": {"prompt": -1}}},
        {"provider": {"allow_fallbacks": "no"}},
    ):
        with pytest.raises(BadRequest):
            parse_provider(bad)
    assert parse_provider({"model": "x"}) == (None, {"model": "x"})


def test_cooling_deployments_go_last_but_are_not_dropped() -> None:
    cands = _deps("a", "b")
    stats = {"a:m-a": DeploymentStats(cooling=True), "b:m-b": DeploymentStats()}
    assert _names(order(cands, stats, "priority")) == ["b", "a"]
    assert _names(order(cands[:1], stats, "priority")) == ["a"]


def test_breaker_opens_after_failures_and_closes_on_success() -> None:
    changes: list[tuple[str, bool]] = []
    br = Breaker(threshold=2, cooldown_s=10.0, on_change=lambda n, c: changes.append((n, c)))
    br.failure("a", now=100.0)
    assert not br.cooling("a", 100.0)
    br.failure("a", now=101.0)
    assert br.cooling("a", 105.0) and changes == [("a", True)]
    assert not br.cooling("a", 111.5)  # cooldown over: half open
    br.failure("a", now=112.0)  # fails again: open again at once
    assert br.cooling("a", 113.0) and changes == [("a", True)]
    assert br.states(113.0)["a"]["cooling"] is True
    br.success("a")
    assert not br.cooling("a", 113.0) and changes[-1] == ("a", False)


def test_window_median() -> None:
    w = Window(size=3)
    assert w.p50() is None
    for ms in (100.0, 10.0, 50.0, 70.0):
        w.add(ms)
    assert w.p50() == 50.0  # of the last three: 10, 50, 70


class Metrics:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def set_cooldown(self, provider: str, cooling: bool) -> None:
        self.calls.append((provider, cooling))


def test_chooser_learns_from_attempts_and_reports_cooldown() -> None:
    metrics = Metrics()
    chooser = Chooser.with_metrics(metrics)
    res = Resolution("x", "x", tuple(_deps("a", "b")))
    for _ in range(3):
        ordered, _ = chooser.choose(res, {"model": "x"})
        chooser.done(ordered, 2, True, None)  # a failed, b answered
    assert metrics.calls == [("a", True)]
    ordered, body = chooser.choose(res, {"model": "x", "provider": {"sort": "price"}})
    assert _names(list(ordered.deployments)) == ["b", "a"] and "provider" not in body
    chooser.done(ordered, 1, True, None)
    assert chooser.inflight == {}
    prices = PriceTable({"m-a": Price(1.0, 1.0), "m-b": Price(9.0, 9.0)})
    cheap, _ = chooser.choose(res, {}, strategy="cheapest", prices=prices)
    assert _names(list(cheap.deployments)) == ["b", "a"]  # a is cooling, though cheaper
    with pytest.raises(NotFound):
        chooser.choose(res, {"provider": {"only": ["nope"]}})


def test_strategies_section_in_settings(tmp_path: Any) -> None:
    (tmp_path / "setting.ini").write_text(
        "[strategies]\nllama* = weighted local=3 cloud=1\ngpt-* = cheapest\n"
    )
    s = load_settings(tmp_path, {})
    assert s.strategies == {
        "llama*": ("weighted", {"local": 3.0, "cloud": 1.0}),
        "gpt-*": (
            "cheapest",
            {},
        ),
    }
    (tmp_path / "setting.ini").write_text("[strategies]\nx = fastest a=b\n")
    with pytest.raises(ConfigError, match="provider=number"):
        load_settings(tmp_path, {})
    (tmp_path / "setting.ini").write_text("[strategies]\nx = random\n")
    with pytest.raises(ConfigError, match="expected one of"):
        load_settings(tmp_path, {})


async def test_strategies_travel_in_the_mesh_snapshot(tmp_path: Any) -> None:
    from tokgateway.common.bus import InProcessBus
    from tokgateway.common.clients import table_from_snapshot
    from tokgateway.common.crypto import CredentialBox
    from tokgateway.registry.service import RegistryService

    (tmp_path / "setting.ini").write_text("[strategies]\nllama* = weighted echo=2\n")
    box = CredentialBox("x" * 32)
    registry = RegistryService(load_settings(tmp_path, {}), InProcessBus(), box=box)
    await registry.start()
    assert registry.snapshot().routing("llama3")["strategy"] == "weighted"
    rebuilt = table_from_snapshot(await registry.wire_snapshot(), box)
    assert rebuilt.routing("llama3")["strategy"] == "weighted"
    assert rebuilt.routing("llama3")["weights"] == {"echo": 2.0}
    assert rebuilt.routing("gpt-4o")["strategy"] == "priority"
