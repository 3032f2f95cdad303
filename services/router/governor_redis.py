"""Governor counters in Redis, shared by every router replica. A booking is
one Lua script (read every counter, check every limit, then add to all or to
none), so it is atomic across replicas; one round trip per limited request.

Budget counters missing from Redis (first use, a flushed or restarted Redis)
are seeded from the ledger's spend of the period with SET NX, then the booking
is tried again. If Redis cannot be reached the request is let through (logged
and counted): an outage of the limiter must not become an outage of the
gateway."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
import redis.exceptions

from tokgateway.common.contracts import SpendSource
from tokgateway.common.metrics import RouterMetrics
from tokgateway.router.governor import EPSILON, Check, CounterGovernor, Outcome

log = logging.getLogger("tokgateway.router")

# KEYS: counters. ARGV: epsilon, then per counter: limit, amount, ttl (0: none),
# seeded-only (1 for budgets). Returns {"ok", v1, v2...} | {"no", i, v} | {"seed", i...}.
_BOOK = """
local n = #KEYS
local eps = tonumber(ARGV[1])
local vals = {}
local missing = {}
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if not v and ARGV[4 * i + 1] == '1' then missing[#missing + 1] = i end
  vals[i] = tonumber(v or '0')
end
if #missing > 0 then
  local out = {'seed'}
  for _, i in ipairs(missing) do out[#out + 1] = i end
  return out
end
for i = 1, n do
  if vals[i] + tonumber(ARGV[4 * i - 1]) > tonumber(ARGV[4 * i - 2]) + eps then
    return {'no', i, tostring(vals[i])}
  end
end
local out = {'ok'}
for i = 1, n do
  local after = redis.call('INCRBYFLOAT', KEYS[i], ARGV[4 * i - 1])
  local ttl = tonumber(ARGV[4 * i])
  if ttl > 0 and redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  out[#out + 1] = after
end
return out
"""

# KEYS: counters; ARGV: deltas. Adds only to counters that still exist.
_ADD = """
local out = {}
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[i] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[i])
  else
    out[i] = '0'
  end
end
return out
"""


def _num(value: float) -> str:
    return repr(float(value))


class RedisGovernor(CounterGovernor):
    def __init__(
        self,
        url: str,
        spend: SpendSource | None,
        metrics: RouterMetrics | None = None,
        *,
        prefix: str = "tg:gov:",
        socket_timeout: float = 0.5,
    ) -> None:
        super().__init__(spend, metrics)
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._book_script = self._redis.register_script(_BOOK)
        self._add_script = self._redis.register_script(_ADD)
        self.failures = 0

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 1000 == 0:
            log.error("limits store unavailable; allowing", extra={"err": repr(exc)})

    async def _book(self, checks: Sequence[Check], now: float) -> Outcome:
        keys = [self.prefix + c.counter for c in checks]
        args: list[str] = [_num(EPSILON)]
        for c in checks:
            args += [
                _num(c.limit),
                _num(c.amount),
                str(int(c.ttl or 0)),
                "1" if c.metric == "budget" else "0",
            ]
        try:
            reply = await self._book_script(keys=keys, args=args)
        except (redis.exceptions.RedisError, OSError) as exc:
            self._failed(exc)
            return Outcome(values=[c.amount for c in checks])
        tag = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if tag == "seed":
            return Outcome(missing=[int(i) - 1 for i in reply[1:]])
        if tag == "no":
            return Outcome(values=[float(reply[2])], rejected=int(reply[1]) - 1)
        return Outcome(values=[float(v) for v in reply[1:]])

    async def _seed(self, check: Check, value: float) -> None:
        try:
            await self._redis.set(
                self.prefix + check.counter,
                _num(value),
                nx=True,
                ex=int(check.ttl) if check.ttl else None,
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            self._failed(exc)

    async def _add(self, deltas: list[tuple[Check, float]]) -> None:
        keys = [self.prefix + c.counter for c, _ in deltas]
        try:
            values = await self._add_script(keys=keys, args=[_num(d) for _, d in deltas])
        except (redis.exceptions.RedisError, OSError) as exc:
            self._failed(exc)
            return
        if self.metrics is not None:
            for (check, _), value in zip(deltas, values, strict=True):
                if check.metric == "budget":
                    self.metrics.budget(
                        check.scope, check.scope_id, check.period, float(value), check.limit
                    )

    async def counter(self, name: str) -> float:
        raw = await self._redis.get(self.prefix + name)
        return float(raw) if raw is not None else 0.0

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    async def close(self) -> None:
        await super().close()
        await self._redis.aclose()
