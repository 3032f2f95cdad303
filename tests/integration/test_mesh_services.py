"""The mesh working as one gateway: keys revoked everywhere at once, limits
shared by replicas, the registry feeding routers (credentials sealed end to
end), trace context reaching the upstream, and the CLI against the mesh."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tests.integration.cluster import CONFIG, Mesh
from tests.support.mock_upstream import MockUpstream, serve_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

UPSTREAM_SECRET = "sk-mesh-upstream-secret-000111222"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
Upstream = tuple[MockUpstream, str]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[MockUpstream, str]]:
    mock = MockUpstream()
    with serve_in_thread(mock.app) as url:
        yield mock, url


@pytest.fixture(scope="module")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[MockUpstream, str]
) -> Iterator[Mesh]:
    _, url = upstream
    config = (
        CONFIG
        + f"""
[provider.mock]
kind = openai-compatible
base_url = {url}/v1
api_key = {UPSTREAM_SECRET}

[routes]
mock-* = mock
"""
    )
    m = Mesh(tmp_path_factory.mktemp("shared") / "mesh", routers=2, config=config)
    try:
        m.start()
        yield m
    except BaseException:
        print(m.logs())
        raise
    finally:
        m.close()


def _chat(client: httpx.Client, router: str, key: str, model: str = "echo") -> httpx.Response:
    return client.post(
        router + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def test_revoked_key_refused_by_every_router_within_a_second(mesh: Mesh) -> None:
    key = mesh.create_key("to-revoke")
    with httpx.Client(timeout=5.0) as client:
        for r in mesh.routers:  # both replicas have the key cached now
            assert _chat(client, r.url, key["key"]).status_code == 200
        revoked_at = time.monotonic()
        mesh.admin("POST", f"{mesh.auth.url}/admin/keys/{key['id']}/revoke")
        for r in mesh.routers:
            while True:
                resp = _chat(client, r.url, key["key"])
                if resp.status_code == 401:
                    assert resp.json()["error"]["code"] == "revoked_api_key"
                    break
                assert time.monotonic() - revoked_at < 1.0, f"{r.name} still admits the key"
                time.sleep(0.02)
        assert time.monotonic() - revoked_at < 1.0


def test_rate_limit_holds_across_replicas(mesh: Mesh) -> None:
    rpm = 12
    if time.time() % 60 > 50:  # keep the burst inside one minute window
        time.sleep(61 - time.time() % 60)
    key = mesh.create_key("limited", rpm=rpm)
    codes: list[int] = []
    with httpx.Client(timeout=5.0) as client:
        for i in range(3 * rpm):
            resp = _chat(client, mesh.routers[i % 2].url, key["key"])
            codes.append(resp.status_code)
            if resp.status_code == 429:
                body = resp.json()
                assert body["error"]["code"] == "gateway_rate_limit"
                assert int(resp.headers["retry-after"]) >= 1
    assert codes.count(200) == rpm, codes
    assert codes.count(429) == 2 * rpm
    # Both replicas admitted some of the allowed requests: the count is shared.
    assert 200 in codes[0::2] and 200 in codes[1::2]


def test_registry_change_reaches_every_router(
    mesh: Mesh, upstream: tuple[MockUpstream, str]
) -> None:
    key = mesh.create_key("registry-change")
    with httpx.Client(timeout=5.0) as client:
        for r in mesh.routers:
            assert _chat(client, r.url, key["key"], "brand-new-model").status_code == 404
        mesh.admin(
            "POST",
            mesh.registry.url + "/admin/routes",
            json={"pattern": "brand-new-*", "targets": "mock:upstream-name"},
        )
        deadline = time.monotonic() + 2.0
        for r in mesh.routers:
            while (code := _chat(client, r.url, key["key"], "brand-new-model").status_code) != 200:
                assert time.monotonic() < deadline, f"{r.name} still answers {code}"
                time.sleep(0.05)
    mock, _ = upstream
    assert mock.rec.requests[-1]["model"] == "upstream-name"


def test_credentials_sealed_at_rest_and_never_returned(
    mesh: Mesh, upstream: tuple[MockUpstream, str]
) -> None:
    listed = mesh.admin("GET", mesh.registry.url + "/admin/providers")["data"]
    mock_row = next(p for p in listed if p["name"] == "mock")
    assert mock_row["has_credential"] is True
    assert UPSTREAM_SECRET not in orjson.dumps(listed).decode()
    # The snapshot is for services only, and carries the credential sealed.
    assert httpx.get(mesh.registry.url + "/internal/snapshot").status_code == 401

    async def stored() -> str:
        conn = await asyncpg.connect(mesh.pg.url)
        try:
            return str(
                await conn.fetchval(
                    "SELECT api_key_sealed FROM registry_providers WHERE name='mock'"
                )
            )
        finally:
            await conn.close()

    sealed = asyncio.run(stored())
    assert sealed and UPSTREAM_SECRET not in sealed
    # ... and the router opened it: the upstream got the real key.
    key = mesh.create_key("sealed")
    with httpx.Client(timeout=5.0) as client:
        assert _chat(client, mesh.routers[0].url, key["key"], "mock-a").status_code == 200
    mock, _ = upstream
    assert mock.rec.headers[-1]["authorization"] == f"Bearer {UPSTREAM_SECRET}"


def test_trace_context_reaches_the_upstream(mesh: Mesh, upstream: Upstream) -> None:
    key = mesh.create_key("traced")
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    resp = httpx.post(
        mesh.routers[1].url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key['key']}", "traceparent": traceparent},
        json={"model": "mock-traced", "messages": [{"role": "user", "content": "hi"}]},
        timeout=5.0,
    )
    assert resp.status_code == 200
    mock, _ = upstream
    sent = mock.rec.headers[-1].get("traceparent", "")
    assert sent.split("-")[1] == TRACE_ID


def test_cli_against_the_mesh(mesh: Mesh, tmp_path: Path) -> None:
    env = {k: v for k, v in mesh.env.items() if k != "GATEWAY_DATABASE_URL"}

    def gateway(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tokgateway.cli", *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=30,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = orjson.loads(gateway("keys", "create", "--name", "cli-mesh", "--json"))
    assert created["key"].startswith("tgk-")
    keys = orjson.loads(gateway("keys", "list", "--json"))
    assert any(k["id"] == created["id"] for k in keys)
    with httpx.Client(timeout=5.0) as client:
        assert _chat(client, mesh.routers[0].url, created["key"]).status_code == 200
    deadline = time.monotonic() + 10
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = orjson.loads(gateway("usage", "--key", created["id"], "--json"))
        if rows:
            break
        time.sleep(0.2)
    assert rows and rows[0]["requests"] == 1
    up = ("cli-up", "--kind", "openai-compatible", "--base-url", "http://127.0.0.1:9/v1")
    gateway("providers", "set", *up, "--api-key-stdin", stdin="sk-cli-secret\n")
    providers = gateway("providers", "list")
    assert "cli-up" in providers and "sk-cli-secret" not in providers
    gateway("routes", "set", "cli-*", "--to", "cli-up")
    assert "cli-*" in gateway("routes", "list")
    gateway("models", "set", "cli-model", "--input", "0.5", "--output", "1.5")
    assert "cli-model" in gateway("models", "list")
    gateway("routes", "delete", "cli-*")
    gateway("providers", "delete", "cli-up")
    assert "cli-up" not in gateway("providers", "list")


def test_users_teams_rotation_and_member_usage_on_the_mesh(mesh: Mesh, tmp_path: Path) -> None:
    env = {k: v for k, v in mesh.env.items() if k != "GATEWAY_DATABASE_URL"}

    def gateway(*args: str, key: str | None = None) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "tokgateway.cli", *args, "--json"],
            check=False,
            env={**env, "GATEWAY_ADMIN_KEY": key} if key else env,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        return orjson.loads(done.stdout)

    user = gateway("users", "create", "--email", "m@x.io")
    team = gateway("teams", "create", "--name", "mesh-team", "--tpm", "9999")
    gateway("teams", "add-member", team["id"], user["id"])
    key = gateway(
        "keys",
        "create",
        "--name",
        "m1",
        "--user",
        user["id"],
        "--team",
        team["id"],
        "--budget-usd",
        "5",
    )
    assert key["team_id"] == team["id"]
    with httpx.Client(timeout=5.0) as client:
        for r in mesh.routers:
            assert _chat(client, r.url, key["key"]).status_code == 200
        deadline = time.monotonic() + 10
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            rows = gateway("usage", "--group-by", "user", key=key["key"])
            if rows and rows[0]["requests"] == 2:
                break
            time.sleep(0.2)
        assert [(r["group"], r["requests"]) for r in rows] == [(user["id"], 2)]
        shown = gateway("keys", "show", key["id"])
        assert shown["spend_usd"] is not None and shown["remaining_usd"] is not None
        rotated = gateway("keys", "rotate", key["id"])
        at = time.monotonic()
        for r in mesh.routers:
            while _chat(client, r.url, key["key"]).status_code != 401:
                assert time.monotonic() - at < 1.0, f"{r.name} still admits the old secret"
                time.sleep(0.02)
            assert _chat(client, r.url, rotated["key"]).status_code == 200
        gateway("users", "disable", user["id"])
        at = time.monotonic()
        for r in mesh.routers:
            while True:
                resp = _chat(client, r.url, rotated["key"])
                if resp.status_code == 401:
                    assert resp.json()["error"]["code"] == "user_disabled"
                    break
                assert time.monotonic() - at < 1.0, f"{r.name} still admits a disabled user"
                time.sleep(0.02)
