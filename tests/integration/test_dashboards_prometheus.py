"""Every dashboard panel and every alert, evaluated by a real Prometheus
(Debian's ``prometheus``) that scrapes a running all-in-one gateway and a mesh
after traffic that exercises them: each query must return at least one series.

A panel whose traffic the gateway cannot make yet is named in ``AWAITING``
(and must then return nothing, so the list never goes stale silently)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.cluster import CONFIG, Mesh, Proc, free_port, wait_port
from tests.support.gateway_proc import GatewayProcess, away_from_minute_edge
from tests.support.mock_upstream import MockUpstream, serve_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
RATE_INTERVAL = "30s"  # what Grafana puts for $__rate_interval at a 1 s scrape

# Panels (by title) and alerts (by name) whose series need traffic the gateway
# does not make yet. Remove an entry once its traffic exists (and drive it in
# ``traffic`` below); the test fails while a listed query already has data.
AWAITING: dict[str, str] = {}

THRESHOLD = re.compile(r"^(?P<signal>.+?)\s*(?:>=|<=|==|!=|>|<)\s*[0-9.eE+-]+$", re.S)


def panel_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every target of every panel, Grafana's variables filled in."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                out.append((panel["title"], expr))
    return out


def alert_queries() -> list[tuple[str, str]]:
    """(alert, signal): each rule's expression without its threshold, the part
    that must have series for the alert to be able to fire."""
    out = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            found = THRESHOLD.match(rule["expr"].strip())
            assert found, f"{rule['alert']}: expr is not `<signal> <op> <threshold>`"
            out.append((rule["alert"], found["signal"]))
    return out


class Prometheus:
    def __init__(self, root: Path, targets: dict[str, list[str]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]}
                for job, hosts in targets.items()
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus")
        assert binary is not None, "prometheus missing: apt-get install prometheus (.ci/run)"
        cmd = [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc = Proc("prometheus", cmd, root / "prometheus.log")

    def start(self) -> None:
        self.proc.start()
        wait_port(self.port)
        deadline = time.monotonic() + 20
        while httpx.get(self.url + "/-/ready").status_code != 200:
            assert time.monotonic() < deadline, self.proc.tail()
            time.sleep(0.2)

    def api(self, path: str, **params: str) -> Any:
        resp = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = resp.json()
        assert body["status"] == "success", body
        return body["data"]

    def wait_scraped(self, targets: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            active = self.api("targets")["activeTargets"]
            health = {t["scrapeUrl"]: t["health"] for t in active}
            if len(health) == targets and set(health.values()) == {"up"}:
                return
            assert time.monotonic() < deadline, health
            time.sleep(0.2)

    def series(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])


GATEWAY_CONFIG = """
[gateway]
log_level = warning
access_log = false
health_check_s = 0

[ledger]
flush_interval_ms = 50

[provider.mock]
kind = openai-compatible
base_url = {mock}/v1
api_key = sk-upstream-dashboards-0123456789

[provider.dead]
kind = openai-compatible
base_url = http://127.0.0.1:{dead}/v1

[routes]
fallback-model = dead, mock:gpt-4o-mini
flaky = mock:gpt-4o-500, mock:gpt-4o
deadonly = dead
gpt-* = mock
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(MockUpstream().app) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = GATEWAY_CONFIG.format(mock=upstream, dead=free_port())
    gw = GatewayProcess(tmp_path_factory.mktemp("gw-dash"), config).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def mesh(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    # The mesh router checks its providers every second (health panels and
    # alert): `down` answers nothing and is in no route.
    config = CONFIG.replace("access_log = false\n", "access_log = false\nhealth_check_s = 1\n")
    config += f"""
[provider.mock]
kind = openai-compatible
base_url = {upstream}/v1
api_key = sk-upstream-dashboards-0123456789

[provider.down]
kind = openai-compatible
base_url = http://127.0.0.1:{free_port()}/v1

[routes]
mock-* = mock
"""  # fmt: skip
    m = Mesh(tmp_path_factory.mktemp("mesh-dash") / "mesh", routers=1, config=config)
    try:
        m.start()
        yield m
    except BaseException:
        print(m.logs())
        raise
    finally:
        m.close()


@pytest.fixture(scope="module")
def prometheus(
    gateway: GatewayProcess, mesh: Mesh, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    def host(url: str) -> str:
        return url.removeprefix("http://")

    targets = {
        "tokgateway-allinone": [host(gateway.url)],
        "tokgateway-router": [host(r.url) for r in mesh.routers],
        "tokgateway-auth": [host(mesh.auth.url)],
        "tokgateway-ledger": [host(mesh.ledger.url)],
        "tokgateway-registry": [host(mesh.registry.url)],
    }
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), targets)
    prom.start()
    try:
        # Discovery hands targets over within about 5 s; traffic sent before the
        # first scrape would be invisible to rate().
        prom.wait_scraped(len(targets))
        yield prom
    finally:
        prom.proc.stop()


