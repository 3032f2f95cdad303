"""A real HTTP proxy for the upstream client's tests: Debian's tinyproxy,
started on a free port with a generated config, its log readable by the test."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TinyProxy:
    url: str
    log: Path

    def lines(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tinyproxy(tmp: Path, auth: tuple[str, str] | None = None) -> Iterator[TinyProxy]:
    """``auth``: a user and password the proxy demands (BasicAuth); the URL
    handed out then carries them."""
    binary = shutil.which("tinyproxy") or "/usr/sbin/tinyproxy"
    port = _free_port()
    log = tmp / "tinyproxy.log"
    conf = tmp / "tinyproxy.conf"
    conf.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{log}"\nLogLevel Info\n'
        "MaxClients 20\nAllow 127.0.0.1\nDisableViaHeader Yes\n"
        + (f"BasicAuth {auth[0]} {auth[1]}\n" if auth else "")
    )
    proc = subprocess.Popen(
        [binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"tinyproxy did not start: {log.read_text() if log.exists() else ''}"
                )
            time.sleep(0.05)
        userinfo = f"{auth[0]}:{auth[1]}@" if auth else ""
        yield TinyProxy(f"http://{userinfo}127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
