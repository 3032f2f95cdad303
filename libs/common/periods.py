"""Budget periods in UTC: a calendar day, an ISO week (from Monday), a calendar
month, or ``total`` (the whole lifetime). The router's budget counters and the
ledger's spend queries use the same boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokgateway.common.contracts import BUDGET_PERIODS


def period_start(period: str, now: float) -> float:
    """The start (epoch seconds) of the period that contains ``now``; 0 for total."""
    if period not in BUDGET_PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    if period == "total":
        return 0.0
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = day.replace(day=1)
    return day.timestamp()


def period_end(period: str, now: float) -> float | None:
    """When the period that contains ``now`` ends; None for total."""
    if period == "total":
        return None
    start = datetime.fromtimestamp(period_start(period, now), UTC)
    if period == "day":
        return (start + timedelta(days=1)).timestamp()
    if period == "week":
        return (start + timedelta(days=7)).timestamp()
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month).timestamp()


def period_id(period: str, now: float) -> str:
    """A name for the period that contains ``now`` (counter keys): 2026-12-02,
    2026-W49, 2026-12, total."""
    if period == "total":
        return "total"
    at = datetime.fromtimestamp(period_start(period, now), UTC)
    if period == "day":
        return at.strftime("%Y-%m-%d")
    if period == "week":
        iso = at.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    return at.strftime("%Y-%m")
