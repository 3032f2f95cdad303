from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokgateway.common.periods import period_end, period_id, period_start


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_boundaries() -> None:
    now = ts(2026, 12, 2, 15, 30)  # a Wednesday
    assert period_start("day", now) == ts(2026, 12, 2)
    assert period_end("day", now) == ts(2026, 12, 3)
    assert period_start("week", now) == ts(2026, 11, 30)
    assert period_end("week", now) == ts(2026, 12, 7)
    assert period_start("month", now) == ts(2026, 12, 1)
    assert period_end("month", now) == ts(2027, 1, 1)
    assert period_start("total", now) == 0.0 and period_end("total", now) is None
    assert period_id("day", now) == "2026-12-02"
    assert period_id("week", now) == "2026-W49"
    assert period_id("month", now) == "2026-12"
    assert period_id("total", now) == "total"
    with pytest.raises(ValueError, match="unknown budget period"):
        period_start("year", now)