def _chat(client: httpx.Client, base: str, key: str, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return client.post(
        base + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body
    )


@pytest.fixture(scope="module")
def traffic(gateway: GatewayProcess, mesh: Mesh, prometheus: Prometheus) -> None:
    """What every panel needs: answers, streams, errors, a fallback, an rpm
    rejection, a budget, an unpriced model, and usage through the mesh's ledger."""
    key = str(gateway.create_key("dash")["key"])
    limited = str(gateway.create_key("dash-limited", "--rpm", "2")["key"])
    budgeted = str(gateway.create_key("dash-budget", "--budget-usd", "5")["key"])
    mesh_key = str(mesh.create_key("dash")["key"])
    with httpx.Client(timeout=10) as client:
        for _ in range(3):
            assert _chat(client, gateway.url, key, "gpt-4o").status_code == 200
            resp = _chat(client, gateway.url, key, "gpt-4o", stream=True)
            assert resp.status_code == 200
        assert _chat(client, gateway.url, key, "fallback-model").status_code == 200
        assert _chat(client, gateway.url, key, "flaky").status_code == 200
        assert _chat(client, gateway.url, key, "deadonly").status_code >= 500
        assert _chat(client, gateway.url, key, "gpt-unpriced-model").status_code == 200
        assert _chat(client, gateway.url, "tgk-not-a-key", "gpt-4o").status_code == 401
        assert _chat(client, gateway.url, budgeted, "gpt-4o", max_tokens=16).status_code == 200
        away_from_minute_edge()
        codes = [_chat(client, gateway.url, limited, "gpt-4o").status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429], codes
        for _ in range(5):
            assert _chat(client, mesh.routers[0].url, mesh_key, "mock-1").status_code == 200
        # Counters must move between scrapes for rate() to see them: more of the
        # same a few scrapes later.
        time.sleep(2.5)
        # three failures in a row of `dead` open its circuit breaker (cooldown panel)
        for _ in range(3):
            assert _chat(client, gateway.url, key, "deadonly").status_code >= 500
        assert _chat(client, gateway.url, key, "gpt-4o").status_code == 200
    deadline = time.monotonic() + 20
    while not mesh.usage():  # the ledger consumed the mesh's usage events
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_every_target_is_scraped(prometheus: Prometheus, traffic: None) -> None:
    prometheus.wait_scraped(5)
    jobs = {t["labels"]["job"] for t in prometheus.api("targets")["activeTargets"]}
    assert jobs == {f"tokgateway-{n}" for n in ("allinone", "router", "auth", "ledger", "registry")}


def test_every_panel_and_alert_query_returns_series(prometheus: Prometheus, traffic: None) -> None:
    queries = panel_queries() + alert_queries()
    named = {where for where, _ in queries}
    assert set(AWAITING) <= named, f"AWAITING names no panel or alert: {set(AWAITING) - named}"
    expected = [(w, q) for w, q in queries if w not in AWAITING]
    assert len(expected) >= 30
    missing: list[tuple[str, str]] = []
    deadline = time.monotonic() + 45  # a few scrapes after the traffic
    while True:
        missing = [(w, q) for w, q in expected if not prometheus.series(q)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert missing == [], "queries without series:\n" + "\n".join(f"{w}: {q}" for w, q in missing)
    stale = [(w, q) for w, q in queries if w in AWAITING and prometheus.series(q)]
    assert stale == [], f"these have data now; remove them from AWAITING: {stale}"


def test_specific_series_carry_the_traffic(
    prometheus: Prometheus, traffic: None, upstream: str
) -> None:
    """Not just any series: the values the traffic must have produced."""

    def value(expr: str) -> float:
        found = prometheus.series(expr)
        assert found, expr
        return float(found[0]["value"][1])

    rejected = 'gateway_limit_rejections_total{scope="key", limit="rpm"}'
    assert value(f"sum({rejected})") == 2
    assert value('sum(gateway_fallbacks_total{provider="dead"})') >= 1
    assert value('max(gateway_budget_limit_usd{scope="key", period="month"})') == 5
    assert 0 < value('max(gateway_budget_spend_usd{scope="key", period="month"})') < 5
    assert value('sum(gateway_fallbacks_total{provider="mock"})') >= 1  # the 500 of `flaky`
    assert value('sum(gateway_tokens_total{kind="cached"})') > 0
    pools = prometheus.series('gateway_upstream_connections{state="idle"}')
    assert upstream in {p["metric"]["origin"] for p in pools}  # kept alive to the mock
    assert value('sum(process_resident_memory_bytes{job="tokgateway-ledger"})') > 10e6
    assert value("sum(gateway_ledger_rows_inserted)") >= 5
    assert value('min(gateway_nats_connected{service="router"})') == 1
    assert value('sum(gateway_db_connections_opened_total{service="auth"})') >= 1


def test_prometheus_evaluates_every_rule_without_error(
    prometheus: Prometheus, traffic: None
) -> None:
    want = {name for name, _ in alert_queries()}
    deadline = time.monotonic() + 20
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        done = {r["name"]: r for r in rules if r.get("lastEvaluation", "").startswith("20")}
        if set(done) == want and all(r["health"] == "ok" for r in done.values()):
            break
        assert time.monotonic() < deadline, [(r["name"], r.get("lastError")) for r in rules]
        time.sleep(0.5)
    # The traffic made upstream errors: the error-rate and upstream-down signals see them.
    signals = dict(alert_queries())
    deadline = time.monotonic() + 20  # until a scrape after the second round is in
    while True:
        high = prometheus.series(signals["GatewayHighErrorRate"])
        if high and float(high[0]["value"][1]) > 0:
            break
        assert time.monotonic() < deadline, high
        time.sleep(0.5)
    down = prometheus.series(signals["GatewayUpstreamDown"])
    assert {s["metric"]["provider"] for s in down} >= {"dead"}
    cooling = prometheus.series('gateway_provider_cooldown{provider="dead"}')
    assert cooling and float(cooling[0]["value"][1]) == 1.0, cooling
    # the mesh router's health checks: `down` fails them, the mock and echo pass
    health = {
        s["metric"]["provider"]: float(s["value"][1])
        for s in prometheus.series('gateway_provider_healthy{job="tokgateway-router"}')
    }
    assert health == {"down": 0.0, "mock": 1.0, "echo": 1.0}, health
    failing = prometheus.series(signals["GatewayProviderHealthCheckFailing"] + " == 0")
    assert {s["metric"]["provider"] for s in failing} == {"down"}


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    res = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _scrape(url: str) -> dict[str, float]:
    """A service's own /metrics, unlabelled families summed by name."""
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            key = name.split("{", 1)[0]
            out[key] = out.get(key, 0.0) + float(value)
    return out


def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.25)


def test_ledger_lag_and_database_reconnects_are_measured(
    mesh: Mesh, prometheus: Prometheus, traffic: None
) -> None:
    """Last in this module: PostgreSQL goes away under the ledger. The usage
    events wait in JetStream (the lag the ledger reports from JetStream's own
    consumer info), and the reconnect afterwards is counted."""
    key = str(mesh.create_key("lag")["key"])
    before = _scrape(mesh.ledger.url)
    with httpx.Client(timeout=10) as client:
        assert _chat(client, mesh.routers[0].url, key, "mock-1").status_code == 200  # cached
        mesh.pg.stop()
        try:
            for _ in range(8):
                assert _chat(client, mesh.routers[0].url, key, "mock-1").status_code == 200

            def lagging() -> bool:
                now = _scrape(mesh.ledger.url)
                return (
                    now["gateway_ledger_consumer_pending"]
                    + now["gateway_ledger_consumer_ack_pending"]
                    >= 8
                )

            _until(lagging)
        finally:
            mesh.pg.start()

    def caught_up() -> bool:
        now = _scrape(mesh.ledger.url)
        waiting = (
            now["gateway_ledger_consumer_pending"] + now["gateway_ledger_consumer_ack_pending"]
        )
        return (
            waiting == 0
            and now["gateway_ledger_rows_inserted"] >= before["gateway_ledger_rows_inserted"] + 9
        )

    # A query in flight when the server stopped can wait out the pool's 30 s
    # command timeout before the batch is retried (with backoff): allow for two.
    _until(caught_up, timeout=120)
    after = _scrape(mesh.ledger.url)
    opened = "gateway_db_connections_opened_total"
    assert after[opened] > before[opened]  # the pool reconnected
    assert after["gateway_ledger_insert_failures"] > before["gateway_ledger_insert_failures"]
    # Prometheus saw the lag too (the ledger-lag alert's signal).
    signal = dict(alert_queries())["GatewayLedgerLag"]
    peak = prometheus.series(f"max_over_time(({signal})[2m:1s])")
    assert float(peak[0]["value"][1]) >= 8
