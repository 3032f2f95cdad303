"""`gateway run --workers N`: several processes on one port, one SQLite file."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from tests.e2e.conftest import gateway_config
from tests.support.gateway_proc import GatewayProcess, away_from_minute_edge
from tests.support.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e
BODY = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


def _burst(url: str, key: str, n: int) -> list[httpx.Response]:
    def one(_: int) -> httpx.Response:
        # a fresh connection each time, so the kernel spreads them over the workers
        with httpx.Client() as client:
            return client.post(
                url + "/v1/chat/completions",
                json=BODY,
                headers={"authorization": f"Bearer {key}"},
            )

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_two_workers_share_keys_ledger_and_revocations(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    gw = GatewayProcess(
        tmp_path_factory.mktemp("workers"),
        gateway_config(mock[1]),
        env={"GATEWAY_WORKERS": "2"},
    ).start()
    try:
        assert "2 workers" in gw.stdout_text() and "tga-" in gw.stdout_text()
        created = gw.create_key("multi")
        ok = _burst(gw.url, created["key"], 40)
        assert [r.status_code for r in ok] == [200] * 40
        deadline = time.monotonic() + 5
        while gw.usage("--key", created["id"])[0]["requests"] < 40:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        gw.cli("keys", "revoke", created["id"])
        time.sleep(0.6)  # > the revocation poll interval of the other worker
        refused = _burst(gw.url, created["key"], 20)
        assert [r.status_code for r in refused] == [401] * 20
    finally:
        gw.stop()


def test_rate_limit_shared_by_workers_through_redis(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    gw = GatewayProcess(
        tmp_path_factory.mktemp("workers-redis"),
        gateway_config(mock[1]),
        env={"GATEWAY_WORKERS": "2", "GATEWAY_REDIS_URL": "redis://127.0.0.1:6379/5"},
    ).start()
    try:
        key = gw.create_key("limited", "--rpm", "10")["key"]
        away_from_minute_edge()
        codes = [r.status_code for r in _burst(gw.url, key, 30)]
        assert codes.count(200) == 10 and codes.count(429) == 20
    finally:
        gw.stop()


def _chat(url: str, key: str, model: str, n: int) -> list[int]:
    def one(_: int) -> int:
        with httpx.Client() as client:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            return client.post(
                url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            ).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_registry_changes_reach_every_worker_and_survive_a_restart(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("workers-registry")
    gw = GatewayProcess(root, gateway_config(mock[1]), env={"GATEWAY_WORKERS": "2"}).start()
    try:
        key = gw.create_key("registry")["key"]
        assert set(_chat(gw.url, key, "via-api", 10)) == {404}
        gw.cli("routes", "set", "via-api", "--to", "echo")
        time.sleep(0.6)  # > the other worker's poll interval
        assert _chat(gw.url, key, "via-api", 40) == [200] * 40
        gw.cli("routes", "delete", "via-api")
        time.sleep(0.6)
        assert _chat(gw.url, key, "via-api", 20) == [404] * 20
        gw.cli("routes", "set", "kept", "--to", "echo")
    finally:
        gw.stop()
    # stopped: the CLI reads the stored route from the file
    assert "kept" in gw.cli("routes", "list").stdout
    gw.start()
    try:
        assert _chat(gw.url, key, "kept", 10) == [200] * 10
        routes = orjson.loads(gw.cli("routes", "list", "--json").stdout)
        assert next(r for r in routes if r["pattern"] == "kept")["source"] == "api"
    finally:
        gw.stop()


def test_price_changes_reach_every_worker(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`gateway prices refresh` and `prices set` go to one worker; the ledger
    rows every worker writes afterwards use the new prices."""
    root = tmp_path_factory.mktemp("workers-prices")
    gw = GatewayProcess(root, gateway_config(mock[1]), env={"GATEWAY_WORKERS": "2"}).start()

    def costs(key: str, model: str, n: int) -> set[float]:
        def one(_: int) -> str:
            with httpx.Client() as client:  # a fresh connection: either worker
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                resp = client.post(
                    gw.url + "/v1/chat/completions",
                    json=body,
                    headers={"authorization": f"Bearer {key}"},
                )
                assert resp.status_code == 200, resp.text
                return resp.headers["x-request-id"]

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(one, range(n)))
        return {round(gw.ledger_row(i)["cost_usd"], 9) for i in ids}

    try:
        key = gw.create_key("prices")["key"]
        # 11 prompt tokens (3 cached), 7 completion tokens from the mock
        table = root / "prices.json"
        table.write_text(
            orjson.dumps(
                {"as_of": "2026-12-02", "models": {"gpt-4o-mini": [100, 200, 100]}}
            ).decode()
        )
        gw.cli("prices", "refresh", "--from", str(table))
        gw.cli("prices", "set", "gpt-4o", "--input", "1000", "--output", "2000")
        time.sleep(0.6)  # > the registry poll interval of the other worker
        assert costs(key, "gpt-4o-mini", 24) == {round((11 * 100 + 7 * 200) / 1e6, 9)}
        assert costs(key, "gpt-4o", 24) == {round((11 * 1000 + 7 * 2000) / 1e6, 9)}
    finally:
        gw.stop()
