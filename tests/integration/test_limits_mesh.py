"""Two router replicas on the real Redis, PostgreSQL and NATS: a budget, an
rpm and a tpm hold exactly across them (atomic scripts), the ledger's spend
agrees with the budget counter, and a Redis that lost its counters rebuilds
the budget from the ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.integration.cluster import CONFIG, Mesh
from tests.support.burst import COST, PRICES, TOKENS, burst, codes
from tests.support.gateway_proc import away_from_minute_edge
from tests.support.mock_upstream import MockUpstream, serve_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mock = MockUpstream()
    with serve_in_thread(mock.app) as url:
        config = (
            CONFIG.replace("[prices]\n", "[prices]\n" + PRICES.split("[prices]\n", 1)[1])
            + f"""
[provider.mock]
kind = openai-compatible
base_url = {url}/v1
api_key = sk-mesh-limits-000

[routes]
gpt-* = mock
"""
        )
        m = Mesh(tmp_path_factory.mktemp("limits") / "mesh", routers=2, config=config)
        try:
            m.start()
            yield m
        except BaseException:
            print(m.logs())
            raise
        finally:
            m.close()


def _spend(mesh: Mesh, key_id: str, expected: float) -> float:
    deadline = time.monotonic() + 10
    while True:
        got = float(mesh.admin("GET", f"{mesh.auth.url}/admin/keys/{key_id}")["spend_usd"] or 0)
        if abs(got - expected) < 1e-6 or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_budget_rpm_and_tpm_hold_exactly_across_two_replicas(mesh: Mesh) -> None:
    urls = [r.url for r in mesh.routers]
    budget = 20 * COST
    created = mesh.create_key("budget", budget_usd=budget, budget_period="total")
    got = burst(urls, created["key"], 200)
    assert codes(got).count(200) == 20 and codes(got).count(429) == 180
    assert 200 in codes(got)[0::2] and 200 in codes(got)[1::2]  # both replicas admitted
    refused = {r.json()["error"]["code"] for r in got if r.status_code == 429}
    assert refused == {"budget_exceeded"}
    spent = _spend(mesh, created["id"], budget)
    assert spent == pytest.approx(budget)
    store = redis.Redis.from_url(mesh.redis.url)
    counter = float(store.get(f"tg:gov:b:key:{created['id']}:total:total") or 0)
    assert counter == pytest.approx(spent)

    away_from_minute_edge(10)
    rpm = mesh.create_key("rpm", rpm=10)["key"]
    assert codes(burst(urls, rpm, 30)).count(200) == 10
    tpm = mesh.create_key("tpm", tpm=10 * TOKENS)["key"]
    assert codes(burst(urls, tpm, 30)).count(200) == 10

    # Redis lost everything: the budget comes back from the ledger.
    store.flushdb()
    again = burst(urls, created["key"], 4)
    assert codes(again) == [429] * 4
    assert float(store.get(f"tg:gov:b:key:{created['id']}:total:total") or 0) == pytest.approx(
        budget
    )
    store.close()


def test_budget_without_max_tokens_stays_within_one_excess(mesh: Mesh) -> None:
    """Without max_tokens a request books the default output cap (4096 tokens
    here, $4107 at $1 a token) and settles to $18: a budget of $5000 admits one
    at a time, and the spend never passes the budget."""
    created = mesh.create_key("nocap", budget_usd=5000.0, budget_period="total")
    got = burst([r.url for r in mesh.routers], created["key"], 40, threads=8, max_tokens=None)
    admitted = codes(got).count(200)
    assert admitted >= 1
    assert _spend(mesh, created["id"], admitted * COST) == pytest.approx(admitted * COST)
    assert admitted * COST <= 5000.0
