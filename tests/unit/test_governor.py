"""The governor's counters: all-or-nothing bookings over key, user and team,
settling to real usage, refusals in the right shape, SQLite counters shared by
two processes' worth of governors, and routing snapshots closed only after
their last request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tokgateway.common.contracts import KeyInfo, Limits, Scope
from tokgateway.common.errors import RateLimited
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import ProviderConfig
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.router.governor import BudgetExceeded, LocalGovernor
from tokgateway.router.governor_sqlite import SQLiteGovernor, reset_counters
from tokgateway.router.providers.echo import EchoProvider
from tokgateway.router.snapshot import Snapshots

NONE = Limits()


def _key(key: Limits = NONE, user: Limits = NONE, team: Limits = NONE) -> KeyInfo:
    scopes = tuple(
        Scope(kind, f"{kind}_1", lim)
        for kind, lim in (("key", key), ("user", user), ("team", team))
        if not lim.empty
    )
    return KeyInfo(id="key_1", name="k", user_id="user_1", team_id="team_1", scopes=scopes)


async def test_a_key_without_limits_books_nothing() -> None:
    gov = LocalGovernor(None)
    assert await gov.reserve(_key(), 100, 1.0) is None


async def test_a_refusal_books_nothing_on_the_other_scopes() -> None:
    gov = LocalGovernor(None, RouterMetrics())
    info = _key(key=Limits(rpm=5), user=Limits(rpm=5), team=Limits(rpm=2))
    for _ in range(2):
        assert await gov.reserve(info, 10, 0.0) is not None
    with pytest.raises(RateLimited) as exc:
        await gov.reserve(info, 10, 0.0)
    assert "team `team_1`" in exc.value.message
    assert exc.value.headers["x-gateway-error"] == "rate_limit"
    counters = {c.metric + c.scope: c.counter for c in gov._checks(info, time.time())}
    assert gov.value(counters["rpmkey"]) == 2  # the refused third was not counted
    assert gov.value(counters["rpmuser"]) == 2


async def test_budget_settles_to_the_real_cost_and_release_gives_back() -> None:
    gov = LocalGovernor(None)
    info = _key(user=Limits(budget_usd=10.0, budget_period="day"))
    first = await gov.reserve(info, 100, 6.0)
    assert first is not None
    with pytest.raises(BudgetExceeded) as exc:
        await gov.reserve(info, 100, 6.0)  # 6 + 6 > 10
    assert exc.value.code == "budget_exceeded" and exc.value.error_type == "insufficient_quota"
    assert "per day" in exc.value.message and "user `user_1`" in exc.value.message
    gov.settle(first, 50, 1.5)
    gov.settle(first, 50, 1.5)  # a second settle changes nothing
    second = await gov.reserve(info, 100, 6.0)  # 1.5 + 6 <= 10
    assert second is not None
    gov.release(second)
    budget = next(c for c in second.checks if c.metric == "budget")
    assert gov.value(budget.counter) == pytest.approx(1.5)


async def test_headers_report_the_tightest_limit() -> None:
    gov = LocalGovernor(None)
    info = _key(key=Limits(rpm=100, tpm=1000), team=Limits(rpm=3))
    res = await gov.reserve(info, 400, 0.0)
    assert res is not None
    assert dict(res.headers)[b"x-ratelimit-limit-requests"] == b"3"
    assert dict(res.headers)[b"x-ratelimit-remaining-requests"] == b"2"
    assert dict(res.headers)[b"x-ratelimit-remaining-tokens"] == b"600"
    gov.settle(res, 100, 0.0)
    again = await gov.reserve(info, 400, 0.0)
    assert again is not None and dict(again.headers)[b"x-ratelimit-remaining-tokens"] == b"500"


async def test_sqlite_counters_are_shared_and_exact(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    SQLiteDB(path).call(reset_counters)
    workers = [SQLiteGovernor(SQLiteDB(path), None) for _ in range(2)]
    info = _key(key=Limits(rpm=1000, budget_usd=10.0, budget_period="total"))

    async def one(i: int) -> bool:
        try:
            res = await workers[i % 2].reserve(info, 10, 1.0)
        except BudgetExceeded:
            return False
        assert res is not None
        return True

    admitted = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(admitted) == 10
    assert await workers[0].counter("b:key:key_1:total:total") == pytest.approx(10.0)
    for gov in workers:
        await gov.close()


async def test_a_replaced_snapshot_closes_after_its_last_request() -> None:
    def table(name: str) -> RouteTable:
        cfg = ProviderConfig(name=name, kind="echo", base_url="")
        return RouteTable(
            rules=(), aliases={}, providers={name: cfg}, primary=name, prices=PriceTable({})
        )

    first = table("one")
    snaps = Snapshots.of(first, {"one": EchoProvider(first.providers["one"])})
    held = snaps.acquire()
    second = table("two")
    old = snaps.swap(second, {"two": EchoProvider(second.providers["two"])})
    assert old is held and snaps.current.table is second
    await asyncio.sleep(0)
    assert not held.closed  # a request still uses it
    snaps.release(held)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert held.closed and not snaps.current.closed
    await snaps.close()
    assert snaps.current.closed


async def test_settle_after_the_window_passed_adjusts_what_is_left() -> None:
    gov = LocalGovernor(None)
    info = _key(key=Limits(rpm=10, tpm=1000, budget_usd=5.0, budget_period="day"))
    res = await gov.reserve(info, 400, 2.0)
    assert res is not None
    tpm = next(c for c in res.checks if c.metric == "tpm")
    budget = next(c for c in res.checks if c.metric == "budget")
    gov._counts.pop(tpm.counter)  # the minute's counters went with the minute
    gov.settle(res, 100, 0.5)
    assert tpm.counter not in gov._counts  # not brought back
    assert gov.value(budget.counter) == pytest.approx(0.5)


async def test_headers_of_a_key_with_one_rpm_and_one_tpm() -> None:
    gov = LocalGovernor(None)
    info = _key(key=Limits(rpm=100, tpm=1000, budget_usd=5.0))
    first = await gov.reserve(info, 400, 0.1)
    second = await gov.reserve(info, 400, 0.1)
    assert first is not None and second is not None and second.count == 6
    headers = dict(second.headers)
    assert headers[b"x-ratelimit-limit-requests"] == b"100"
    assert headers[b"x-ratelimit-remaining-requests"] == b"98"
    assert headers[b"x-ratelimit-limit-tokens"] == b"1000"
    assert headers[b"x-ratelimit-remaining-tokens"] == b"200"
    reset = headers[b"x-ratelimit-reset-requests"]
    assert reset == headers[b"x-ratelimit-reset-tokens"] and reset.endswith(b"s")
    assert 1 <= int(reset[:-1]) <= 60
