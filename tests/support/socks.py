"""Real SOCKS5 servers for the upstream client's tests, from Debian packages:
Dante's ``danted`` (no authentication; it logs every connection it passes) and
``microsocks`` (username/password; Dante checks those against the system's
users, which a test must not create). Each starts on a free port and stops
with the test."""

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
class SocksServer:
    host: str
    port: int
    log: Path

    def url(self, scheme: str = "socks5", auth: tuple[str, str] | None = None) -> str:
        userinfo = f"{auth[0]}:{auth[1]}@" if auth else ""
        return f"{scheme}://{userinfo}{self.host}:{self.port}"

    def lines(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} is not installed (apt-get install dante-server microsocks)")
    return found


@contextlib.contextmanager
def _running(cmd: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not start: {log.read_text()}")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def danted(tmp: Path) -> Iterator[SocksServer]:
    """Dante on 127.0.0.1, passing connections to loopback, logging each
    request as it came (``ATYP: 3 address: localhost.8080`` for a name)."""
    port = _free_port()
    log = tmp / "danted.log"
    conf = tmp / "danted.conf"
    conf.write_text(
        f"logoutput: {log}\n"
        "debug: 1\n"  # logs each request: its address type and address
        f"internal: 127.0.0.1 port = {port}\n"
        "external: 127.0.0.1\n"
        "clientmethod: none\n"
        "socksmethod: none\n"
        "user.privileged: root\n"
        "user.unprivileged: nobody\n"
        "client pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n log: error connect disconnect\n}\n"
        "socks pass {\n from: 127.0.0.0/8 to: 127.0.0.0/8\n command: connect\n"
        " log: error connect disconnect\n}\n"
    )
    cmd = [_binary("danted"), "-f", str(conf), "-N", "1", "-p", str(tmp / "danted.pid")]
    with _running(cmd, port, tmp / "danted.out"):
        yield SocksServer("127.0.0.1", port, log)


@contextlib.contextmanager
def microsocks(tmp: Path, user: str, password: str) -> Iterator[SocksServer]:
    """microsocks on 127.0.0.1 demanding ``user`` and ``password``."""
    port = _free_port()
    log = tmp / "microsocks.log"
    cmd = [_binary("microsocks"), "-i", "127.0.0.1", "-p", str(port), "-u", user, "-P", password]
    with _running(cmd, port, log):
        yield SocksServer("127.0.0.1", port, log)
