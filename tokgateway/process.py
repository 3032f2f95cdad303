"""Background process management for `gateway start|stop|status`: a pid file and
a log file in the data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tokgateway import runfiles
from tokgateway.admin_client import gateway_url
from tokgateway.common.settings import Settings

PID_FILE = runfiles.PID_FILE
LOG_FILE = "gateway.log"
BANNER_FILE = "banner.txt"


def _pid(settings: Settings) -> int | None:
    path = settings.data_dir / PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not runfiles.pid_alive(pid):
        path.unlink(missing_ok=True)
        (settings.data_dir / runfiles.PORT_FILE).unlink(missing_ok=True)
        return None
    return pid


def start(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    from tokgateway.server import ensure_default_config

    running = _pid(settings)
    if running is not None:
        print(f"gateway already running (pid {running}); `gateway stop` first")
        return 1
    ensure_default_config(settings.config_dir)
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / LOG_FILE
    cmd = [sys.executable, "-m", "tokgateway.daemon"]
    # the child serves exactly this CLI's config and data dir, wherever it runs
    env = {
        **os.environ,
        "GATEWAY_DATA_DIR": str(data.resolve()),
        "GATEWAY_CONFIG_DIR": str(settings.config_dir.resolve()),
    }
    if host:
        cmd += ["--host", host]
    if port:
        cmd += ["--port", str(port)]
    offset = log_path.stat().st_size if log_path.exists() else 0
    # The banner (with a first start's admin key) goes to a private file that is
    # shown here and removed, never into the log.
    banner_path = data / BANNER_FILE
    banner_path.unlink(missing_ok=True)
    banner_fd = os.open(banner_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=banner_fd,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    os.close(banner_fd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"gateway exited with code {proc.returncode}; see {log_path}", file=sys.stderr)
            print(_new_log(log_path, offset).rstrip(), file=sys.stderr)
            return 1
        # Only our own child counts: it writes its pid and the port it bound,
        # so another gateway answering on the same address is never taken for it.
        mine = runfiles.read(data)
        if mine is not None and mine.pid == proc.pid:
            try:
                if httpx.get(mine.url + "/readyz", timeout=1.0, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    else:
        print(f"gateway did not become ready in 30 s; see {log_path}", file=sys.stderr)
        return 1
    if proc.poll() is not None:
        print(f"gateway exited with code {proc.returncode}; see {log_path}", file=sys.stderr)
        return 1
    assert mine is not None  # the loop left through its break
    print(_take_banner(banner_path))
    print(f"started (pid {proc.pid}) at {mine.url}; log: {log_path}")
    print("stop it with `make stop` or `gateway stop`")
    return 0


def _take_banner(path: Path, wait: float = 2.0) -> str:
    deadline = time.monotonic() + wait
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if "Anthropic base_url" in text and ("Admin key" not in text or "gateway keys" in text):
            break
        time.sleep(0.05)
    path.unlink(missing_ok=True)
    return text.rstrip()


def _new_log(path: Path, offset: int) -> str:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", "replace")


def stop(settings: Settings, timeout: float = 40.0) -> int:
    pid = _pid(settings)
    if pid is None:
        print("gateway is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        print(f"gateway (pid {pid}) did not stop in {timeout:.0f} s; sending SIGKILL")
        os.kill(pid, signal.SIGKILL)
    (settings.data_dir / PID_FILE).unlink(missing_ok=True)
    (settings.data_dir / runfiles.PORT_FILE).unlink(missing_ok=True)
    print(f"stopped (pid {pid})")
    return 0


def status(settings: Settings) -> int:
    pid = _pid(settings)
    if pid is None:
        print("gateway is not running")
        return 3
    print(f"gateway running (pid {pid}) at {gateway_url(settings)}")
    return 0
