"""The `gateway` command as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "OPENAI_", "ANTHROPIC_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "tokgateway.cli", *args],
        check=False,
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_show_names_layers_and_masks(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    (cfg / "test").mkdir(parents=True)
    (cfg / "setting.ini").write_text("[gateway]\nport = 9100\n")
    (cfg / "test" / "gateway.ini").write_text("[gateway]\nlog_level = warning\n")
    res = run(
        ["config", "show"],
        tmp_path,
        {
            "GATEWAY_CONFIG_DIR": str(cfg),
            "GATEWAY_ENV": "test",
            "OPENAI_API_KEY": "sk-proj-abcdefghijklmnop",
            "GATEWAY_ADMIN_KEY": "tga-topsecret-xyz",
        },
    )
    assert res.returncode == 0, res.stderr
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines()[2:]}
    assert lines["gateway.port"].split()[1:] == ["9100", "setting.ini"]
    assert lines["gateway.log_level"].split()[1:] == ["warning", "test/gateway.ini"]
    assert lines["gateway.env"].split()[-1] == "environment"
    assert lines["gateway.host"].split()[-1] == "default"
    assert "sk-proj-abcdefghijklmnop" not in res.stdout
    assert "topsecret" not in res.stdout
    assert "provider.openai.api_key" in lines


def test_bad_config_stops_with_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "setting.ini").write_text("[gateway]\nport = lots\n")
    for cmd in (["run"], ["config", "show"]):
        res = run(cmd, tmp_path, {"GATEWAY_CONFIG_DIR": str(cfg)})
        assert res.returncode == 2
        assert "setting.ini" in res.stderr and "port" in res.stderr
        assert "Traceback" not in res.stderr


def test_run_writes_default_config_when_missing(tmp_path: Path) -> None:
    cfg = tmp_path / "fresh-config"
    # A bad port makes `run` stop right after the config step, without serving.
    res = run(["run"], tmp_path, {"GATEWAY_CONFIG_DIR": str(cfg), "GATEWAY_PORT": "nope"})
    assert (cfg / "setting.ini").exists()
    assert res.returncode == 2 and "GATEWAY_PORT" in res.stderr


def test_keys_on_a_stopped_gateway_use_the_data_file(tmp_path: Path) -> None:
    env = {
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_CONFIG_DIR": str(tmp_path),
        "GATEWAY_PORT": "1",
    }
    created = run(["keys", "create", "--name", "offline"], tmp_path, env)
    assert created.returncode == 0, created.stderr
    assert "tgk-" in created.stdout and "cannot show it again" in created.stdout
    listed = run(["keys", "list"], tmp_path, env)
    assert "offline" in listed.stdout and "tgk-" in listed.stdout  # the hint only
    secret = next(w for w in created.stdout.split() if w.startswith("tgk-"))
    assert secret not in listed.stdout
    usage = run(["usage"], tmp_path, env)
    assert usage.returncode == 0 and "No usage" in usage.stdout
    bad = run(["keys", "revoke", "key_missing"], tmp_path, env)
    assert bad.returncode == 1 and "key_missing" in bad.stderr


def test_start_shows_admin_key_on_terminal_never_in_log(tmp_path: Path) -> None:
    from tests.support.mock_upstream import free_port

    data = tmp_path / "data"
    env = {
        "GATEWAY_DATA_DIR": str(data),
        "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
        "GATEWAY_PORT": str(free_port()),
    }
    started = run(["start"], tmp_path, env)
    try:
        assert started.returncode == 0, started.stderr
        admin = next(w for w in started.stdout.split() if w.startswith("tga-"))
        assert run(["status"], tmp_path, env).returncode == 0
    finally:
        stopped = run(["stop"], tmp_path, env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert admin not in (data / "gateway.log").read_text()
    assert not (data / "banner.txt").exists()
    assert (data / "gateway.db").stat().st_mode & 0o077 == 0
    assert run(["status"], tmp_path, env).returncode == 3
