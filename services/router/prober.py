"""Active health checks: every ``interval_s`` each provider of the current
routing snapshot gets one cheap call (``Provider.probe``: the model list of
OpenAI-format servers, a reachability GET elsewhere, nothing for echo).

The result feeds the breaker (strategies.py): a failed check holds the
provider's deployments in cooldown before any request has to fail on them,
and a passing one closes a cooldown early. It is shown in /metrics
(``gateway_provider_healthy``, ``gateway_provider_probe_latency_seconds``)
and, through the registry, in `gateway providers` (a mesh router sends each
round's results to the registry: tokgateway/mesh_health.py).

Checks of all providers run concurrently, each bounded by ``timeout_s``, so
one hung upstream cannot delay the others. The first round runs one interval
after start: a gateway that just started has no evidence worth acting on yet,
and short-lived runs send no extra upstream calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tokgateway.common.errors import GatewayError
from tokgateway.common.metrics import RouterMetrics
from tokgateway.router.providers import Provider
from tokgateway.router.strategies import Breaker

log = logging.getLogger("tokgateway.router")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    latency_s: float
    checked_at: float  # wall clock, for people
    error: str = ""

    def public(self, now: float) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "latency_ms": round(self.latency_s * 1000, 1),
            "checked_s_ago": round(max(now - self.checked_at, 0.0), 1),
            "error": self.error,
        }


class Prober:
    def __init__(
        self,
        providers: Callable[[], Mapping[str, Provider]],
        breaker: Breaker,
        metrics: RouterMetrics | None = None,
        *,
        interval_s: float,
        timeout_s: float = 5.0,
    ) -> None:
        self.providers = providers
        self.breaker = breaker
        self.metrics = metrics
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.results: dict[str, ProbeResult] = {}
        # called with every round's results (all providers of the snapshot)
        self.listeners: list[Callable[[Mapping[str, ProbeResult]], None]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin the periodic checks (none when the interval is 0)."""
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="provider-health-checks")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_all()
            except Exception:  # the loop outlives one bad round; the next one retries
                log.exception("provider health checks failed")

    async def check_all(self) -> dict[str, ProbeResult]:
        """One round over the snapshot's providers; returns (and keeps) the results."""
        providers = dict(self.providers())
        results = await asyncio.gather(*(self._check(p) for p in providers.values()))
        for name in set(self.results) - set(providers):
            # gone from the snapshot: its verdict must not hold a later provider of that name
            del self.results[name]
            self.breaker.probed(name, True)
            if self.metrics is not None:
                self.metrics.drop_probe(name)
        for name, result in zip(providers, results, strict=True):
            was = self.results.get(name)
            self.results[name] = result
            self.breaker.probed(name, result.healthy)
            if self.metrics is not None:
                self.metrics.set_probe(name, result.healthy, result.latency_s)
            if was is not None and was.healthy != result.healthy:
                level = logging.INFO if result.healthy else logging.WARNING
                state = "healthy again" if result.healthy else "failed its health check"
                log.log(level, "provider %s", state, extra={"provider": name, "err": result.error})
        for listener in self.listeners:
            listener(MappingProxyType(self.results))
        return dict(self.results)

    async def _check(self, provider: Provider) -> ProbeResult:
        started = time.monotonic()
        error = ""
        try:
            async with asyncio.timeout(self.timeout_s):
                await provider.probe()
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except GatewayError as exc:
            error = str(exc)
        return ProbeResult(not error, time.monotonic() - started, time.time(), error)

    def public(self) -> dict[str, dict[str, Any]]:
        """Provider name -> its last result, for `gateway providers`."""
        now = time.time()
        return {name: r.public(now) for name, r in self.results.items()}
