"""[routes], [strategies] and [prices]: which provider takes a model, how a
route picks among its targets, and operator price overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokgateway.common.settings_providers import ProviderConfig
from tokgateway.common.settings_values import ConfigError


@dataclass(frozen=True)
class RouteTarget:
    provider: str
    upstream_model: str | None = None


@dataclass(frozen=True)
class RouteRule:
    pattern: str
    targets: tuple[RouteTarget, ...]


@dataclass(frozen=True)
class PriceOverride:
    input: float
    output: float
    cached: float | None = None


def parse_targets(raw: str, where: str) -> tuple[RouteTarget, ...]:
    targets = []
    for piece in raw.split(","):
        part = piece.strip()
        if not part:
            continue
        provider, _, model = part.partition(":")
        if not provider.strip():
            raise ConfigError(f"{where}: empty provider in {raw!r}")
        targets.append(RouteTarget(provider.strip(), model.strip() or None))
    if not targets:
        raise ConfigError(f"{where}: no provider given")
    return tuple(targets)


ROUTING_STRATEGIES = ("priority", "weighted", "cheapest", "fastest", "least-busy")


def parse_strategy(raw: str, where: str) -> tuple[str, dict[str, float]]:
    """'weighted a=3 b=1', 'cheapest', ...: a strategy and optional weights."""
    parts = raw.split()
    if not parts or parts[0] not in ROUTING_STRATEGIES:
        raise ConfigError(f"{where}: expected one of {', '.join(ROUTING_STRATEGIES)}")
    weights: dict[str, float] = {}
    for piece in parts[1:]:
        name, _, value = piece.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ConfigError(f"{where}: weights are provider=number, got {piece!r}") from None
        if weights[name] < 0:
            raise ConfigError(f"{where}: a weight must not be negative")
    return parts[0], weights


def parse_price(raw: str, where: str) -> PriceOverride:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{where}: expected 'input, output[, cached]' USD per million") from None
    if len(nums) not in (2, 3) or any(n < 0 for n in nums):
        raise ConfigError(f"{where}: expected 'input, output[, cached]' USD per million")
    return PriceOverride(nums[0], nums[1], nums[2] if len(nums) == 3 else None)


def default_routes(providers: Mapping[str, ProviderConfig], taken: set[str]) -> list[RouteRule]:
    defaults: list[tuple[str, str]] = []
    if "openai" in providers:
        defaults += [(p, "openai") for p in ("gpt-*", "o1*", "o3*", "o4*", "text-embedding-*")]
    if "anthropic" in providers:
        defaults.append(("claude-*", "anthropic"))
    if "echo" in providers:
        # only its own name: a mistyped model is a 404, never an echo billed as another
        defaults.append(("echo", "echo"))
    return [
        RouteRule(pattern, (RouteTarget(provider),))
        for pattern, provider in defaults
        if pattern not in taken
    ]
