"""The route snapshot the router resolves models against.

Built by the registry, held in memory by the router, replaced whole when the
registry changes: resolving never touches a database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from tokgateway.common.errors import NotFound
from tokgateway.common.pricing import Price, PriceTable
from tokgateway.common.settings import ProviderConfig, RouteRule

MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: ProviderConfig
    upstream_model: str
    # its key in routing stats and the breaker: provider and upstream model
    # (provider names never hold a ':'); resolutions are memoised, so it is
    # built once per deployment, not per request
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.provider.name}:{self.upstream_model}")


@dataclass(frozen=True, slots=True)
class Resolution:
    model: str  # the name the client asked for
    target: str  # after alias expansion
    deployments: tuple[Deployment, ...]


class RouteTable:
    def __init__(
        self,
        *,
        rules: Sequence[RouteRule],
        aliases: Mapping[str, str],
        providers: Mapping[str, ProviderConfig],
        primary: str | None,
        prices: PriceTable,
        strategies: Mapping[str, tuple[str, Mapping[str, float]]] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.aliases = dict(aliases)
        self.providers = dict(providers)
        self.primary = primary or None
        self.prices = prices
        # route pattern -> (strategy, provider weights); see router/strategies.py
        self.strategies = dict(strategies or {})
        self._memo: dict[str, Resolution] = {}
        self._routing: dict[str, dict[str, Any]] = {}
        self._first_price: dict[tuple[str, str], Price | None] = {}

    def resolve(self, model: str) -> Resolution:
        found = self._memo.get(model)
        if found is not None:
            return found
        target = model
        for _ in range(MAX_ALIAS_DEPTH):
            nxt = self.aliases.get(target)
            if nxt is None:
                break
            target = nxt
        deployments: tuple[Deployment, ...] = ()
        for rule in self.rules:
            if rule.pattern == target or fnmatchcase(target, rule.pattern):
                deployments = tuple(
                    Deployment(self.providers[t.provider], t.upstream_model or target)
                    for t in rule.targets
                    if t.provider in self.providers
                )
                break
        if not deployments and self.primary:
            deployments = (Deployment(self.providers[self.primary], target),)
        if not deployments:
            raise NotFound(
                f"The model `{model}` does not exist or no provider is routed for it.",
                code="model_not_found",
                param="model",
            )
        res = Resolution(model, target, deployments)
        if len(self._memo) < 10_000:
            self._memo[model] = res
        return res

    def first_price(self, resolution: Resolution) -> Price | None:
        """What the first deployment of a resolution bills its model at (the
        estimate limits and budgets book), memoised like ``resolve``."""
        dep = resolution.deployments[0]  # a strategy may have put another first
        memo, at = self._first_price, (dep.key, resolution.model)
        if at in memo:
            return memo[at]
        found = self.prices.price_for(
            dep.provider.name, dep.provider.kind, dep.upstream_model, resolution.model
        )
        if len(memo) < 10_000:
            memo[at] = found
        return found

    def routing(self, target: str) -> dict[str, Any]:
        """How a route's deployments are ordered: the first [strategies]
        pattern matching ``target``, else priority (the listed order).
        Memoised per target like ``resolve``; callers do not change it."""
        found = self._routing.get(target)
        if found is not None:
            return found
        found = {"strategy": "priority", "weights": {}, "prices": self.prices}
        for pattern, (strategy, weights) in self.strategies.items():
            if pattern == target or fnmatchcase(target, pattern):
                found = {"strategy": strategy, "weights": weights, "prices": self.prices}
                break
        if len(self._routing) < 10_000:
            self._routing[target] = found
        return found

    def listed_models(self) -> list[tuple[str, str]]:
        """(model id, owner) for /v1/models: exact route names, aliases and
        the echo model; glob patterns are not models."""
        seen: dict[str, str] = {}
        for rule in self.rules:
            if not any(ch in rule.pattern for ch in "*?["):
                seen.setdefault(rule.pattern, rule.targets[0].provider)
        for alias in self.aliases:
            try:
                res = self.resolve(alias)
            except NotFound:
                continue
            seen.setdefault(alias, res.deployments[0].provider.name)
        if "echo" in self.providers:
            seen.setdefault("echo", "echo")
        return sorted(seen.items())
