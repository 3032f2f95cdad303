"""Three all-in-one gateways on loopback: A publishes, B follows A, C follows
B (through a relay that can tamper with the feed). C sees A's listing with
origin A; a tampered listing is refused; a consumer on C uses A's model
through `market use` and A's ledger meters it; unpublishing on A removes the
listing from B and C within a poll and stops the key."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import serve_in_thread

CONFIG = """
[gateway]
log_level = info

[ledger]
flush_interval_ms = 50

[market]
poll_s = {poll}
"""


def _wait(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _json(gw: GatewayProcess, *args: str) -> Any:
    return orjson.loads(gw.cli(*args, "--json").stdout)


class Relay:
    """Forwards a registry's feed; with ``tamper`` it lowers every price
    (and drops If-None-Match, so the change is noticed)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.tamper = False
        self.app = Starlette(routes=[Route("/market/feed", self.feed)])

    async def feed(self, request: Request) -> Response:
        headers = {}
        if not self.tamper and "if-none-match" in request.headers:
            headers["if-none-match"] = request.headers["if-none-match"]
        async with httpx.AsyncClient() as client:
            resp = await client.get(self.target + "/market/feed", headers=headers)
        if resp.status_code == 304 or not self.tamper:
            return Response(resp.content, resp.status_code, {"etag": resp.headers["etag"]})
        body = orjson.loads(resp.content)
        for entry in body["listings"]:
            for model in entry["listing"]["models"]:
                model["input"] = 0.0
        return Response(orjson.dumps(body), 200, media_type="application/json")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("market")
    a = GatewayProcess(
        root / "a",
        CONFIG.format(poll=30),
        env={
            "GATEWAY_ENABLE_PROVIDER": "true",
            "GATEWAY_MARKET_AUTO_APPROVE": "true",
            "GATEWAY_PUBLISH_NAME": "Gateway A",
            "GATEWAY_EMAIL": "ops@a.test",
        },
    )
    b = GatewayProcess(root / "b", CONFIG.format(poll=0.3), env={"GATEWAY_EMAIL": "ops@b.test"})
    c = GatewayProcess(root / "c", CONFIG.format(poll=0.3), env={"GATEWAY_EMAIL": "ops@c.test"})
    started: list[GatewayProcess] = []
    try:
        for gw in (a, b, c):
            started.append(gw.start())
        relay = Relay(b.url)
        with serve_in_thread(relay.app) as relay_url:
            yield {"a": a, "b": b, "c": c, "relay": relay, "relay_url": relay_url}
    finally:
        for gw in started:
            gw.stop()


def _listing_ids(gw: GatewayProcess) -> set[str]:
    return {r["id"] for r in _json(gw, "market", "list")}


def test_federation_use_and_unpublish(mesh: dict[str, Any]) -> None:
    a, b, c = mesh["a"], mesh["b"], mesh["c"]
    relay: Relay = mesh["relay"]
    refused = a.cli("market", "publish", "--model", "unpriced-model", check=False)
    assert refused.returncode == 1 and "No price for 'unpriced-model'" in refused.stderr
    a.cli("routes", "set", "a-model", "--to", "echo")  # what A serves, under its own name
    pub = _json(a, "market", "publish", "--model", "a-model", "--price-in", "2", "--price-out", "4")
    a_id = pub["origin"]
    not_provider = b.cli(
        "market", "publish", "--model", "echo", "--price-in", "1", "--price-out", "1", check=False
    )
    assert not_provider.returncode == 1 and "GATEWAY_ENABLE_PROVIDER" in not_provider.stderr

    peer = _json(b, "market", "peers", "add", a.url)
    assert peer["registry_id"] == a_id and peer["listings"] == 1
    peer_c = _json(c, "market", "peers", "add", mesh["relay_url"])
    assert peer_c["registry_id"] != a_id  # C pinned B's key (the relay forwards B)
    _wait("A's listing on C", lambda: pub["id"] in _listing_ids(c))
    [seen] = _json(c, "market", "list", "--model", "a-model")
    assert seen["origin"] == a_id and seen["via"] == mesh["relay_url"]
    assert seen["signature"] == pub["signature"] and seen["models"][0]["input"] == 2.0
    assert seen["age_s"] >= 0 and not seen["local"]
    shown = c.cli("market", "list").stdout
    assert pub["id"] in shown and a_id in shown
    compare = _json(c, "market", "compare", "a-model")
    assert compare[0]["effective_usd"] == pytest.approx((2000 * 2 + 500 * 4) / 1e6)

    # tampered on the way: refused by C, logged, and gone until the feed is honest again
    relay.tamper = True
    _wait("the tampered listing refused", lambda: pub["id"] not in _listing_ids(c))
    [peer_c] = _json(c, "market", "peers", "list")
    assert peer_c["refused"] == 1
    _wait("a log line", lambda: "bad signature" in c.stderr.read_text())
    relay.tamper = False
    _wait("the honest listing back", lambda: pub["id"] in _listing_ids(c))

    # a consumer on C uses A's model through its own gateway
    use = _json(c, "market", "use", pub["id"], "--as", "my-model")
    assert use["status"] == "active" and use["routes"] == [
        {"model": "my-model", "upstream_model": "a-model"}
    ]
    providers = c.cli("providers", "list", "--json").stdout
    assert use["provider"] in providers and "tgw-" not in providers  # sealed, never shown
    key = c.create_key("agent")["key"]
    resp = httpx.post(
        c.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "my-model", "messages": [{"role": "user", "content": "hello market"}]},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    [sub] = _json(a, "market", "subscriptions")
    assert sub["status"] == "active" and sub["consumer_email"] == "ops@c.test"

    def a_metered() -> bool:
        rows = a.usage("--group-by", "key")
        return any(r["group"] == sub["key_id"] and r["requests"] == 1 for r in rows)

    _wait("A's ledger row for C's traffic", a_metered)
    supplied = _json(a, "usage", "--summary")
    assert supplied["supplied"]["requests"] == 1 and supplied["supplied"]["cost_usd"] > 0
    _wait("C's ledger row", lambda: _json(c, "usage", "--summary")["consumed"]["requests"] == 1)
    consumed = _json(c, "usage", "--summary")
    assert consumed["consumed"]["cost_usd"] == pytest.approx(supplied["supplied"]["cost_usd"])
    assert consumed["net"]["cost_usd"] == pytest.approx(-consumed["consumed"]["cost_usd"])

    # unpublished on A: gone from B and C within a poll, and the key stops working
    out = _json(a, "market", "unpublish", pub["id"])
    assert out["keys_revoked"] == 1
    _wait("the listing gone from B", lambda: pub["id"] not in _listing_ids(b))
    _wait("the listing gone from C", lambda: pub["id"] not in _listing_ids(c))
    again = httpx.post(
        c.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "my-model", "messages": [{"role": "user", "content": "still there?"}]},
        timeout=30,
    )
    assert again.status_code >= 400


def test_feed_answers_304_to_its_etag_and_peers_can_be_removed(
    mesh: dict[str, Any], tmp_path: Path
) -> None:
    a, b = mesh["a"], mesh["b"]
    first = httpx.get(a.url + "/market/feed")
    assert first.status_code == 200 and first.json()["registry"]["registry_id"].startswith("reg_")
    again = httpx.get(a.url + "/market/feed", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert "api_key" not in first.text and "key_sealed" not in first.text
    removed = _json(b, "market", "peers", "remove", a.url)
    assert removed["deleted"] is True
    assert _json(b, "market", "peers", "list") == []
