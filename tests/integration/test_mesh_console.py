"""The console on the real mesh: a router serves the built console at /ui, its
own effective configuration at /admin/config (admin key, secrets masked, the
all-in-one's shape), and passes the console's admin calls to auth, the ledger
and the registry; the console signs in and works there in a real Chromium."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.cluster import ADMIN_KEY, CONFIG, SECRET_KEY, Mesh
from tests.support.console_build import FE, ensure_built

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHROMIUM = "/usr/bin/chromium"
UPSTREAM_KEY = "sk-mesh-console-upstream-4455667788"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    ensure_built()
    config = (
        CONFIG
        + f"""
[provider.far]
kind = openai-compatible
base_url = http://127.0.0.1:9/v1
api_key = {UPSTREAM_KEY}
"""
    )
    m = Mesh(tmp_path_factory.mktemp("console") / "mesh", routers=1, config=config)
    try:
        m.start()
        yield m
    except BaseException:
        print(m.logs())
        raise
    finally:
        m.close()


def _router(mesh: Mesh) -> str:
    return mesh.routers[0].url


def test_the_router_serves_the_console(mesh: Mesh) -> None:
    page = httpx.get(_router(mesh) + "/ui/")
    assert page.status_code == 200 and '<div id="root">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(_router(mesh) + "/ui/h5/").status_code == 200
    # the other services do not: only the router is published
    assert httpx.get(mesh.auth.url + "/ui/").status_code == 404


def test_the_router_shows_its_configuration_to_admins_only(mesh: Mesh) -> None:
    url = _router(mesh) + "/admin/config"
    assert httpx.get(url).status_code == 401
    member = mesh.create_key("config-member")
    refused = httpx.get(url, headers={"authorization": f"Bearer {member['key']}"})
    assert refused.status_code == 403 and refused.json()["error"]["message"]
    resp = httpx.get(url, headers=ADMIN)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list" and body["env"] == "test"
    assert body["files"] == [str(mesh.root / "config" / "setting.ini")]
    rows = {r["key"]: r for r in body["data"]}
    assert set(rows["gateway.auth_url"]) == {"key", "value", "layer"}
    assert rows["gateway.auth_url"]["value"] == mesh.auth.url
    assert rows["gateway.auth_url"]["layer"] == "environment"
    assert rows["provider.far.kind"]["value"] == "openai-compatible"
    text = resp.text
    assert SECRET_KEY not in text and ADMIN_KEY not in text and UPSTREAM_KEY not in text
    assert rows["gateway.secret_key"]["value"] and rows["provider.far.api_key"]["value"]


def _through(mesh: Mesh, method: str, path: str, **kw: Any) -> Any:
    resp = httpx.request(method, _router(mesh) + path, headers=ADMIN, timeout=10.0, **kw)
    assert resp.status_code < 300, resp.text
    return resp.json()


def test_admin_calls_through_the_router_land_in_their_services(mesh: Mesh) -> None:
    user = _through(mesh, "POST", "/admin/users", json={"email": "kim@mesh.test"})
    team = _through(mesh, "POST", "/admin/teams", json={"name": "mesh-team"})
    _through(mesh, "POST", f"/admin/teams/{team['id']}/members/{user['id']}")
    _through(
        mesh,
        "PATCH",
        f"/admin/teams/{team['id']}",
        json={"budget_usd": 30, "budget_period": "day"},
    )
    # read straight from auth, not through the router
    landed = mesh.admin("GET", f"{mesh.auth.url}/admin/teams/{team['id']}")
    assert landed["members"] == [user["id"]]
    assert (landed["budget_usd"], landed["budget_period"]) == (30.0, "day")
    # the registry's and the ledger's admin APIs answer through the router too
    providers = _through(mesh, "GET", "/admin/providers")["data"]
    assert "far" in {p["name"] for p in providers}
    assert _through(mesh, "GET", "/admin/usage", params={"group_by": "model"})["object"] == "list"
    prices = _through(mesh, "GET", "/admin/prices")["data"]
    assert any(p["model"] == "echo" and p["input"] == 1.5 for p in prices)  # CONFIG's [prices]
    # an owner's refusal comes back as it was given
    bad = httpx.patch(_router(mesh) + f"/admin/teams/{team['id']}", headers=ADMIN, json={"rpm": -1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
    assert httpx.get(_router(mesh) + "/admin/keys").status_code == 401


def test_the_console_signs_in_and_works_through_the_router(mesh: Mesh, tmp_path: Path) -> None:
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed (apt-get install chromium)"
    env = {
        **os.environ,
        "GATEWAY_URL": _router(mesh),
        "ADMIN_KEY": ADMIN_KEY,
        "SHOTS": str(tmp_path),
        "CHROMIUM": CHROMIUM,
    }
    done = subprocess.run(
        ["node", "e2e/mesh.e2e.mjs"],
        cwd=FE,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert seen["settings_auth_url"] == mesh.auth.url
    assert "admin@localhost" in seen["users"]
    assert "far" in seen["providers"]
    assert Path(seen["screenshot"]).stat().st_size > 5000
    # the key the console made is in auth
    keys = mesh.admin("GET", f"{mesh.auth.url}/admin/keys")["data"]
    assert any(k["name"] == "mesh-console" and k["id"] == seen["key_id"] for k in keys)
