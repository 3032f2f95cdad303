"""`gateway providers` on a mesh shows the routers' health checks as the
all-in-one gateway shows its own: the routers probe, the registry listing
carries ``health.check`` (and ``down`` for a failed check), and a check no
live router vouches for any more disappears."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.cluster import CONFIG, Mesh
from tests.support.mock_upstream import MockUpstream, free_port, serve_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHECK_FIELDS = {"healthy", "latency_ms", "checked_s_ago", "error"}


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[tuple[Mesh, MockUpstream]]:
    upstream = MockUpstream()
    with serve_in_thread(upstream.app) as url:
        config = (
            CONFIG.replace("[gateway]\n", "[gateway]\nhealth_check_s = 0.5\n")
            + f"""
[provider.up]
kind = openai-compatible
base_url = {url}/v1
api_key = sk-mesh-health-upstream

[provider.gone]
kind = openai-compatible
base_url = http://127.0.0.1:{free_port()}/v1
api_key = sk-mesh-health-gone

[routes]
hc-* = up, gone
"""
        )
        m = Mesh(tmp_path / "mesh", routers=2, config=config)
        try:
            m.start()
            yield m, upstream
        except BaseException:
            print(m.logs())
            raise
        finally:
            m.close()


def _cli(mesh: Mesh, cwd: Path, *args: str) -> str:
    env = {k: v for k, v in mesh.env.items() if k != "GATEWAY_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "tokgateway.cli", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_mesh_providers_listing_carries_the_routers_health_checks(
    mesh: tuple[Mesh, MockUpstream], tmp_path: Path
) -> None:
    m, upstream = mesh
    rows: dict[str, Any] = {}

    def checked() -> bool:
        nonlocal rows
        rows = {
            r["name"]: r for r in orjson.loads(_cli(m, tmp_path, "providers", "list", "--json"))
        }
        return all((rows[n]["health"].get("check") or {}) for n in ("up", "gone"))

    _wait("both providers to carry a check", checked)
    up, gone = rows["up"]["health"], rows["gone"]["health"]
    assert set(up["check"]) == CHECK_FIELDS and set(gone["check"]) == CHECK_FIELDS
    assert up["status"] == "ok" and up["check"]["healthy"] is True and up["check"]["error"] == ""
    assert 0 <= up["check"]["latency_ms"] < 5000 and up["check"]["checked_s_ago"] < 10
    assert gone["status"] == "down" and gone["check"]["healthy"] is False
    assert gone["problem"] == "health check failed: " + gone["check"]["error"]
    assert upstream.models_served >= 1  # a router's check is the model list
    # the same through the router's admin API (what the console calls)
    listed = m.admin("GET", m.routers[0].url + "/admin/providers")["data"]
    assert {r["name"]: r["health"]["status"] for r in listed}["gone"] == "down"
    table = _cli(m, tmp_path, "providers", "list")
    assert re.search(r"^up .* ok +ok [\d.]+ ms, [\d.]+ s ago", table, re.MULTILINE), table
    assert re.search(r"^gone .* down +failed [\d.]+ ms", table, re.MULTILINE), table

    for router in m.routers:
        router.stop()
    # three intervals and the grace after the last report no check is shown
    _wait(
        "the checks of stopped routers to go",
        lambda: (
            not orjson.loads(_cli(m, tmp_path, "providers", "list", "--json"))[0]["health"].get(
                "check"
            )
        ),
    )
    after = {
        r["name"]: r["health"]
        for r in orjson.loads(_cli(m, tmp_path, "providers", "list", "--json"))
    }
    assert after["gone"] == {"status": "ok", "check": None}
