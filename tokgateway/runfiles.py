"""The files a serving gateway leaves in its data dir: ``gateway.pid`` (its own
process id) and ``gateway.port`` (the address it really listens on). The CLI
finds the gateway of a data dir through them instead of guessing the default
port, and `gateway start` uses them to tell its own child from another gateway
that happens to answer on the same address."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "gateway.pid"
PORT_FILE = "gateway.port"


@dataclass(frozen=True)
class Running:
    pid: int
    host: str
    port: int

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(data_dir: Path, host: str, port: int) -> None:
    """Called by the serving process once its socket is bound."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / PORT_FILE).write_text(f"{host} {port}\n")
    (data_dir / PID_FILE).write_text(str(os.getpid()))


def clear(data_dir: Path) -> None:
    """Remove the files if they are still this process's own."""
    try:
        mine = int((data_dir / PID_FILE).read_text().strip()) == os.getpid()
    except (OSError, ValueError):
        mine = False
    if mine:
        (data_dir / PID_FILE).unlink(missing_ok=True)
        (data_dir / PORT_FILE).unlink(missing_ok=True)


def read(data_dir: Path) -> Running | None:
    """The gateway serving from ``data_dir``, if its process is alive."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        host, _, port = (data_dir / PORT_FILE).read_text().strip().rpartition(" ")
        found = Running(pid, host, int(port))
    except (OSError, ValueError):
        return None
    return found if pid_alive(pid) else None


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything else starts, so that a port
    in use is one clear error before any banner (OSError for the caller)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(4096)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


CONFIG_STAMP_FILE = "config.loaded"


def _digest(path: Path) -> str:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def write_config_stamp(data_dir: Path, files: tuple[Path, ...]) -> None:
    """Which INI files, with which content, the serving gateway loaded."""
    import json

    data_dir.mkdir(parents=True, exist_ok=True)
    stamp = {str(f.resolve()): _digest(f) for f in files}
    (data_dir / CONFIG_STAMP_FILE).write_text(json.dumps(stamp, indent=1))


def config_changes(data_dir: Path, files: tuple[Path, ...]) -> list[str]:
    """The INI files that differ from what the running gateway loaded (edited,
    added or removed since), or [] (also when no stamp is there)."""
    import json

    try:
        loaded: dict[str, str] = json.loads((data_dir / CONFIG_STAMP_FILE).read_text())
    except (OSError, ValueError):
        return []
    now = {str(f.resolve()): _digest(f) for f in files}
    return sorted(p for p in set(loaded) | set(now) if loaded.get(p) != now.get(p))
