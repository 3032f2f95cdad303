"""In which order a route's deployments are tried.

Pure parts first: ``parse_provider`` reads OpenRouter's per-request
``provider`` object (order, only, ignore, sort, max_price, allow_fallbacks)
and takes it out of the body before it goes upstream; ``order`` puts the
candidates in order for a strategy (priority, weighted, cheapest, fastest,
least-busy) from a snapshot of what is known about each deployment, with
deployments in cooldown moved last. Then the live state the router keeps:
``Breaker`` (consecutive failures open a cooldown), ``Window`` (sliding
latencies, p50) and ``Chooser``, which joins them for one request."""

from __future__ import annotations

import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokgateway.common.errors import BadRequest, NotFound
from tokgateway.common.routing import Deployment, Resolution

STRATEGIES = ("priority", "weighted", "cheapest", "fastest", "least-busy")
# OpenRouter's `provider.sort` values, and ours
SORTS = {
    "price": "cheapest",
    "latency": "fastest",
    "throughput": "least-busy",
    **{s: s for s in STRATEGIES},
}
# the request the cheapest strategy prices: tokens in, out
TYPICAL = (2000, 500)


@dataclass(frozen=True, slots=True)
class ProviderPrefs:
    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    sort: str | None = None
    max_prompt: float | None = None  # USD per million input tokens
    max_completion: float | None = None
    allow_fallbacks: bool = True


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    p50_ms: float | None = None
    inflight: int = 0
    cooling: bool = False
    weight: float = 1.0
    price: tuple[float, float] | None = None  # input, output USD per million


