"""Provider health checks across the mesh: every router probes the providers
of its snapshot (router/prober.py) and, after each round, publishes the
results on ``router.v1.health``; the registry keeps the latest report of each
router and shows, per provider, the newest check any live router made. So
`gateway providers` (and GET /admin/providers) on a mesh carries the same
``health.check`` as on the all-in-one gateway.

Event (JSON, plain NATS, not stored)::

    {"v": 1, "router": "<instance id>", "interval_s": 30.0,
     "results": {"<provider>": {"healthy": true, "latency_s": 0.012,
                                "checked_at": 1767000000.0, "error": ""}}}

A report is dropped once it is older than three of its router's intervals
(the router stopped or lost NATS); a provider no router checks any more has
no ``check``."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tokgateway.common.contracts import ROUTER_HEALTH_SUBJECT
from tokgateway.router.prober import ProbeResult

log = logging.getLogger("tokgateway.registry")

STALE_INTERVALS = 3  # a report older than this many of its router's intervals is dropped
STALE_GRACE_S = 5.0


def router_instance_id() -> str:
    return uuid.uuid4().hex[:12]


def encode_report(router: str, interval_s: float, results: Mapping[str, ProbeResult]) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "router": router,
            "interval_s": interval_s,
            "results": {
                name: {
                    "healthy": r.healthy,
                    "latency_s": r.latency_s,
                    "checked_at": r.checked_at,
                    "error": r.error,
                }
                for name, r in results.items()
            },
        }
    )


class HealthPublisher:
    """A prober listener of a mesh router: each round's results onto the bus."""

    def __init__(self, publish: Callable[[str, bytes], None], interval_s: float) -> None:
        self.publish = publish
        self.interval_s = interval_s
        self.router = router_instance_id()

    def __call__(self, results: Mapping[str, ProbeResult]) -> None:
        self.publish(ROUTER_HEALTH_SUBJECT, encode_report(self.router, self.interval_s, results))


@dataclass(frozen=True, slots=True)
class _Report:
    received_at: float  # monotonic
    stale_after_s: float
    results: dict[str, ProbeResult]


class HealthReports:
    """The registry's view of the routers' health checks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._reports: dict[str, _Report] = {}

    def on_event(self, subject: str, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
            router = str(event["router"])
            interval = float(event["interval_s"])
            results = {
                str(name): ProbeResult(
                    bool(r["healthy"]),
                    float(r["latency_s"]),
                    float(r["checked_at"]),
                    str(r.get("error") or ""),
                )
                for name, r in dict(event["results"]).items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("malformed health report ignored", extra={"subject": subject})
            return
        stale = STALE_INTERVALS * max(interval, 0.0) + STALE_GRACE_S
        self._reports[router] = _Report(self.clock(), stale, results)

    def public(self) -> dict[str, dict[str, Any]]:
        """Provider name -> the newest check a live router reported, in the
        shape of the all-in-one's (``Prober.public``)."""
        now_mono = self.clock()
        for router, report in list(self._reports.items()):
            if now_mono - report.received_at > report.stale_after_s:
                del self._reports[router]
        newest: dict[str, ProbeResult] = {}
        for report in self._reports.values():
            for name, result in report.results.items():
                seen = newest.get(name)
                if seen is None or result.checked_at > seen.checked_at:
                    newest[name] = result
        now = time.time()
        return {name: r.public(now) for name, r in newest.items()}
