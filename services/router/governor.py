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
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tokgateway.common.contracts import KeyInfo, Scope, SpendSource
from tokgateway.common.errors import RateLimited
from tokgateway.common.http import header_pairs
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


_KINDS = {"rpm": 0, "tpm": 1, "budget": 2}
_REQUEST_LINES = (
    b"x-ratelimit-limit-requests: %b\r\n"
    b"x-ratelimit-remaining-requests: %d\r\n"
    b"x-ratelimit-reset-requests: %b\r\n"
)
_TOKEN_LINES = (
    b"x-ratelimit-limit-tokens: %b\r\n"
    b"x-ratelimit-remaining-tokens: %d\r\n"
    b"x-ratelimit-reset-tokens: %b\r\n"
)


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """A key's counters in one minute window, with what booking and the
    answer's headers need of them worked out once (a plan lives a minute)."""

    scopes: tuple[Scope, ...]
    window: int
    checks: tuple[Check, ...]
    rpm: tuple[int, ...]  # indices of the rpm checks
    tpm: tuple[int, ...]
    budgets: tuple[int, ...]
    limits: tuple[bytes, ...]  # each check's limit as a header value
    counters: tuple[str, ...]  # each check's counter
    caps: tuple[float, ...]  # each check's limit with the float slack
    kinds: tuple[int, ...]  # each check's metric: 0 rpm, 1 tpm, 2 budget
    min_tpm: float  # the smallest tpm limit (inf: none)
    # one rpm and one tpm check (the usual key): their indices, and the rate
    # headers with the limits written in, the remaining counts and reset to fill
    single: tuple[int, int] | None = None
    template: bytes = b""

    @classmethod
    def of(cls, scopes: tuple[Scope, ...], now: float) -> KeyPlan:
        checks = checks_for(scopes, now)
        rpm = [i for i, c in enumerate(checks) if c.metric == "rpm"]
        tpm = [i for i, c in enumerate(checks) if c.metric == "tpm"]
        single, template = None, b""
        if len(rpm) == 1 and len(tpm) == 1:
            single = (rpm[0], tpm[0])
            template = _REQUEST_LINES.replace(
                b"%b", b"%d" % int(checks[rpm[0]].limit), 1
            ) + _TOKEN_LINES.replace(b"%b", b"%d" % int(checks[tpm[0]].limit), 1)
        return cls(
            scopes,
            int(now // WINDOW),
            checks,
            tuple(i for i, c in enumerate(checks) if c.metric == "rpm"),
            tuple(i for i, c in enumerate(checks) if c.metric == "tpm"),
            tuple(i for i, c in enumerate(checks) if c.metric == "budget"),
            tuple(b"%d" % int(c.limit) for c in checks),
            tuple(c.counter for c in checks),
            tuple(c.limit + EPSILON for c in checks),
            tuple(_KINDS[c.metric] for c in checks),
            min((c.limit for c in checks if c.metric == "tpm"), default=math.inf),
            single,
            template,
        )

    def amounts(self, tokens: int, cost: float) -> list[float]:
        """What one request books on each counter: a request, its tokens (a
        request larger than a whole tpm limit still passes an empty window),
        its cost."""
        if tokens <= self.min_tpm:
            by_kind = (1.0, float(tokens), cost)
            return [by_kind[k] for k in self.kinds]
        out = [cost] * len(self.checks)
        checks = self.checks
        for i in self.rpm:
            out[i] = 1.0
        for i in self.tpm:
            out[i] = float(min(tokens, checks[i].limit))
        return out


@dataclass(slots=True)
class Reservation:
    """What ``reserve`` booked; ``settle`` or ``release`` it exactly once.
    ``lines``: OpenAI's x-ratelimit-* headers for the answer, as header lines
    (``name: value`` and CRLF each), ``count`` of them."""

    plan: KeyPlan
    amounts: list[float]
    tokens: int
    cost: float
    lines: bytes = b""
    count: int = 0
    done: bool = False

    @property
    def checks(self) -> tuple[Check, ...]:
        return self.plan.checks

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The same headers as (name, value) pairs."""
        return header_pairs(self.lines, self.count)


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


def reset_value(now: float) -> bytes:
    """Seconds until the minute window ends, as OpenAI writes them (``12s``)."""
    return b"%ds" % max(1, math.ceil(WINDOW - now % WINDOW))


def _tightest(plan: KeyPlan, indices: tuple[int, ...], values: Sequence[float]) -> int:
    checks = plan.checks
    best = indices[0]
    left = checks[best].limit - values[best]
    for i in indices[1:]:
        here = checks[i].limit - values[i]
        if here < left:
            best, left = i, here
    return best


def rate_headers(plan: KeyPlan, values: Sequence[float], reset: bytes) -> tuple[bytes, int]:
    """OpenAI's x-ratelimit-* headers for the tightest rpm and tpm booked, as
    header lines and their count (``values``: the counters after booking,
    ``reset``: ``reset_value``)."""
    checks = plan.checks
    if plan.single is not None:
        # booked within the caps, so what is left is at least -EPSILON: int() is 0 then
        r, t = plan.single
        left_r = int(checks[r].limit - values[r])
        return plan.template % (left_r, reset, int(checks[t].limit - values[t]), reset), 6
    rpm, tpm = plan.rpm, plan.tpm
    requests = tokens = b""
    if rpm:
        i = rpm[0] if len(rpm) == 1 else _tightest(plan, rpm, values)
        left = max(int(checks[i].limit - values[i]), 0)
        requests = _REQUEST_LINES % (plan.limits[i], left, reset)
    if tpm:
        i = tpm[0] if len(tpm) == 1 else _tightest(plan, tpm, values)
        left = max(int(checks[i].limit - values[i]), 0)
        tokens = _TOKEN_LINES % (plan.limits[i], left, reset)
    return requests + tokens, 3 * (bool(rpm) + bool(tpm))


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
        self._plans: dict[str, KeyPlan] = {}
        self._dirty: dict[int, KeyPlan] = {}  # plans settled since the gauges were set
        self._gauged = 0.0

    async def _book(self, checks: Sequence[Check], amounts: Sequence[float], now: float) -> Outcome:
        raise NotImplementedError

    async def _seed(self, check: Check, value: float) -> None:
        raise NotImplementedError

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        raise NotImplementedError

    def _plan(self, key: KeyInfo, now: float) -> KeyPlan:
        """The key's counters, planned once a minute per key."""
        plan = self._plans.get(key.id)
        if plan is not None and plan.scopes is key.scopes and plan.window == now // WINDOW:
            return plan
        plan = KeyPlan.of(key.scopes, now)
        if len(self._plans) >= 100_000:
            self._plans.clear()
        self._plans[key.id] = plan
        return plan

    def _checks(self, key: KeyInfo, now: float) -> tuple[Check, ...]:
        return self._plan(key, now).checks

    async def reserve(self, key: KeyInfo, tokens: int, cost: float) -> Reservation | None:
        if not key.scopes:
            return None
        now = time.time()
        plan = self._plan(key, now)
        checks = plan.checks
        if not checks:
            return None
        amounts = plan.amounts(tokens, cost)
        return await self._reserve(plan, amounts, tokens, cost, now)

    async def _reserve(
        self, plan: KeyPlan, amounts: list[float], tokens: int, cost: float, now: float
    ) -> Reservation:
        checks = plan.checks
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
        lines, count = rate_headers(plan, outcome.values, reset_value(now))
        return Reservation(plan, amounts, tokens, cost, lines, count)

    async def _spent(self, check: Check) -> float:
        if self.spend is None:
            return 0.0
        return await self.spend.spend_since(check.scope, check.scope_id, check.since)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        if reservation.done:
            return
        reservation.done = True
        plan, amounts = reservation.plan, reservation.amounts
        checks = plan.checks
        deltas: list[tuple[Check, float]] = []
        for i in plan.tpm:
            if tokens != amounts[i]:
                deltas.append((checks[i], tokens - amounts[i]))
        for i in plan.budgets:
            if cost != amounts[i]:
                deltas.append((checks[i], cost - amounts[i]))
        if deltas:
            self._apply_later(deltas)
        if plan.budgets and self.metrics is not None:
            self._budget_gauges(plan)

    def _budget_gauges(self, plan: KeyPlan) -> None:
        """Spend gauges follow settled budgets, refreshed at most once a second."""
        self._dirty[id(plan)] = plan
        now = time.monotonic()
        if now - self._gauged < 1.0:
            return
        self._gauged = now
        dirty, self._dirty = self._dirty, {}
        checks = {c.counter: c for p in dirty.values() for i in p.budgets for c in (p.checks[i],)}
        task = asyncio.get_running_loop().create_task(self._publish_gauges(list(checks.values())))
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
        self._reset_second = -1  # the second the reset headers are for
        self._reset = b""

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
            booked = value + amounts[i]
            if booked > c.limit + EPSILON:
                return Outcome(values=[value], rejected=i)
            after.append(booked)
        if missing is not None:
            return Outcome(missing=missing)
        for c, value in zip(checks, after, strict=True):
            values[c.counter] = value
        return Outcome(values=after)

    async def _book(self, checks: Sequence[Check], amounts: Sequence[float], now: float) -> Outcome:
        return self.book_now(checks, amounts, now)

    async def reserve(self, key: KeyInfo, tokens: int, cost: float) -> Reservation | None:
        # CounterGovernor.reserve with the booking done in place, in C-level
        # passes over the plan's counters; a counter not seen yet (a new
        # window, a budget to seed) or a refusal takes the general way.
        if not key.scopes:
            return None
        now = time.time()
        plan = self._plans.get(key.id)
        if plan is None or plan.scopes is not key.scopes or plan.window != now // WINDOW:
            plan = self._plan(key, now)
        if not plan.checks:
            return None
        if tokens <= plan.min_tpm:
            amounts = list(map((1.0, float(tokens), cost).__getitem__, plan.kinds))
        else:
            amounts = plan.amounts(tokens, cost)
        values = self._counts
        current = list(map(values.get, plan.counters))
        if plan.window != self._window or None in current:
            return await self._reserve(plan, amounts, tokens, cost, now)
        booked = list(map(operator.add, current, amounts))
        if any(map(operator.gt, booked, plan.caps)):
            return await self._reserve(plan, amounts, tokens, cost, now)
        values.update(zip(plan.counters, booked, strict=True))
        second = int(now)
        if second != self._reset_second:
            self._reset_second, self._reset = second, reset_value(now)
        lines, count = rate_headers(plan, booked, self._reset)
        return Reservation(plan, amounts, tokens, cost, lines, count)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        if reservation.done:
            return
        reservation.done = True
        plan, amounts, values = reservation.plan, reservation.amounts, self._counts
        counters = plan.counters
        for i in plan.tpm:
            counter = counters[i]
            if counter in values:  # else its window has passed
                values[counter] += tokens - amounts[i]
        for i in plan.budgets:
            counter = counters[i]
            if counter in values:
                values[counter] += cost - amounts[i]
        if plan.budgets and self.metrics is not None:
            self._budget_gauges(plan)

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