def _names(raw: Any, param: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise BadRequest(f"'provider.{param}' must be a list of provider names.", param=param)
    return tuple(raw)


def _price(raw: Any, param: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise BadRequest(f"'provider.max_price.{param}' must be a non-negative number.")
    return float(raw)


def parse_provider(body: dict[str, Any]) -> tuple[ProviderPrefs | None, dict[str, Any]]:
    """The preferences and the body without them (never sent upstream)."""
    if "provider" not in body:
        return None, body
    rest = {k: v for k, v in body.items() if k != "provider"}
    raw = body["provider"]
    if raw is None:
        return None, rest
    if not isinstance(raw, dict):
        raise BadRequest("'provider' must be an object.", param="provider")
    sort = raw.get("sort")
    if sort is not None and sort not in SORTS:
        raise BadRequest(
            f"'provider.sort' must be one of {', '.join(sorted(SORTS))}.", param="provider"
        )
    max_price = raw.get("max_price") or {}
    if not isinstance(max_price, dict):
        raise BadRequest("'provider.max_price' must be an object.", param="provider")
    fallbacks = raw.get("allow_fallbacks", True)
    if not isinstance(fallbacks, bool):
        raise BadRequest("'provider.allow_fallbacks' must be true or false.", param="provider")
    prefs = ProviderPrefs(
        order=_names(raw.get("order"), "order"),
        only=_names(raw.get("only"), "only"),
        ignore=_names(raw.get("ignore"), "ignore"),
        sort=SORTS[sort] if sort else None,
        max_prompt=_price(max_price.get("prompt"), "prompt"),
        max_completion=_price(max_price.get("completion"), "completion"),
        allow_fallbacks=fallbacks,
    )
    return prefs, rest


def dep_key(d: Deployment) -> str:
    """A deployment's key in stats and the breaker: provider and upstream model
    (provider names never hold a ':')."""
    return d.key


def _cost(stats: DeploymentStats | None) -> float:
    if stats is None or stats.price is None:
        return float("inf")
    return (TYPICAL[0] * stats.price[0] + TYPICAL[1] * stats.price[1]) / 1_000_000


def order(
    candidates: Sequence[Deployment],
    stats: Mapping[str, DeploymentStats],
    strategy: str,
    override: ProviderPrefs | None = None,
    *,
    rng: Callable[[], float] = random.random,
) -> list[Deployment]:
    """The deployments to try, in order. ``stats`` is keyed by ``dep_key``;
    the ``provider`` preferences name providers. A deployment in cooldown goes
    last (still tried when nothing else is)."""
    prefs = override or ProviderPrefs()
    strategy = prefs.sort or strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    deps = [d for d in candidates if not prefs.only or d.provider.name in prefs.only]
    deps = [d for d in deps if d.provider.name not in prefs.ignore]
    if prefs.max_prompt is not None or prefs.max_completion is not None:

        def affordable(d: Deployment) -> bool:
            s = stats.get(dep_key(d))
            if s is None or s.price is None:
                return False
            return (prefs.max_prompt is None or s.price[0] <= prefs.max_prompt) and (
                prefs.max_completion is None or s.price[1] <= prefs.max_completion
            )

        deps = [d for d in deps if affordable(d)]

    def get(d: Deployment) -> DeploymentStats:
        return stats.get(dep_key(d)) or DeploymentStats()

    if strategy == "weighted":
        # weighted random order without replacement (Efraimidis-Spirakis keys)
        keyed = [(rng() ** (1.0 / max(get(d).weight, 1e-9)), i) for i, d in enumerate(deps)]
        deps = [deps[i] for _, i in sorted(keyed, reverse=True)]
    elif strategy == "cheapest":
        deps.sort(key=lambda d: _cost(stats.get(dep_key(d))))
    elif strategy == "fastest":
        # unmeasured ones keep their place after the measured
        deps.sort(key=lambda d: (get(d).p50_ms is None, get(d).p50_ms or 0.0))
    elif strategy == "least-busy":
        deps.sort(key=lambda d: get(d).inflight)
    if prefs.order:
        rank = {name: i for i, name in enumerate(prefs.order)}
        deps.sort(key=lambda d: rank.get(d.provider.name, len(rank)))
    deps.sort(key=lambda d: get(d).cooling)  # stable: healthy ones first, in order
    if not prefs.allow_fallbacks:
        deps = deps[:1]
    return deps


# -- live state -------------------------------------------------------------------------
class Window:
    """The last ``size`` latencies of one deployment."""

    def __init__(self, size: int = 64) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._values.append(ms)

    def p50(self) -> float | None:
        return statistics.median(self._values) if self._values else None


@dataclass
class _BreakerState:
    failures: int = 0
    open_until: float = 0.0


class Breaker:
    """``threshold`` consecutive failures put a deployment in cooldown for
    ``cooldown_s``; afterwards one request may try it (half open): a success
    closes the breaker, a failure opens it again at once.

    Health checks (prober.py) act on a whole provider: a failed probe holds
    every deployment of it in cooldown until a probe (or a request) succeeds;
    a good probe also closes the provider's deployments that were cooling."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.on_change = on_change
        self._states: dict[str, _BreakerState] = {}
        self._down: set[str] = set()  # providers whose last health check failed

    @property
    def idle(self) -> bool:
        """Nothing failed: routing needs no look at the breaker."""
        return not self._states and not self._down

    def cooling(self, name: str, now: float) -> bool:
        state = self._states.get(name)
        if state is not None and state.open_until > now:
            return True
        return bool(self._down) and name.partition(":")[0] in self._down

    def success(self, name: str) -> None:
        state = self._states.pop(name, None)
        if state is not None and state.open_until and self.on_change is not None:
            self.on_change(name, False)
        if self._down:
            self._provider_up(name.partition(":")[0])

    def probed(self, provider: str, ok: bool) -> None:
        """A health check of ``provider`` passed or failed."""
        if not ok:
            if provider not in self._down:
                self._down.add(provider)
                if self.on_change is not None:
                    self.on_change(provider + ":", True)
            return
        for name in [n for n, s in self._states.items() if n.partition(":")[0] == provider]:
            if self._states[name].open_until:
                self.success(name)
        self._provider_up(provider)

    def _provider_up(self, provider: str) -> None:
        if provider in self._down:
            self._down.discard(provider)
            if self.on_change is not None:
                self.on_change(provider + ":", False)

    def down(self) -> frozenset[str]:
        """The providers held out by a failed health check."""
        return frozenset(self._down)

    def failure(self, name: str, now: float) -> None:
        state = self._states.setdefault(name, _BreakerState())
        state.failures += 1
        if state.failures >= self.threshold:
            was_open = state.open_until > 0
            state.open_until = now + self.cooldown_s
            if not was_open and self.on_change is not None:
                self.on_change(name, True)

    def states(self, now: float) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "failures": s.failures,
                "cooling": s.open_until > now,
                "cooldown_left_s": round(max(s.open_until - now, 0.0), 1),
            }
            for name, s in self._states.items()
        }


@dataclass
class Chooser:
    """The router's routing state: latencies, requests in flight and the
    breaker, per deployment (``dep_key``). ``choose`` orders one request's deployments;
    ``observe`` records how the attempts went."""

    breaker: Breaker = field(default_factory=Breaker)
    windows: dict[str, Window] = field(default_factory=dict)
    inflight: dict[str, int] = field(default_factory=dict)

    @classmethod
    def with_metrics(cls, metrics: Any) -> Chooser:
        if metrics is None:
            return cls()

        def on_change(key: str, cooling: bool) -> None:
            metrics.set_cooldown(key.partition(":")[0], cooling)

        return cls(breaker=Breaker(on_change=on_change))

    def snapshot(
        self, candidates: Sequence[Deployment], prices: Any, weights: Mapping[str, float]
    ) -> dict[str, DeploymentStats]:
        now = time.monotonic()
        out = {}
        for d in candidates:
            name = dep_key(d)
            price = (
                prices.provider_price(d.provider.name, d.upstream_model)
                if prices is not None
                else None
            )
            window = self.windows.get(name)
            out[name] = DeploymentStats(
                p50_ms=window.p50() if window else None,
                inflight=self.inflight.get(name, 0),
                cooling=self.breaker.cooling(name, now),
                weight=weights.get(d.provider.name, 1.0),
                price=(price.input, price.output) if price is not None else None,
            )
        return out

    def choose(
        self,
        resolution: Resolution,
        body: dict[str, Any],
        *,
        strategy: str = "priority",
        prices: Any = None,
        weights: Mapping[str, float] | None = None,
    ) -> tuple[Resolution, dict[str, Any]]:
        """The resolution with its deployments ordered, and the body without
        ``provider`` (what goes upstream)."""
        prefs, body = parse_provider(body)
        if prefs is None and strategy == "priority" and self.breaker.idle:
            return resolution, body  # the common case costs nothing
        stats = self.snapshot(resolution.deployments, prices, weights or {})
        ordered = order(resolution.deployments, stats, strategy, prefs)
        if ordered:
            self.started(dep_key(ordered[0]))
        else:
            raise NotFound(
                f"No provider for `{resolution.model}` meets the request's provider preferences.",
                code="no_provider_matches",
                param="provider",
            )
        return Resolution(resolution.model, resolution.target, tuple(ordered)), body

    def started(self, name: str) -> None:
        self.inflight[name] = self.inflight.get(name, 0) + 1

    def done(
        self, resolution: Resolution | None, attempts: int, ok: bool | None, meter: Any
    ) -> None:
        """A request ended (its stream too): ``ok`` when the upstream answered
        in full, None when the client left first (no verdict on the provider);
        records the attempts and the request leaves the in-flight count."""
        if resolution is None or not resolution.deployments:
            return
        first = resolution.deployments[0].key
        if self.inflight and first in self.inflight:
            self.finished(first)
        if ok is None:
            return
        if ok and attempts == 1 and self.breaker.idle:
            # the common case: the first deployment answered and nothing failed lately
            latency = upstream_ms(meter)
            if latency is not None:
                window = self.windows.get(first)
                if window is None:
                    window = self.windows[first] = Window()
                window.add(latency)
            return
        tried = attempted(resolution, attempts)
        self.observe(tried, ok, upstream_ms(meter) if ok else None)

    def observe(self, tried: Sequence[str], ok: bool, latency_ms: float | None) -> None:
        """``tried``: the providers attempted, in order; all but the last
        failed, the last one as ``ok`` says."""
        now = time.monotonic()
        for name in tried[:-1]:
            self.breaker.failure(name, now)
        if not tried:
            return
        last = tried[-1]
        if ok:
            self.breaker.success(last)
            if latency_ms is not None:
                window = self.windows.get(last)
                if window is None:
                    window = self.windows[last] = Window()
                window.add(latency_ms)
        else:
            self.breaker.failure(last, now)

    def finished(self, name: str) -> None:
        left = self.inflight.get(name, 0) - 1
        if left > 0:
            self.inflight[name] = left
        else:
            self.inflight.pop(name, None)


def attempted(resolution: Resolution | None, attempts: int) -> list[str]:
    """The providers a request tried, in order (forward tries them in turn)."""
    if resolution is None:
        return []
    return [d.key for d in resolution.deployments[: max(attempts, 0)]]


def upstream_ms(meter: Any) -> float | None:
    """The wait for the answering upstream's head, in ms (``meter``: the
    request's context, or anything with its two times)."""
    started = getattr(meter, "upstream_started", None)
    headers = getattr(meter, "upstream_headers", None)
    if not started or not headers:
        return None
    return round((float(headers) - float(started)) * 1000, 2)
