"""Token prices and cost. Prices are USD per million tokens; a model matches its
exact name first, then the longest listed prefix (dated snapshots such as
``gpt-4o-2024-08-06`` take the price of ``gpt-4o``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

import orjson

from tokgateway.common.settings import PriceOverride


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cached: float | None = None
    cache_write: float | None = None

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """``prompt_tokens`` includes the cached and cache-written tokens."""
        cached_price = self.input if self.cached is None else self.cached
        write_price = self.input if self.cache_write is None else self.cache_write
        plain = max(prompt_tokens - cached_tokens - cache_write_tokens, 0)
        total = (
            plain * self.input
            + cached_tokens * cached_price
            + cache_write_tokens * write_price
            + completion_tokens * self.output
        )
        return round(total / 1_000_000, 10)


def _shipped() -> dict[str, Price]:
    raw = resources.files("tokgateway.common").joinpath("data/prices.json").read_bytes()
    models = orjson.loads(raw)["models"]
    return {name: Price(*vals) for name, vals in models.items()}


class PriceTable:
    """``overridden``: the names the operator priced on purpose ([prices], the
    admin API); only those bill a model served by the built-in echo provider."""

    def __init__(self, prices: Mapping[str, Price], overridden: Iterable[str] = ()) -> None:
        self._prices = dict(prices)
        self.overridden = frozenset(overridden)
        self._prefixes = sorted(self._prices, key=len, reverse=True)
        self._memo: dict[str, Price | None] = {}

    @classmethod
    def default(cls, overrides: Mapping[str, PriceOverride] | None = None) -> PriceTable:
        prices = _shipped()
        for model, o in (overrides or {}).items():
            prices[model] = Price(o.input, o.output, o.cached)
        return cls(prices, overrides or ())

    def override(self, model: str) -> Price | None:
        """The price set on purpose for exactly this name, if any."""
        return self._prices.get(model) if model in self.overridden else None

    def lookup(self, model: str) -> Price | None:
        if model in self._memo:
            return self._memo[model]
        found = self._prices.get(model)
        if found is None:
            bare = model.rsplit("/", 1)[-1]
            for prefix in self._prefixes:
                if bare.startswith(prefix):
                    found = self._prices[prefix]
                    break
        if len(self._memo) < 10_000:
            self._memo[model] = found
        return found

    def models(self) -> dict[str, Price]:
        return dict(self._prices)
