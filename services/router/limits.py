"""Rate limits. A ``Limiter`` decides whether one more request of a key fits in
its per-minute window; the in-process one serves a single router, a Redis one
(mesh) shares the count across replicas."""

from __future__ import annotations

import time
from typing import Protocol


class Limiter(Protocol):
    async def hit(self, key_id: str, limit: int) -> float | None:
        """Count one request; None when allowed, else seconds until retry."""

    async def close(self) -> None: ...


class LocalLimiter:
    """Fixed one-minute windows in process memory."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key_id: str, limit: int) -> float | None:
        now = time.time()
        window = int(now // 60)
        current, count = self._windows.get(key_id, (window, 0))
        if current != window:
            count = 0
        if count >= limit:
            return 60.0 - (now % 60)
        self._windows[key_id] = (window, count + 1)
        if len(self._windows) > 200_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return None

    async def close(self) -> None:
        return None
