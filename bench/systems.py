"""The systems under test: the fake upstream itself (``direct``), the gateway,
and optionally LiteLLM's proxy, each started, addressed and stopped the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson
from loadgen import Scenario, Target, request_headers
from procs import (
    BenchError,
    Child,
    ProcessGroup,
    descendants,
    free_port,
    pin_prefix,
    read_ready_line,
    wait_http,
)

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_LITELLM_VENV = Path("~/.cache/tokgateway-bench/litellm-venv").expanduser()
LITELLM_STAMP = ".tokgateway-bench-installed"


@dataclass(frozen=True)
class Cores:
    """Where things run: the system under test alone on one core, the load
    generator and the fake upstream on the other. None means no pinning."""

    system: int | None
    load: int | None

    def pinned(self) -> tuple[int, ...]:
        return tuple(c for c in (self.system, self.load) if c is not None)


class System(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def target(self, scenario: Scenario, *, paced: bool = False) -> Target: ...
    def pids(self) -> list[int]:
        """The processes whose CPU and memory count; empty for none."""
        ...


# Limits far above what a run reaches: every check is made, none refuses.
LIMITED_KEY_FLAGS = (
    "--rpm",
    "1000000000",
    "--tpm",
    "1000000000000",
    "--budget-usd",
    "1000000000",
    "--budget-period",
    "month",
)


# -- the fake upstream ----------------------------------------------------------------
@dataclass
class Upstream:
    group: ProcessGroup
    workdir: Path
    cores: Cores
    pace_ms: float
    port: int = 0
    child: Child | None = None

    def start(self) -> None:
        argv = [
            *pin_prefix(self.cores.load),
            sys.executable,
            str(BENCH_DIR / "upstream.py"),
            "--port",
            "0",
            "--pace-ms",
            str(self.pace_ms),
        ]
        self.child = self.group.start(
            "fake upstream", argv, log_path=self.workdir / "upstream.log", stdout_pipe=True
        )
        line = read_ready_line(self.child, timeout=15)
        if not line.startswith("READY "):
            raise BenchError(f"fake upstream said {line!r} instead of READY")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.child is not None:
            self.group.stop(self.child)
            self.child = None


@dataclass
class Direct:
    """Straight to the fake upstream: the floor every other system is measured against."""

    upstream: Upstream
    name: str = "direct"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def target(self, scenario: Scenario, *, paced: bool = False) -> Target:
        path = ("/paced" if paced else "") + scenario.path
        body = scenario.body_for(scenario.paced_model if paced else scenario.model)
        return Target(self.upstream.port, path, request_headers(scenario, "bench"), body)

    def pids(self) -> list[int]:
        return []


# -- the gateway ----------------------------------------------------------------------
def gateway_ini(upstream_port: int, log_level: str) -> str:
    up = f"http://127.0.0.1:{upstream_port}"
    return f"""; Written by bench/run.py: every provider is the fake upstream.
[gateway]
log_level = {log_level}
primary_provider = fake

[provider.fake]
kind = openai-compatible
base_url = {up}/v1

[provider.fakepaced]
kind = openai-compatible
base_url = {up}/paced/v1

[provider.fakeant]
kind = anthropic
base_url = {up}

[provider.fakeantpaced]
kind = anthropic
base_url = {up}/paced

