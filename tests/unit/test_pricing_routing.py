from __future__ import annotations

import pytest

from tokgateway.common.errors import NotFound
from tokgateway.common.pricing import Price, PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import ProviderConfig, RouteRule, RouteTarget


def test_price_lookup_prefers_longest_prefix() -> None:
    table = PriceTable.default()
    mini = table.lookup("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.input == 0.15
    full = table.lookup("gpt-4o-2024-08-06")
    assert full is not None and full.input == 2.5
    assert table.lookup("totally-unknown") is None


def test_cost_with_cache() -> None:
    price = Price(3.0, 15.0, 0.3, 3.75)
    cost = price.cost(
        prompt_tokens=1000, completion_tokens=100, cached_tokens=200, cache_write_tokens=100
    )
    assert cost == pytest.approx((700 * 3 + 200 * 0.3 + 100 * 3.75 + 100 * 15) / 1e6)


def _table(primary: str | None = None) -> RouteTable:
    providers = {
        n: ProviderConfig(name=n, kind="openai-compatible", base_url="http://x/v1")
        for n in ("a", "b")
    }
    rules = [
        RouteRule("exact", (RouteTarget("a", "up-model"), RouteTarget("b"))),
        RouteRule("gl*", (RouteTarget("b"),)),
    ]
    return RouteTable(
        rules=rules,
        aliases={"nick": "exact", "loop": "loop2", "loop2": "loop"},
        providers=providers,
        primary=primary,
        prices=PriceTable.default(),
    )


def test_resolve_order_alias_and_primary() -> None:
    t = _table()
    res = t.resolve("nick")
    assert res.target == "exact"
    assert [(d.provider.name, d.upstream_model) for d in res.deployments] == [
        ("a", "up-model"),
        ("b", "exact"),
    ]
    assert t.resolve("glob-me").deployments[0].provider.name == "b"
    with pytest.raises(NotFound):
        t.resolve("other")
    with pytest.raises(NotFound):
        t.resolve("loop")
    assert _table(primary="a").resolve("other").deployments[0].upstream_model == "other"
    assert ("nick", "a") in t.listed_models()
