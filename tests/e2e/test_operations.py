"""Operating the gateway from the command line: which process it is, which
port it really uses, where its state goes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import free_port

pytestmark = pytest.mark.e2e


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "OPENAI_", "ANTHROPIC_", "XDG_"))
    }
    return {**base, "XDG_STATE_HOME": str(tmp_path / "xdg-state"), **extra}


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokgateway.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_fails_when_another_gateway_holds_the_port(tmp_path: Path) -> None:
    """The other gateway answers /readyz on the same address; start must still
    see that its own process died."""
    other = GatewayProcess(tmp_path / "other", "[gateway]\naccess_log = false\n").start()
    try:
        mine = tmp_path / "mine"
        mine.mkdir()
        env = _env(
            tmp_path,
            GATEWAY_DATA_DIR=str(mine / "data"),
            GATEWAY_CONFIG_DIR=str(mine / "cfg"),
            GATEWAY_PORT=str(other.port),
        )
        res = _cli(["start"], mine, env)
        assert res.returncode == 1, res.stdout
        assert "started" not in res.stdout
        assert f"cannot listen on 127.0.0.1:{other.port}" in res.stderr
        assert _cli(["status"], mine, env).returncode == 3
    finally:
        other.stop()


def test_run_with_port_in_use_is_one_line_before_any_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(
            tmp_path,
            GATEWAY_DATA_DIR=str(tmp_path / "data"),
            GATEWAY_CONFIG_DIR=str(tmp_path / "cfg"),
            GATEWAY_PORT=str(port),
        )
        res = _cli(["run"], tmp_path, env)
    assert res.returncode == 1
    assert "Tokligence Gateway" not in res.stdout  # no banner
    errors = [ln for ln in res.stderr.splitlines() if not ln.startswith("wrote default config")]
    assert errors == [f"gateway: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_cli_finds_the_gateway_of_its_data_dir_not_the_default_port(tmp_path: Path) -> None:
    """Started with --port, the gateway writes the port it bound; status, url
    and key commands of the same data dir reach it without being told."""
    port = free_port()
    env = _env(
        tmp_path,
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_CONFIG_DIR=str(tmp_path / "cfg"),
    )
    started = _cli(["start", "--port", str(port)], tmp_path, env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"on http://127.0.0.1:{port}" in started.stdout  # the banner's real port
        assert f"state: {tmp_path / 'data'}" in started.stdout
        assert _cli(["url"], tmp_path, env).stdout.strip() == f"http://127.0.0.1:{port}"
        status = _cli(["status"], tmp_path, env)
        assert status.returncode == 0 and f"127.0.0.1:{port}" in status.stdout
        created = _cli(["keys", "create", "--name", "via-port-file"], tmp_path, env)
        assert created.returncode == 0, created.stderr
        key = next(w for w in created.stdout.split() if w.startswith("tgk-"))
        # the key was made by the running gateway (not on the file): it works at once
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 200
    finally:
        assert _cli(["stop"], tmp_path, env).returncode == 0
    assert not (tmp_path / "data" / "gateway.port").exists()


def test_gatewayd_keeps_state_in_the_xdg_state_dir(tmp_path: Path) -> None:
    """Started in some directory with nothing set, gatewayd writes neither
    ./config nor ./data there, and its banner says where state goes."""
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    env = _env(tmp_path, GATEWAY_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokgateway.daemon"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        state = tmp_path / "xdg-state" / "tokgateway"
        assert (state / "gateway.db").exists()
        assert list(work.iterdir()) == []
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"state: {state}" in out
    assert "config: built-in defaults" in out


def test_revoking_the_admin_key_asks_and_then_shows_it_revoked(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "[gateway]\naccess_log = false\n").start()
    try:
        keys = orjson.loads(gw.cli("keys", "list", "--json").stdout)
        admin = next(k for k in keys if k["is_admin"])
        listed = gw.cli("keys", "list").stdout
        assert re.search(rf"{admin['id']}\s+\S+\s+admin\s", listed)
        refused = gw.cli("keys", "revoke", admin["id"], check=False)  # stdin is no terminal
        assert refused.returncode == 1
        assert "admin key" in refused.stderr and "--yes" in refused.stderr
        still = orjson.loads(gw.cli("keys", "list", "--json").stdout)
        assert next(k for k in still if k["id"] == admin["id"])["status"] == "active"
        assert "\x1b" not in listed  # not a terminal: no colour
        gw.cli("keys", "revoke", admin["id"], "--yes")
        listed = gw.cli("keys", "list").stdout
        row = next(line for line in listed.splitlines() if line.startswith(admin["id"]))
        assert "revoked (admin)" in row
    finally:
        gw.stop()


def test_mesh_errors_name_the_url_that_failed(tmp_path: Path) -> None:
    """A live auth and a dead ledger: usage names the ledger's URL, status
    reports each service."""
    gw = GatewayProcess(tmp_path, "[gateway]\naccess_log = false\n").start()
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        env = {
            **gw.env,
            "GATEWAY_AUTH_URL": gw.url,
            "GATEWAY_REGISTRY_URL": gw.url,
            "GATEWAY_LEDGER_URL": dead,
            "GATEWAY_ADMIN_KEY": gw.admin_token(),
        }
        usage = _cli(["usage"], tmp_path, env)
        assert usage.returncode == 1
        assert f"cannot reach the ledger service at {dead}" in usage.stderr
        assert gw.url not in usage.stderr
        status = _cli(["status"], tmp_path, env)
        assert status.returncode == 1
        rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
        assert rows["auth"][1:3] == [gw.url, "ready"]
        assert rows["registry"][2] == "ready"
        assert rows["ledger"][1:3] == [dead, "down"]
        as_json = orjson.loads(_cli(["status", "--json"], tmp_path, env).stdout)
        assert {r["service"]: r["status"] for r in as_json} == {
            "auth": "ready",
            "ledger": "down",
            "registry": "ready",
        }
    finally:
        gw.stop()


def test_unset_api_key_env_warns_at_start_and_fails_health(tmp_path: Path) -> None:
    config = (
        "[gateway]\naccess_log = false\n"
        "[provider.openai]\nkind = openai\napi_key_env = TOKGW_TEST_UNSET_KEY\n"
        "[provider.local]\nkind = openai-compatible\n"
        "base_url = http://user:s3cret-pw@127.0.0.1:9/v1\n"
    )
    gw = GatewayProcess(tmp_path, config).start()
    try:
        assert "TOKGW_TEST_UNSET_KEY" in gw.stdout_text()  # the banner warns
        listed = gw.cli("providers", "list")
        assert "warning: provider openai: api_key_env names TOKGW_TEST_UNSET_KEY" in listed.stderr
        rows = {r["name"]: r for r in orjson.loads(gw.cli("providers", "list", "--json").stdout)}
        assert rows["openai"]["health"]["status"] == "fail"
        assert rows["local"]["health"]["status"] == "ok"
        assert rows["local"]["base_url"] == "http://****@127.0.0.1:9/v1"
        shown = gw.cli("config", "show").stdout
        assert "s3cret-pw" not in shown and "s3cret-pw" not in listed.stdout
    finally:
        gw.stop()


def test_reload_applies_edited_ini_files_without_a_restart(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path, "[gateway]\naccess_log = false\n").start()
    try:
        pid = gw.proc.pid if gw.proc else 0
        key = gw.create_key("reload")["key"]
        body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"authorization": f"Bearer {key}"}

        def smart() -> int:
            url = f"{gw.url}/v1/chat/completions"
            return httpx.post(url, json=body, headers=headers).status_code

        assert smart() == 404
        assert "note:" not in gw.cli("config", "show").stderr
        (gw.config_dir / "setting.ini").write_text(
            "[gateway]\naccess_log = false\n[routes]\nsmart = echo\n"
        )
        shown = gw.cli("config", "show")
        assert "older version of" in shown.stderr and "setting.ini" in shown.stderr
        assert "gateway reload" in shown.stderr
        assert "asked the gateway" in gw.cli("reload").stdout
        deadline = time.monotonic() + 5
        while smart() != 200:
            assert time.monotonic() < deadline, "route from the edited file never applied"
            time.sleep(0.1)
        assert gw.proc is not None and gw.proc.pid == pid and gw.proc.poll() is None
        assert "note:" not in gw.cli("config", "show").stderr
        # a broken file is refused; the running configuration stays
        (gw.config_dir / "setting.ini").write_text("[gateway]\nlog_level = loud\n")
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        assert smart() == 200
        assert "configuration not reloaded" in gw.stderr_text()
    finally:
        gw.stop()


def test_models_list_expands_globs_from_the_upstream(tmp_path: Path) -> None:
    from tests.support.mock_upstream import MockUpstream, serve_in_thread

    upstream = MockUpstream()
    with serve_in_thread(upstream.app) as url:
        config = (
            "[gateway]\naccess_log = false\n"
            f"[provider.local]\nkind = openai-compatible\nbase_url = {url}/v1\napi_key = sk-up\n"
            "[routes]\nllama3* = local\n[aliases]\nfast = llama3.1:8b\n"
        )
        gw = GatewayProcess(tmp_path, config).start()
        try:
            key = gw.create_key("models")["key"]
            headers = {"authorization": f"Bearer {key}"}
            got = httpx.get(f"{gw.url}/v1/models", headers=headers).json()
            ids = {m["id"]: m["owned_by"] for m in got["data"]}
            assert ids == {
                "echo": "echo",
                "fast": "local",
                "llama3.1:8b": "local",
                "llama3.2:3b": "local",
            }
            anthropic = httpx.get(
                f"{gw.url}/v1/models", headers={**headers, "anthropic-version": "2023-06-01"}
            ).json()
            assert {m["id"] for m in anthropic["data"]} == set(ids)
            assert upstream.models_served == 1  # cached between listings
            assert upstream.rec.headers[-1]["authorization"] == "Bearer sk-up"
        finally:
            gw.stop()


def test_cli_never_talks_to_the_gateway_of_another_data_dir(tmp_path: Path) -> None:
    """Another gateway listens on the configured port; the CLI of a data dir
    no gateway serves works on its own file instead of asking that one."""
    other = GatewayProcess(tmp_path / "other", "[gateway]\naccess_log = false\n").start()
    try:
        mine = tmp_path / "mine"
        mine.mkdir()
        env = _env(
            tmp_path,
            GATEWAY_DATA_DIR=str(mine / "data"),
            GATEWAY_CONFIG_DIR=str(mine / "cfg"),
            GATEWAY_PORT=str(other.port),
        )
        created = _cli(["keys", "create", "--name", "mine-only"], mine, env)
        assert created.returncode == 0, created.stderr
        assert (mine / "data" / "gateway.db").exists()
        names = [k["name"] for k in orjson.loads(other.cli("keys", "list", "--json").stdout)]
        assert "mine-only" not in names
        assert _cli(["status"], mine, env).returncode == 3
    finally:
        other.stop()