[routes]
paced-* = fakepaced
claude-paced-* = fakeantpaced
claude-* = fakeant
"""


@dataclass
class Gateway:
    group: ProcessGroup
    workdir: Path
    cores: Cores
    upstream: Upstream
    access_log: bool = True
    log_level: str = "info"
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    name: str = "gateway"
    workers: int = 1
    port: int = 0
    key: str = ""
    limited_key: str = ""  # a key with rpm, tpm and a budget, none of them reached
    limits: bool = True  # False: no limited key (the plain key serves chat_limited)
    child: Child | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        for name in ("PRIMARY_PROVIDER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            env.pop(name, None)
        env.update(
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(self.port),
            GATEWAY_DATA_DIR=str(self.workdir / "gateway-data"),
            GATEWAY_CONFIG_DIR=str(self.workdir / "gateway-config"),
            GATEWAY_ENV="dev",
            GATEWAY_ACCESS_LOG="true" if self.access_log else "false",
        )
        return env

    def start(self) -> None:
        exe = self.bin_dir / "gateway"
        if not exe.exists():
            raise BenchError(f"no gateway executable at {exe} (run `make setup`)")
        config = self.workdir / "gateway-config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "setting.ini").write_text(gateway_ini(self.upstream.port, self.log_level))
        self.port = free_port()
        env = self._env()
        self.child = self.group.start(
            "gateway",
            [*pin_prefix(self.cores.system), str(exe), "run", "--workers", str(self.workers)],
            env=env,
            log_path=self.workdir / "gateway.log",
        )
        wait_http(self.child, f"http://127.0.0.1:{self.port}/readyz", timeout=60)
        self.key = self._create_key(env, "bench")
        if self.limits:
            self.limited_key = self._create_key(env, "bench-limited", *LIMITED_KEY_FLAGS)
        else:
            self.limited_key = self.key

    def _create_key(self, env: dict[str, str], name: str, *flags: str) -> str:
        exe = self.bin_dir / "gateway"
        proc = subprocess.run(
            [str(exe), "keys", "create", "--name", name, "--json", *flags],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"`gateway keys create` failed: {proc.stderr.strip()}")
        return str(orjson.loads(proc.stdout)["key"])

    def stop(self) -> None:
        if self.child is not None:
            self.group.stop(self.child, timeout=35)
            self.child = None

    def target(self, scenario: Scenario, *, paced: bool = False) -> Target:
        body = scenario.body_for(scenario.paced_model if paced else scenario.model)
        key = self.limited_key if scenario.limited else self.key
        return Target(self.port, scenario.path, request_headers(scenario, key), body)

    def pids(self) -> list[int]:
        return descendants(self.child.pid) if self.child is not None else []


# -- nginx ----------------------------------------------------------------------------
def nginx_conf(workdir: Path, port: int, upstream_port: int) -> str:
    tmp = workdir / "nginx-tmp"
    return f"""# Written by bench/run.py: a plain reverse proxy, the floor of any proxy hop.
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream fake {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """nginx as a plain reverse proxy in front of the fake upstream (no auth,
    no metering): what one proxy hop costs on this machine at the least."""

    group: ProcessGroup
    workdir: Path
    cores: Cores
    upstream: Upstream
    name: str = "nginx"
    port: int = 0
    child: Child | None = None

    def start(self) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(exe).exists():
            raise BenchError("nginx is not installed (apt-get install -y nginx-light)")
        (self.workdir / "nginx-tmp").mkdir(exist_ok=True)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_conf(self.workdir, self.port, self.upstream.port))
        self.child = self.group.start(
            "nginx",
            [*pin_prefix(self.cores.system), exe, "-c", str(conf), "-p", str(self.workdir)],
            log_path=self.workdir / "nginx.log",
        )
        wait_http(self.child, f"http://127.0.0.1:{self.port}/__stats", timeout=15)

    def stop(self) -> None:
        if self.child is not None:
            self.group.stop(self.child)
            self.child = None

    def target(self, scenario: Scenario, *, paced: bool = False) -> Target:
        path = ("/paced" if paced else "") + scenario.path
        body = scenario.body_for(scenario.paced_model if paced else scenario.model)
        return Target(self.port, path, request_headers(scenario, "bench"), body)

    def pids(self) -> list[int]:
        return descendants(self.child.pid) if self.child is not None else []


# -- LiteLLM --------------------------------------------------------------------------
def litellm_ready(venv: Path) -> bool:
    return (venv / "bin" / "litellm").exists() and (venv / LITELLM_STAMP).exists()


