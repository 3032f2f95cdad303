"""The routers' health checks on the way to the registry: each round is
published, the registry shows per provider the newest check of a live router
in the all-in-one's shape, and forgets a router that stopped reporting."""

from __future__ import annotations

import time

import orjson

from tests.unit.test_prober import FakeProvider
from tokgateway.common.contracts import ROUTER_HEALTH_SUBJECT
from tokgateway.mesh_health import HealthPublisher, HealthReports, encode_report
from tokgateway.router.prober import Prober, ProbeResult
from tokgateway.router.strategies import Breaker


async def test_every_round_is_published_and_read_back_in_the_allinone_shape() -> None:
    up, down = FakeProvider("up"), FakeProvider("down")
    down.up = False
    prober = Prober(lambda: {"up": up, "down": down}, Breaker(), None, interval_s=2)
    sent: list[tuple[str, bytes]] = []
    prober.listeners.append(HealthPublisher(lambda s, p: sent.append((s, p)), 2))
    await prober.check_all()
    await prober.check_all()
    assert len(sent) == 2 and all(subject == ROUTER_HEALTH_SUBJECT for subject, _ in sent)
    event = orjson.loads(sent[-1][1])
    assert event["v"] == 1 and event["interval_s"] == 2 and set(event["results"]) == {"up", "down"}
    reports = HealthReports()
    reports.on_event(ROUTER_HEALTH_SUBJECT, sent[-1][1])
    shown = reports.public()
    allinone = prober.public()
    assert shown.keys() == allinone.keys() == {"up", "down"}
    for name in shown:
        assert shown[name].keys() == allinone[name].keys()
        assert shown[name]["healthy"] == allinone[name]["healthy"]
        assert shown[name]["error"] == allinone[name]["error"]
        assert shown[name]["latency_ms"] == allinone[name]["latency_ms"]
    assert shown["down"]["healthy"] is False and shown["down"]["error"]
    assert shown["up"]["checked_s_ago"] < 5


def test_the_newest_check_of_a_live_router_wins() -> None:
    now = [100.0]
    reports = HealthReports(clock=lambda: now[0])
    wall = time.time()
    old = {"p": ProbeResult(True, 0.01, wall - 20), "q": ProbeResult(True, 0.02, wall - 20)}
    new = {"p": ProbeResult(False, 0.5, wall - 1, "no answer within 5 s")}
    reports.on_event(ROUTER_HEALTH_SUBJECT, encode_report("r1", 1.0, old))
    reports.on_event(ROUTER_HEALTH_SUBJECT, encode_report("r2", 10.0, new))
    shown = reports.public()
    assert shown["p"]["healthy"] is False and shown["p"]["error"] == "no answer within 5 s"
    assert shown["q"]["healthy"] is True and 19 <= shown["q"]["checked_s_ago"] <= 25
    now[0] += 9.0  # r1 (1 s interval) is stale after 3 intervals and the grace; r2 is not
    assert set(reports.public()) == {"p"}
    now[0] += 30.0
    assert reports.public() == {}
    # a router's next report replaces its last one: a provider it no longer checks goes
    reports.on_event(ROUTER_HEALTH_SUBJECT, encode_report("r1", 1.0, old))
    reports.on_event(ROUTER_HEALTH_SUBJECT, encode_report("r1", 1.0, {"q": old["q"]}))
    assert set(reports.public()) == {"q"}


def test_a_malformed_report_is_ignored() -> None:
    reports = HealthReports()
    good = encode_report("r1", 1.0, {"p": ProbeResult(True, 0.01, time.time())})
    reports.on_event(ROUTER_HEALTH_SUBJECT, good)
    for bad in (
        b"not json",
        b"[]",
        b'{"router": "r2"}',
        b'{"router": "r3", "interval_s": 1, "results": {"x": 1}}',
    ):
        reports.on_event(ROUTER_HEALTH_SUBJECT, bad)
    assert set(reports.public()) == {"p"}
