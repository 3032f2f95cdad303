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
    """One counter a request books against ``limit`` (the amount is per request)."""

    counter: str
    scope: str  # key | user | team
    scope_id: str
    metric: str  # rpm | tpm | budget
    limit: float
    ttl: float | None  # seconds the counter lives; None: forever
    period: str = ""  # budgets: day|week|month|total
    since: float = 0.0  # budgets: start of the period (ledger query)


@dataclass(slots=True)
class Reservation:
    """What ``reserve`` booked; ``settle`` or ``release`` it exactly once."""

    checks: tuple[Check, ...]
    amounts: list[float]
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


def checks_for(scopes: Sequence[Scope], now: float) -> tuple[Check, ...]:
    """The counters of a key's scopes in the minute and budget periods of ``now``."""
    window = int(now // WINDOW)
    out: list[Check] = []
    for scope in scopes:
        lim = scope.limits
        tag = f"{scope.kind}:{scope.id}"
        if lim.rpm is not None:
            out.append(Check(f"r:{tag}:{window}", scope.kind, scope.id, "rpm", lim.rpm, WINDOW * 2))
        if lim.tpm is not None:
            out.append(Check(f"t:{tag}:{window}", scope.kind, scope.id, "tpm", lim.tpm, WINDOW * 2))
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
                    None if end is None else end - now + 86400,
                    period,
                    period_start(period, now),
                )
            )
    return tuple(out)


def amounts_for(checks: Sequence[Check], tokens: int, cost: float) -> list[float]:
    out = []
    for check in checks:
        metric = check.metric
        if metric == "rpm":
            out.append(1.0)
        elif metric == "tpm":
            # a request larger than the whole limit still passes in an empty window
            out.append(float(min(tokens, check.limit)))
        else:
            out.append(cost)
    return out


def _reset(now: float) -> str:
    return f"{max(1, math.ceil(WINDOW - now % WINDOW))}s"


