from __future__ import annotations

from pathlib import Path

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


def test_price_for_scoped_first_then_the_echo_rule_then_names() -> None:
    own, listed = Price(90.0, 90.0), Price(2.0, 4.0)
    table = PriceTable(
        {"a-model": own, "gpt-4o": Price(2.5, 10.0)},
        overridden=("a-model",),
        scoped={("mkt-1", "a-model"): listed},
    )
    # the listing's provider: its own price, whatever the table says of the name
    assert table.price_for("mkt-1", "openai-compatible", "a-model", "a-model") is listed
    assert table.price_for("mkt-1", "openai-compatible", "a-model", "alias") is listed
    # any other provider serving the name: the consumer's own price
    assert table.price_for("local", "openai-compatible", "a-model", "a-model") is own
    assert table.provider_price("local", "a-model") is own
    assert table.provider_price("mkt-1", "a-model") is listed
    # upstream model first, then the asked-for name
    assert table.price_for("local", "openai", "gpt-4o-2024-08-06", "a-model") == Price(2.5, 10.0)
    assert table.price_for("local", "openai", "unknown", "gpt-4o") == Price(2.5, 10.0)
    # echo: only names priced on purpose bill it
    assert table.price_for("echo", "echo", "gpt-4o", "gpt-4o") is None
    assert table.price_for("echo", "echo", "echo", "a-model") is own


async def test_scoped_prices_travel_in_the_mesh_snapshot(tmp_path: Path) -> None:
    from tokgateway.common.bus import InProcessBus
    from tokgateway.common.clients import table_from_snapshot
    from tokgateway.common.crypto import CredentialBox
    from tokgateway.common.settings import load_settings
    from tokgateway.registry.service import RegistryService

    box = CredentialBox("x" * 32)
    registry = RegistryService(load_settings(tmp_path, {}), InProcessBus(), box=box)
    await registry.start()
    await registry.set_scoped_prices({("mkt-1", "m"): Price(1.0, 2.0, 0.5)})
    rebuilt = table_from_snapshot(await registry.wire_snapshot(), box)
    assert rebuilt.prices.scoped == {("mkt-1", "m"): Price(1.0, 2.0, 0.5)}
    assert rebuilt.prices.price_for("mkt-1", "openai", "m", "m") == Price(1.0, 2.0, 0.5)


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
