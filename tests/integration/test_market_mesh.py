"""The marketplace on the mesh: a registry on PostgreSQL grants a
subscription with a key the auth service mints (over its internal API),
scoped to the listed models; the key works at a mesh router for those models
only, and unpublishing the listing revokes it at every router."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def market_mesh(tmp_path: Path) -> Iterator[Mesh]:
    mesh = Mesh(tmp_path / "mesh", routers=1)
    mesh.env["GATEWAY_ENABLE_PROVIDER"] = "true"
    mesh.env["GATEWAY_MARKET_AUTO_APPROVE"] = "true"
    try:
        mesh.start()
        yield mesh
    except BaseException:
        print(mesh.logs())
        raise
    finally:
        mesh.close()


def _chat(router: str, key: str, model: str) -> httpx.Response:
    return httpx.post(
        router + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10.0,
    )


def test_subscribe_on_the_mesh_mints_a_scoped_key_and_unpublish_revokes_it(
    market_mesh: Mesh,
) -> None:
    mesh = market_mesh
    router = mesh.routers[0].url
    # a second model the router serves, not in the listing
    mesh.admin(
        "POST",
        mesh.registry.url + "/admin/routes",
        json={"pattern": "other-model", "targets": "echo"},
    )
    listing = mesh.admin(
        "POST",
        mesh.registry.url + "/admin/market/listings",
        json={"models": ["echo"], "price_in": 1, "price_out": 2},
    )
    body = {
        "listing_id": listing["id"],
        "claim": secrets.token_urlsafe(24),
        "consumer": {"registry_id": "reg_consumer", "email": "ops@consumer.test"},
    }
    resp = httpx.post(mesh.registry.url + "/market/subscribe", json=body, timeout=10.0)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["status"] == "active" and answer["models"] == ["echo"]
    key = answer["key"]
    # handed over once: asking again shows the grant, not the key
    again = httpx.post(mesh.registry.url + "/market/subscribe", json=body, timeout=10.0)
    assert again.status_code == 200 and "key" not in again.json()

    [sub] = mesh.admin("GET", mesh.registry.url + "/admin/market/subscriptions")["data"]
    keys = mesh.admin("GET", mesh.auth.url + "/admin/keys")["data"]
    [minted] = [k for k in keys if k["id"] == sub["key_id"]]
    assert minted["models"] == ["echo"]

    assert _chat(router, key, "echo").status_code == 200
    refused = _chat(router, key, "other-model")
    assert refused.status_code == 403, refused.text
    assert _chat(router, mesh.create_key("plain")["key"], "other-model").status_code == 200

    gone = mesh.admin("DELETE", f"{mesh.registry.url}/admin/market/listings/{listing['id']}")
    assert gone["keys_revoked"] == 1
    deadline = time.monotonic() + 3.0
    while (code := _chat(router, key, "echo").status_code) != 401:
        assert time.monotonic() < deadline, f"the revoked key still answers {code}"
        time.sleep(0.1)
    [sub] = mesh.admin("GET", mesh.registry.url + "/admin/market/subscriptions")["data"]
    assert sub["status"] == "revoked"
