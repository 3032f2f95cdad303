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

    def estimate(self, prompt_tokens: int, completion_tokens: int) -> float:
        """``cost`` of an answer not yet given (no cache reads or writes)."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000

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
    return parse_table(shipped_table())[1]


def shipped_table() -> dict[str, object]:
    raw = resources.files("tokgateway.common").joinpath("data/prices.json").read_bytes()
    return dict(orjson.loads(raw))


def parse_table(raw: object) -> tuple[str, dict[str, Price]]:
    """A price table document (the shape of data/prices.json: ``as_of`` and
    ``models`` name -> [input, output, cached, cache write]) -> its date and
    prices. Raises ValueError naming what is wrong."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise ValueError("a price table is an object with 'models' (and 'as_of')")
    as_of = raw.get("as_of")
    if not isinstance(as_of, str) or not as_of:
        raise ValueError("the price table needs 'as_of', the date its prices were read")
    prices = {}
    for name, vals in raw["models"].items():
        if (
            not isinstance(vals, list)
            or not 2 <= len(vals) <= 4
            or not all(
                v is None or (isinstance(v, int | float) and not isinstance(v, bool) and v >= 0)
                for v in vals
            )
            or vals[0] is None
            or vals[1] is None
        ):
            raise ValueError(f"model {name!r}: expected [input, output, cached?, cache_write?]")
        prices[str(name)] = Price(*(float(v) if v is not None else None for v in vals))  # type: ignore[arg-type]
    return as_of, prices


class PriceTable:
    """``overridden``: the names the operator priced on purpose ([prices], the
    admin API); only those bill a model served by the built-in echo provider.
    ``scoped``: prices of one provider's model, keyed by (provider name,
    upstream model): what a marketplace listing bills for the deployments of
    the provider `market use` made, whatever this table says of the name."""

    def __init__(
        self,
        prices: Mapping[str, Price],
        overridden: Iterable[str] = (),
        scoped: Mapping[tuple[str, str], Price] | None = None,
    ) -> None:
        self._prices = dict(prices)
        self.overridden = frozenset(overridden)
        self.scoped: Mapping[tuple[str, str], Price] = dict(scoped or {})
        self._prefixes = sorted(self._prices, key=len, reverse=True)
        self._memo: dict[str, Price | None] = {}

    @classmethod
    def default(
        cls,
        overrides: Mapping[str, PriceOverride] | None = None,
        base: Mapping[str, Price] | None = None,
        scoped: Mapping[tuple[str, str], Price] | None = None,
    ) -> PriceTable:
        """``base``: a refreshed table (`gateway prices refresh`) instead of the shipped one."""
        prices = dict(base) if base is not None else _shipped()
        for model, o in (overrides or {}).items():
            prices[model] = Price(o.input, o.output, o.cached, o.cache_write)
        return cls(prices, overrides or (), scoped)

    def price_for(
        self, provider_name: str, provider_kind: str, upstream_model: str, model: str
    ) -> Price | None:
        """What a request is billed at when ``provider_name`` (of kind
        ``provider_kind``) serves ``upstream_model`` for the ``model`` the
        client asked for: the provider's own price for that model first (a
        listing in use); echo costs nothing unless a name is priced on purpose;
        else the upstream model's price, then the asked-for name's."""
        if self.scoped:
            found = self.scoped.get((provider_name, upstream_model))
            if found is not None:
                return found
        if provider_kind == "echo":
            return self.override(upstream_model) or self.override(model)
        return self.lookup(upstream_model) or self.lookup(model)

    def provider_price(self, provider_name: str, model: str) -> Price | None:
        """The provider's own price for ``model``, else the table's for the name."""
        return self.scoped.get((provider_name, model)) or self.lookup(model)

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
