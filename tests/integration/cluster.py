"""A throwaway mesh on this machine for tests and benchmarks: its own NATS
(JetStream), PostgreSQL (initdb in a temp dir), Redis, and the four services
as `gatewayd --service ...` processes, each on a free port. Every piece can be
stopped, killed and restarted on the same port and data, so fault tests never
touch the machine's shared servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SECRET_KEY = "mesh-test-secret-key-0123456789abcdef"
ADMIN_KEY = "tga-mesh-test-admin-key-0123456789abcdefgh"
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, up: bool = True, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port) == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not become {'open' if up else 'closed'}")


def _pg_tool(name: str) -> str:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found")
    return found


def _pg_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: run it as the postgres user when root
    (directly, so signals reach it)."""
    if os.geteuid() == 0:
        return {"user": "postgres", "group": "postgres"}
    return {}


class Proc:
    def __init__(
        self,
        name: str,
        cmd: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        popen: dict[str, Any] | None = None,
    ):
        self.name = name
        self.cmd = cmd
        self.log = log
        self.env = env
        self.popen = popen or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                **self.popen,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 25.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Nats:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.store = root / "nats"
        self.store.mkdir(parents=True, exist_ok=True)
        self.url = f"nats://127.0.0.1:{self.port}"
        cmd = [
            shutil.which("nats-server") or "/usr/sbin/nats-server",
            "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
        ]  # fmt: skip
        self.proc = Proc("nats", cmd, root / "nats.log")

    def start(self) -> None:
        self.proc.start()
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.stop()
        wait_port(self.port, up=False)


class Postgres:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        # Its own directory right under /tmp: the postgres user (when we are root)
        # must be able to reach it, which a test's tmp_path does not allow.
        self.base = Path(tempfile.mkdtemp(prefix="tg-pg-"))
        self.dir = self.base / "data"
        self.sock = self.base / "sock"
        self.log = root / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: Proc | None = None

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        self.sock.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
            shutil.chown(self.base, "postgres", "postgres")
        subprocess.run(
            [_pg_tool("initdb"), "-D", str(self.dir), "-U", "postgres", "-A", "trust", "-N"],
            check=True,
            **_pg_user(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        cmd = (
            [
                _pg_tool("postgres"),
                "-D", str(self.dir), "-p", str(self.port), "-k", str(self.sock),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=100", "-c", "shared_buffers=64MB",
            ]
        )  # fmt: skip
        self.proc = Proc("postgres", cmd, self.log, popen=_pg_user())
        self.proc.start()
        wait_port(self.port)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """An open port is not a server that takes connections: it answers
        'the database system is starting up' until recovery is done."""
        deadline = time.monotonic() + timeout
        probe = [_pg_tool("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while subprocess.run(probe, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres on {self.port} not ready after {timeout:.0f}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGINT)  # fast shutdown
            self.proc = None
        wait_port(self.port, up=False)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class Redis:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        cmd = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(root),
        ]  # fmt: skip
        self.proc = Proc("redis", cmd, root / "redis.log")

    def start(self) -> None:
        self.proc.start()
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.stop()


CONFIG = """
[gateway]
log_level = warning
access_log = false

[ledger]
batch_size = 500

[prices]
echo = 1.5, 2.5
"""


class Service:
    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        kind = name.split("-", maxsplit=1)[0]
        cmd = [sys.executable, "-m", "tokgateway.daemon", "--service", kind]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = Proc(name, cmd, root / f"{name}.log", env)

    def start(self) -> None:
        self.proc.start()

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.proc.tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.proc.tail()}")

    def stop(self) -> None:
        self.proc.stop()

    def kill(self) -> None:
        self.proc.kill()


class Mesh:
    """Infrastructure plus services; ``routers`` replicas of the router."""

    def __init__(self, root: Path, *, routers: int = 2, config: str = CONFIG) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.nats = Nats(root)
        self.pg = Postgres(root)
        self.redis = Redis(root)
        config_dir = root / "config"
        config_dir.mkdir(exist_ok=True)
        (config_dir / "setting.ini").write_text(config)
        ports = {n: free_port() for n in ("auth", "ledger", "registry")}
        self.env: dict[str, str] = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))},
            "GATEWAY_CONFIG_DIR": str(config_dir),
            "GATEWAY_ENV": "test",
            "GATEWAY_DATA_DIR": str(root / "data"),
            "GATEWAY_DATABASE_URL": self.pg.url,
            "GATEWAY_NATS_URL": self.nats.url,
            "GATEWAY_REDIS_URL": self.redis.url,
            "GATEWAY_SECRET_KEY": SECRET_KEY,
            "GATEWAY_ADMIN_KEY": ADMIN_KEY,
            "GATEWAY_AUTH_URL": f"http://127.0.0.1:{ports['auth']}",
            "GATEWAY_LEDGER_URL": f"http://127.0.0.1:{ports['ledger']}",
            "GATEWAY_REGISTRY_URL": f"http://127.0.0.1:{ports['registry']}",
        }
        self.auth = self._service("auth", ports["auth"])
        self.ledger = self._service("ledger", ports["ledger"])
        self.registry = self._service("registry", ports["registry"])
        self.routers = [self._service(f"router-{i + 1}") for i in range(routers)]

    def _service(self, name: str, port: int | None = None) -> Service:
        svc = Service(name, self.root, self.env)
        if port is not None:
            svc.port = port
            svc.url = f"http://127.0.0.1:{port}"
            svc.proc.cmd[-1] = str(port)
        return svc

    @property
    def services(self) -> list[Service]:
        return [self.auth, self.registry, self.ledger, *self.routers]

    def start(self) -> Mesh:
        self.pg.init()
        self.pg.start()
        self.nats.start()
        self.redis.start()
        for svc in self.services:
            svc.start()
        for svc in self.services:
            svc.wait_ready()
        return self

    def close(self) -> None:
        for svc in self.services:
            svc.stop()
        for infra in (self.redis, self.nats, self.pg):
            with contextlib.suppress(RuntimeError):
                infra.stop()
        self.pg.remove()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.proc.tail()}" for s in self.services)

    # -- admin helpers ------------------------------------------------------------------
    def admin(self, method: str, url: str, **kw: Any) -> Any:
        resp = httpx.request(
            method, url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10.0, **kw
        )
        resp.raise_for_status()
        return resp.json()

    def create_key(self, name: str, **params: Any) -> dict[str, Any]:
        body = {"name": name, **params}
        return dict(self.admin("POST", self.auth.url + "/admin/keys", json=body))

    def usage(self, **params: str) -> list[dict[str, Any]]:
        return list(self.admin("GET", self.ledger.url + "/admin/usage", params=params)["data"])
