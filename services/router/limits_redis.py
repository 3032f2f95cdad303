"""A ``Limiter`` shared by every router replica: per-key fixed one-minute
windows counted in Redis. One round trip per limited request (a Lua script:
INCR, set the expiry on the first hit). If Redis cannot be reached the request
is let through (logged and counted): an outage of the limiter must not become
an outage of the gateway."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("tokgateway.router")

WINDOW = 60
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisLimiter:
    def __init__(self, url: str, *, prefix: str = "tg:rl:", socket_timeout: float = 0.5) -> None:
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._script = self._redis.register_script(_HIT)
        self.failures = 0

    async def hit(self, key_id: str, limit: int) -> float | None:
        now = time.time()
        window = int(now // WINDOW)
        try:
            count = int(
                await self._script(keys=[f"{self.prefix}{key_id}:{window}"], args=[WINDOW * 2])
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 1000 == 0:
                log.error("rate limiter unavailable; allowing", extra={"err": repr(exc)})
            return None
        if count > limit:
            return WINDOW - (now % WINDOW)
        return None

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