@dataclass
class LiteLLMInstall:
    """Installs ``litellm[proxy]`` into its own virtualenv in the background, at
    the lowest CPU priority so it does not disturb the measurements."""

    group: ProcessGroup
    venv: Path
    log_path: Path
    child: Child | None = None

    def begin(self) -> None:
        if litellm_ready(self.venv):
            return
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        venv, py = str(self.venv), str(self.venv / "bin" / "python")
        if uv:
            steps = [
                [uv, "venv", "-q", "--clear", "--python", sys.executable, venv],
                [uv, "pip", "install", "-q", "--python", py, "litellm[proxy]"],
            ]
        else:
            steps = [
                [sys.executable, "-m", "venv", "--clear", venv],
                [py, "-m", "pip", "install", "-q", "litellm[proxy]"],
            ]
        script = " && ".join(" ".join(_shell_quote(a) for a in step) for step in steps)
        script += f" && touch {_shell_quote(str(self.venv / LITELLM_STAMP))}"
        self.venv.parent.mkdir(parents=True, exist_ok=True)
        self.child = self.group.start(
            "litellm install", ["nice", "-n", "19", "sh", "-c", script], log_path=self.log_path
        )

    def wait(self, timeout: float) -> str | None:
        """None when LiteLLM is installed, else why not."""
        if self.child is not None:
            try:
                self.child.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.group.stop(self.child)
                return f"install did not finish in {timeout:.0f} s (log: {self.log_path})"
            self.group.forget(self.child)
            code = self.child.popen.returncode
            self.child = None
            if code != 0:
                return f"install failed (exit {code}):\n{_tail(self.log_path)}"
        return None if litellm_ready(self.venv) else f"no LiteLLM in {self.venv}"


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LiteLLM:
    """LiteLLM's proxy: no database, one worker, every model on the fake upstream."""

    group: ProcessGroup
    workdir: Path
    cores: Cores
    upstream: Upstream
    venv: Path
    name: str = "litellm"
    port: int = 0
    key: str = "sk-bench-litellm-master"
    child: Child | None = None

    def _config(self) -> dict[str, object]:
        up = f"http://127.0.0.1:{self.upstream.port}"
        entries = [
            ("gpt-4o-mini", "openai/gpt-4o-mini", f"{up}/v1"),
            ("paced-gpt-4o-mini", "openai/gpt-4o-mini", f"{up}/paced/v1"),
            ("text-embedding-3-small", "openai/text-embedding-3-small", f"{up}/v1"),
            ("claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku-20241022", up),
            ("claude-paced-3-5-haiku", "anthropic/claude-3-5-haiku-20241022", f"{up}/paced"),
        ]
        return {
            "model_list": [
                {
                    "model_name": name,
                    "litellm_params": {"model": model, "api_base": base, "api_key": "sk-fake"},
                }
                for name, model, base in entries
            ],
            "general_settings": {"master_key": self.key},
            "litellm_settings": {"drop_params": True, "telemetry": False},
        }

    def start(self) -> None:
        exe = self.venv / "bin" / "litellm"
        if not exe.exists():
            raise BenchError(f"no LiteLLM at {exe}")
        cfg = self.workdir / "litellm.yaml"  # JSON is valid YAML
        cfg.write_bytes(orjson.dumps(self._config(), option=orjson.OPT_INDENT_2))
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
        }
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_TELEMETRY="False",
            LITELLM_LOG="ERROR",
            PYTHONUNBUFFERED="1",
        )
        argv = [
            *pin_prefix(self.cores.system),
            str(exe),
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--num_workers",
            "1",
        ]
        self.child = self.group.start(
            "litellm", argv, env=env, log_path=self.workdir / "litellm.log", cwd=self.workdir
        )
        wait_http(self.child, f"http://127.0.0.1:{self.port}/health/liveliness", timeout=180)
        time.sleep(1.0)

    def stop(self) -> None:
        if self.child is not None:
            self.group.stop(self.child, timeout=15)
            self.child = None

    def target(self, scenario: Scenario, *, paced: bool = False) -> Target:
        body = scenario.body_for(scenario.paced_model if paced else scenario.model)
        return Target(self.port, scenario.path, request_headers(scenario, self.key), body)

    def pids(self) -> list[int]:
        if self.child is None:
            return []
        return descendants(self.child.pid)
