"""`pip install .` gives a wheel named tokgateway whose commands work in a clean
virtualenv, outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.support.console_build import ensure_built
from tests.support.mock_upstream import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_and_serves(tmp_path: Path) -> None:
    ensure_built()  # the wheel carries the web console
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    wheels = list(dist.glob("tokgateway-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", str(wheels[0])],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "OPENAI_", "ANTHROPIC_", "PYTHON", "XDG_"))
    }
    clean_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    version = subprocess.run(
        [str(bin_dir / "gateway"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env,
    )
    assert version.stdout.startswith("tokgateway ")
    # the plain install is the all-in-one: the mesh drivers come with [mesh]
    drivers = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.util as u; print([m for m in ('asyncpg', 'nats', 'redis') "
            "if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env,
    )
    assert drivers.stdout.strip() == "[]"
    port = free_port()
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [str(bin_dir / "gatewayd"), "--port", str(port)],
        cwd=work,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "installed gatewayd did not start"
            time.sleep(0.1)
        # nothing lands in the directory it was started from: state goes to XDG
        assert not (work / "config").exists() and not (work / "data").exists()
        assert (tmp_path / "state" / "tokgateway" / "gateway.db").exists()
        for path in ("/ui/", "/ui/h5/"):  # served from the installed package
            page = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert page.status_code == 200 and '<div id="root">' in page.text, path
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
