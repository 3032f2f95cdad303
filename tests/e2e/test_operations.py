"""Operating the gateway from the command line: which process it is, which
port it really uses, where its state goes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
