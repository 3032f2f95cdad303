"""Runs the real `gateway` command as a subprocess on a free port, with its own
config and data dirs, the way a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support.mock_upstream import free_port


def away_from_minute_edge(margin: float = 3.0) -> None:
    """Rate limits count per wall-clock minute: start a burst well inside one."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.1)


class GatewayProcess:
    def __init__(self, root: Path, config: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.config_dir = root / "config"
        self.data_dir = root / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "setting.ini").write_text(config)
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("GATEWAY_", "OPENAI_", "ANTHROPIC_"))
            },
            "GATEWAY_CONFIG_DIR": str(self.config_dir),
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_HOST": "127.0.0.1",
            **(env or {}),
        }
        self.env.pop("PRIMARY_PROVIDER", None)
        self.stdout = root / "stdout.log"
        self.stderr = root / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tokgateway.cli", "run"],
                env=self.env,
                stdout=out,
                stderr=err,
                cwd=self.root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.stderr.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("gateway did not become ready")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return int(code)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "tokgateway.cli", *args],
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=60,
        )
        if check and res.returncode != 0:
            raise AssertionError(f"gateway {' '.join(args)} failed: {res.stderr}")
        return res

    def create_key(self, name: str = "test", *extra: str) -> dict[str, Any]:
        out = self.cli("keys", "create", "--name", name, "--json", *extra).stdout
        return dict(orjson.loads(out))

    def usage(self, *args: str) -> list[dict[str, Any]]:
        return list(orjson.loads(self.cli("usage", "--json", *args).stdout))

    def admin_token(self) -> str:
        return (self.data_dir / "control.token").read_text().strip()

    def ledger_row(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        headers = {"authorization": f"Bearer {self.admin_token()}"}
        while True:
            resp = httpx.get(f"{self.url}/admin/usage/{request_id}", headers=headers)
            if resp.status_code == 200:
                return dict(resp.json())
            if time.monotonic() > deadline:
                raise AssertionError(f"no ledger row for {request_id}")
            time.sleep(0.05)

    def stdout_text(self) -> str:
        return self.stdout.read_text()

    def stderr_text(self) -> str:
        return self.stderr.read_text()