def rate_headers(checks: Sequence[Check], values: Sequence[float], now: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the tightest rpm and tpm booked."""
    req_limit = req_left = tok_limit = tok_left = -1.0
    for i, check in enumerate(checks):
        metric = check.metric
        if metric == "budget":
            continue
        left = check.limit - values[i]
        if metric == "rpm":
            if req_limit < 0 or left < req_left:
                req_limit, req_left = check.limit, left
        elif tok_limit < 0 or left < tok_left:
            tok_limit, tok_left = check.limit, left
    if req_limit < 0 and tok_limit < 0:
        return {}
    reset = _reset(now)
    headers: dict[str, str] = {}
    if req_limit >= 0:
        headers["x-ratelimit-limit-requests"] = str(int(req_limit))
        headers["x-ratelimit-remaining-requests"] = str(max(int(req_left), 0))
        headers["x-ratelimit-reset-requests"] = reset
    if tok_limit >= 0:
        headers["x-ratelimit-limit-tokens"] = str(int(tok_limit))
        headers["x-ratelimit-remaining-tokens"] = str(max(int(tok_left), 0))
        headers["x-ratelimit-reset-tokens"] = reset
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
        self._plans: dict[str, tuple[tuple[Scope, ...], int, tuple[Check, ...]]] = {}
        self._dirty: dict[str, Check] = {}
        self._gauged = 0.0

    async def _book(self, checks: Sequence[Check], amounts: Sequence[float], now: float) -> Outcome:
        raise NotImplementedError

    async def _seed(self, check: Check, value: float) -> None:
        raise NotImplementedError

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        raise NotImplementedError

    def _checks(self, key: KeyInfo, now: float) -> tuple[Check, ...]:
        """The key's counters, built once a minute per key."""
        window = int(now // WINDOW)
        cached = self._plans.get(key.id)
        if cached is not None and cached[0] is key.scopes and cached[1] == window:
            return cached[2]
        checks = checks_for(key.scopes, now)
        if len(self._plans) >= 100_000:
            self._plans.clear()
        self._plans[key.id] = (key.scopes, window, checks)
        return checks

    async def reserve(self, key: KeyInfo, tokens: int, cost: float) -> Reservation | None:
        if not key.scopes:
            return None
        now = time.time()
        checks = self._checks(key, now)
        if not checks:
            return None
        amounts = amounts_for(checks, tokens, cost)
        for _ in range(3):
            outcome = await self._book(checks, amounts, now)
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
        headers = rate_headers(checks, outcome.values, now)
        return Reservation(checks, amounts, tokens, cost, headers)

    async def _spent(self, check: Check) -> float:
        if self.spend is None:
            return 0.0
        return await self.spend.spend_since(check.scope, check.scope_id, check.since)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        if reservation.done:
            return
        reservation.done = True
        deltas: list[tuple[Check, float]] = []
        budgets = False
        for check, amount in zip(reservation.checks, reservation.amounts, strict=True):
            metric = check.metric
            if metric == "tpm":
                delta = float(tokens) - amount
            elif metric == "budget":
                delta = cost - amount
                budgets = True
            else:
                continue
            if delta != 0.0:
                deltas.append((check, delta))
        if deltas:
            self._apply_later(deltas)
        if budgets and self.metrics is not None:
            self._budget_gauges(reservation.checks)

    def _budget_gauges(self, checks: Sequence[Check]) -> None:
        """Spend gauges follow settled budgets, refreshed at most once a second."""
        for check in checks:
            if check.metric == "budget":
                self._dirty[check.counter] = check
        now = time.monotonic()
        if now - self._gauged < 1.0:
            return
        self._gauged = now
        dirty, self._dirty = self._dirty, {}
        task = asyncio.get_running_loop().create_task(self._publish_gauges(list(dirty.values())))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish_gauges(self, checks: list[Check]) -> None:
        assert self.metrics is not None
        values = await self._values(checks)
        for check, value in zip(checks, values, strict=True):
            self.metrics.budget(check.scope, check.scope_id, check.period, value, check.limit)

    async def _values(self, checks: Sequence[Check]) -> list[float]:
        raise NotImplementedError

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
        self._counts: dict[str, float] = {}
        self._window = 0

    def book_now(self, checks: Sequence[Check], amounts: Sequence[float], now: float) -> Outcome:
        window = int(now // WINDOW)
        if window != self._window:
            self._window = window
            self._counts = {k: v for k, v in self._counts.items() if k.startswith("b:")}
        values = self._counts
        after = []
        missing: list[int] | None = None
        for i, c in enumerate(checks):
            value = values.get(c.counter)
            if value is None:
                if c.metric == "budget":
                    missing = [*(missing or ()), i]
                    continue
                value = 0.0
            if value + amounts[i] > c.limit + EPSILON:
                return Outcome(values=[value], rejected=i)
            after.append(value + amounts[i])
        if missing is not None:
            return Outcome(missing=missing)
        for c, value in zip(checks, after, strict=True):
            values[c.counter] = value
        return Outcome(values=after)

    async def _book(self, checks: Sequence[Check], amounts: Sequence[float], now: float) -> Outcome:
        return self.book_now(checks, amounts, now)

    async def _seed(self, check: Check, value: float) -> None:
        self._counts.setdefault(check.counter, value)

    def add_now(self, deltas: list[tuple[Check, float]]) -> None:
        values = self._counts
        for check, delta in deltas:
            if check.counter in values:
                values[check.counter] += delta

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        self.add_now(deltas)

    def _apply_later(self, deltas: list[tuple[Check, float]]) -> None:
        self.add_now(deltas)  # nothing to wait for

    async def _values(self, checks: Sequence[Check]) -> list[float]:
        return [self._counts.get(c.counter, 0.0) for c in checks]

    def value(self, counter: str) -> float:
        """One counter's value, 0 when absent."""
        return self._counts.get(counter, 0.0)
