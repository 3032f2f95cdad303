"""/v1/models: route globs expanded against what upstreams report."""

from __future__ import annotations

import asyncio
from typing import Any

from tokgateway.common.errors import UpstreamUnavailable
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import ProviderConfig, RouteRule, RouteTarget
from tokgateway.router.catalogue import ModelCatalogue
from tokgateway.router.providers import Provider, UpstreamCall, UpstreamResponse


class ListingUpstream(Provider):
    """Stands in for an upstream's GET /models."""

    def __init__(self, name: str, kind: str, ids: list[str] | None) -> None:
        super().__init__(ProviderConfig(name=name, kind=kind, base_url=f"http://{name}/v1"))
        self.ids = ids
        self.asked = 0

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        raise AssertionError("not used")

    async def list_upstream_models(self) -> list[str]:
        self.asked += 1
        if self.ids is None:
            raise UpstreamUnavailable("down")
        return list(self.ids)


def _table(providers: dict[str, Any], primary: str | None = None) -> RouteTable:
    return RouteTable(
        rules=[
            RouteRule("llama3*", (RouteTarget("local"),)),
            RouteRule("gpt-4o", (RouteTarget("cloud"),)),
            RouteRule("echo", (RouteTarget("echo"),)),
        ],
        aliases={"fast": "llama3.1:8b"},
        providers={n: p.config for n, p in providers.items()},
        primary=primary,
        prices=PriceTable({}),
    )


async def test_globs_expand_to_the_reported_models_of_their_provider() -> None:
    providers: dict[str, Any] = {
        "local": ListingUpstream(
            "local", "openai-compatible", ["llama3.1:8b", "llama3.2:3b", "qwen2.5"]
        ),
        "cloud": ListingUpstream("cloud", "openai", ["gpt-4o", "llama3-cloud", "o3"]),
        "down": ListingUpstream("down", "openai-compatible", None),
        "echo": ListingUpstream("echo", "echo", ["never-asked"]),
    }
    catalogue = ModelCatalogue(ttl=300)
    listed = dict(await catalogue.listed(_table(providers), providers))
    assert listed == {
        "echo": "echo",
        "fast": "local",  # the alias
        "gpt-4o": "cloud",
        "llama3.1:8b": "local",
        "llama3.2:3b": "local",
    }
    # llama3-cloud matches llama3*, which sends it to local, not cloud: not listed
    assert providers["echo"].asked == 0
    # cached: no upstream is asked again within the ttl
    await catalogue.listed(_table(providers), providers)
    assert providers["local"].asked == 1 and providers["cloud"].asked == 1


async def test_primary_provider_lists_everything_it_reports() -> None:
    providers: dict[str, Any] = {
        "local": ListingUpstream("local", "openai-compatible", ["qwen2.5", "llama3.1:8b"]),
        "cloud": ListingUpstream("cloud", "openai", []),
        "echo": ListingUpstream("echo", "echo", []),
    }
    listed = dict(await ModelCatalogue().listed(_table(providers, primary="local"), providers))
    assert listed["qwen2.5"] == "local"


async def test_reports_are_refreshed_after_the_ttl() -> None:
    local = ListingUpstream("local", "openai-compatible", ["llama3.1:8b"])
    providers: dict[str, Any] = {"local": local, "cloud": ListingUpstream("cloud", "openai", [])}
    providers["echo"] = ListingUpstream("echo", "echo", [])
    catalogue = ModelCatalogue(ttl=0.0)
    assert "llama3.3:70b" not in dict(await catalogue.listed(_table(providers), providers))
    local.ids = ["llama3.1:8b", "llama3.3:70b"]
    # stale: the old report is served at once while a refresh runs behind it
    assert "llama3.3:70b" not in dict(await catalogue.listed(_table(providers), providers))
    await asyncio.sleep(0.01)
    listed = dict(await catalogue.listed(_table(providers), providers))
    assert listed["llama3.3:70b"] == "local"
    await catalogue.close()
