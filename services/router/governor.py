"""Limits and budgets: whether a request of a key may go upstream.

A request counts against its key, the key's user and the key's team (each a
``Scope`` with ``Limits``): requests per minute, tokens per minute and a USD
budget per period. ``reserve`` books the request's estimate on every counter
at once, or on none when one would go past its limit; ``settle`` replaces the
estimate with what the request really used; ``release`` gives it all back.

Counters are plain numbers under names (``Check.counter``); the backends only
differ in where the numbers live and how they are changed atomically:
in-process (one worker), SQLite (``gateway run --workers N``) or Redis (router
replicas). Budget counters start from the ledger's spend of the period
(``SpendSource``) the first time a backend meets them."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tokgateway.common.contracts import KeyInfo, Scope, SpendSource
from tokgateway.common.errors import RateLimited
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.periods import period_end, period_id, period_start

WINDOW = 60  # seconds of an rpm/tpm window
EPSILON = 1e-9  # float slack when comparing USD sums


class BudgetExceeded(RateLimited):
    """A spend budget of the gateway is used up (OpenAI's insufficient_quota)."""

    error_type = "insufficient_quota"


@dataclass(frozen=True, slots=True)
class Check:
    """One counter a request books: ``amount`` against ``limit``."""

    counter: str
    scope: str  # key | user | team
    scope_id: str
    metric: str  # rpm | tpm | budget
    limit: float
    amount: float
    ttl: float | None  # seconds the counter lives; None: forever
    period: str = ""  # budgets: day|week|month|total
    since: float = 0.0  # budgets: start of the period (ledger query)


@dataclass(slots=True)
class Reservation:
    """What ``reserve`` booked; ``settle`` or ``release`` it exactly once."""

    checks: tuple[Check, ...]
    tokens: int
    cost: float
    headers: dict[str, str] = field(default_factory=dict)
    done: bool = False


@dataclass(slots=True)
class Outcome:
    """A backend's answer: the counters' values after booking, or the index
    of the check that did not fit (its value before), or budget counters the
    backend has not seen yet (seed them, then try again)."""

    values: list[float] = field(default_factory=list)
    rejected: int | None = None
    missing: list[int] = field(default_factory=list)


class Governor(Protocol):
    async def reserve(self, key: KeyInfo, tokens: int, cost: float) -> Reservation | None:
        """Book a request; None when the key has no limits anywhere. Raises
        ``RateLimited`` (or ``BudgetExceeded``) and books nothing when a limit
        is reached."""

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """Replace the estimate with the real tokens and cost (never waits)."""

    def release(self, reservation: Reservation) -> None:
        """The request used nothing: give its tokens and cost back (never waits)."""

    async def close(self) -> None: ...


def checks_for(scopes: Sequence[Scope], tokens: int, cost: float, now: float) -> list[Check]:
    window = int(now // WINDOW)
    out: list[Check] = []
    for scope in scopes:
        lim = scope.limits
        tag = f"{scope.kind}:{scope.id}"
        if lim.rpm is not None:
            out.append(
                Check(f"r:{tag}:{window}", scope.kind, scope.id, "rpm", lim.rpm, 1, WINDOW * 2)
            )
        if lim.tpm is not None:
            # a request larger than the whole limit still passes in an empty window
            amount = min(tokens, lim.tpm)
            out.append(
                Check(f"t:{tag}:{window}", scope.kind, scope.id, "tpm", lim.tpm, amount, WINDOW * 2)
            )
        if lim.budget_usd is not None:
            period = lim.budget_period
            end = period_end(period, now)
            out.append(
                Check(
                    f"b:{tag}:{period}:{period_id(period, now)}",
                    scope.kind,
                    scope.id,
                    "budget",
                    lim.budget_usd,
                    cost,
                    None if end is None else end - now + 86400,
                    period,
                    period_start(period, now),
                )
            )
    return out


def _reset(now: float) -> str:
    return f"{max(1, math.ceil(WINDOW - now % WINDOW))}s"


def rate_headers(checks: Sequence[Check], values: Sequence[float], now: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the tightest rpm and tpm booked."""
    headers: dict[str, str] = {}
    for metric, noun in (("rpm", "requests"), ("tpm", "tokens")):
        best: tuple[float, float] | None = None
        for check, value in zip(checks, values, strict=True):
            if check.metric == metric:
                left = max(check.limit - value, 0.0)
                if best is None or left < best[1]:
                    best = (check.limit, left)
        if best is not None:
            headers[f"x-ratelimit-limit-{noun}"] = str(int(best[0]))
            headers[f"x-ratelimit-remaining-{noun}"] = str(int(best[1]))
            headers[f"x-ratelimit-reset-{noun}"] = _reset(now)
    return headers


def refusal(check: Check, value: float, now: float) -> RateLimited:
    who = f"{check.scope} `{check.scope_id}`"
    if check.metric == "budget":
        period = "in total" if check.period == "total" else f"per {check.period}"
        return BudgetExceeded(
            f"Budget of ${check.limit:.2f} {period} for {who} is used up "
            f"(${value:.4f} spent or reserved; gateway budget).",
            code="budget_exceeded",
            headers={"x-gateway-error": "budget", "x-should-retry": "false"},
        )
    wait = max(1, math.ceil(WINDOW - now % WINDOW))
    noun = "requests" if check.metric == "rpm" else "tokens"
    headers = {
        "x-gateway-error": "rate_limit",
        "retry-after": str(wait),
        f"x-ratelimit-limit-{noun}": str(int(check.limit)),
        f"x-ratelimit-remaining-{noun}": str(int(max(check.limit - value, 0))),
        f"x-ratelimit-reset-{noun}": f"{wait}s",
    }
    return RateLimited(
        f"Rate limit of {int(check.limit)} {noun} per minute reached for {who} "
        f"(gateway limit). Retry in {wait} s.",
        code="gateway_rate_limit",
        headers=headers,
    )


class CounterGovernor:
    """The protocol on top of a counter backend: ``_book`` (atomic check and
    add), ``_seed`` (set a counter unless it exists) and ``_add`` (adjust)."""

    def __init__(self, spend: SpendSource | None, metrics: RouterMetrics | None = None) -> None:
        self.spend = spend
        self.metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()

    async def _book(self, checks: Sequence[Check], now: float) -> Outcome:
        raise NotImplementedError

    async def _seed(self, check: Check, value: float) -> None:
        raise NotImplementedError

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        raise NotImplementedError

    async def reserve(self, key: KeyInfo, tokens: int, cost: float) -> Reservation | None:
        if not key.scopes:
            return None
        now = time.time()
        checks = checks_for(key.scopes, tokens, cost, now)
        if not checks:
            return None
        for _ in range(3):
            outcome = await self._book(checks, now)
            if not outcome.missing:
                break
            for i in outcome.missing:
                await self._seed(checks[i], await self._spent(checks[i]))
        else:
            raise RuntimeError("budget counters could not be seeded")
        if outcome.rejected is not None:
            check = checks[outcome.rejected]
            if self.metrics is not None:
                self.metrics.reject(check.scope, check.scope_id, check.metric)
            raise refusal(check, outcome.values[0] if outcome.values else 0.0, now)
        self._observe(checks, outcome.values)
        return Reservation(tuple(checks), tokens, cost, rate_headers(checks, outcome.values, now))

    async def _spent(self, check: Check) -> float:
        if self.spend is None:
            return 0.0
        return await self.spend.spend_since(check.scope, check.scope_id, check.since)

    def _observe(self, checks: Sequence[Check], values: Sequence[float]) -> None:
        if self.metrics is None:
            return
        for check, value in zip(checks, values, strict=True):
            if check.metric == "budget":
                self.metrics.budget(check.scope, check.scope_id, check.period, value, check.limit)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        if reservation.done:
            return
        reservation.done = True
        deltas: list[tuple[Check, float]] = []
        for check in reservation.checks:
            if check.metric == "tpm":
                delta = float(tokens) - check.amount
            elif check.metric == "budget":
                delta = cost - check.amount
            else:
                continue
            if delta != 0.0:
                deltas.append((check, delta))
        if deltas:
            self._apply_later(deltas)

    def release(self, reservation: Reservation) -> None:
        self.settle(reservation, 0, 0.0)

    def _apply_later(self, deltas: list[tuple[Check, float]]) -> None:
        task = asyncio.get_running_loop().create_task(self._add(deltas))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for adjustments still on their way (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()


class LocalGovernor(CounterGovernor):
    """Counters in process memory: one router worker. Booking is synchronous,
    so atomic by construction on the event loop."""

    def __init__(self, spend: SpendSource | None, metrics: RouterMetrics | None = None) -> None:
        super().__init__(spend, metrics)
        self._values: dict[str, float] = {}
        self._window = 0

    def book_now(self, checks: Sequence[Check], now: float) -> Outcome:
        window = int(now // WINDOW)
        if window != self._window:
            self._window = window
            self._values = {k: v for k, v in self._values.items() if k.startswith("b:")}
        values = self._values
        missing = [
            i for i, c in enumerate(checks) if c.metric == "budget" and c.counter not in values
        ]
        if missing:
            return Outcome(missing=missing)
        for i, c in enumerate(checks):
            current = values.get(c.counter, 0.0)
            if current + c.amount > c.limit + EPSILON:
                return Outcome(values=[current], rejected=i)
        after = []
        for c in checks:
            value = values.get(c.counter, 0.0) + c.amount
            values[c.counter] = value
            after.append(value)
        return Outcome(values=after)

    async def _book(self, checks: Sequence[Check], now: float) -> Outcome:
        return self.book_now(checks, now)

    async def _seed(self, check: Check, value: float) -> None:
        self._values.setdefault(check.counter, value)

    def add_now(self, deltas: list[tuple[Check, float]]) -> None:
        for check, delta in deltas:
            if check.counter in self._values:
                self._values[check.counter] += delta
                if check.metric == "budget" and self.metrics is not None:
                    value = self._values[check.counter]
                    self.metrics.budget(
                        check.scope, check.scope_id, check.period, value, check.limit
                    )

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        self.add_now(deltas)

    def _apply_later(self, deltas: list[tuple[Check, float]]) -> None:
        self.add_now(deltas)  # nothing to wait for

    def value(self, counter_prefix: str) -> float:
        """The sum of counters whose name starts with ``counter_prefix`` (tests)."""
        return sum(v for k, v in self._values.items() if k.startswith(counter_prefix))
