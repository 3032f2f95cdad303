"""Serving: uvicorn with uvloop and httptools, graceful shutdown that drains
in-flight requests before the lifespan flushes the ledger. With more than one
worker, the parent prepares the shared state once and uvicorn's supervisor runs
the workers on one listening socket."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors.multiprocess import Multiprocess

from tokgateway import runfiles
from tokgateway.common.logs import configure_logging
from tokgateway.common.settings import Settings, load_settings
from tokgateway.http_guard import GuardedConfig, Limits


def ensure_default_config(config_dir: Path) -> bool:
    """Write setting.ini from the shipped example when there is none, so a
    user's edits never dirty the clone (setting.ini is git-ignored). True when
    written; False also when the directory is not writable (a read-only image
    mount): the built-in defaults apply then."""
    target = config_dir / "setting.ini"
    if target.exists():
        return False
    example = config_dir / "setting.example.ini"
    if example.is_file():
        text = example.read_text(encoding="utf-8")
    else:
        text = resources.files("tokgateway.common").joinpath("data/setting.ini").read_text()
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError:
        return False
    return True


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - platforms without uvloop
        return "asyncio"
    return "uvloop"


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (every socket is a file;
    a 1,024 soft limit is a lockout at 1,024 clients). The soft limit now."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


def limits(settings: Settings, file_limit: int | None = None) -> Limits:
    """Connection limits from the settings; the connection cap stays below the
    file limit, with room for upstream sockets, the database and logs."""
    cap = int(settings.get("gateway.max_connections"))
    if file_limit is not None:
        cap = max(16, min(cap, file_limit // 2))
    return Limits(
        idle_timeout=float(settings.get("gateway.idle_timeout")),
        header_timeout=float(settings.get("gateway.header_timeout")),
        body_timeout=float(settings.get("gateway.body_timeout")),
        max_connections=cap,
        max_header_bytes=int(settings.get("gateway.max_header_kb")) * 1024,
        max_headers=int(settings.get("gateway.max_headers")),
        drain_seconds=float(settings.get("gateway.drain_seconds")),
    )


def _server_options(settings: Settings) -> dict[str, Any]:
    return {
        "loop": _loop(),
        "lifespan": "on",
        "access_log": False,
        # nothing reads the client address, so X-Forwarded-* need no rewriting
        "proxy_headers": False,
        "server_header": False,
        "log_config": None,
        "log_level": str(settings.get("gateway.log_level")),
        "timeout_graceful_shutdown": float(settings.get("gateway.drain_seconds")),
        "timeout_keep_alive": float(settings.get("gateway.idle_timeout")),
        "backlog": 4096,
        "limits": limits(settings, raise_file_limit()),
    }


def worker_app() -> ASGIApp:
    """The app of one worker process (uvicorn factory). A worker dies with its
    supervisor, even one killed with SIGKILL that cannot stop it."""
    from tokgateway.allinone import AllInOne

    die_with_parent()
    settings = load_settings()
    configure_logging(str(settings.get("gateway.log_level")))
    return AllInOne(settings, worker=True).build_app()


def die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this process when its parent dies
    (prctl PR_SET_PDEATHSIG). If the parent is already gone (it died before
    this ran), exit now. Elsewhere, a thread watches the parent pid."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) == 0:
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
            return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:  # pragma: no cover - non-Linux
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


class BindError(Exception):
    """The listening address cannot be taken (in use, not permitted)."""


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Bind first, then announce: a port in use is one clear line (BindError)
    before any banner, and the banner, the pid and port files show the address
    really bound."""
    from tokgateway.allinone import AllInOne, banner, bootstrap, write_control_token

    configure_logging(str(settings.get("gateway.log_level")))
    if host:
        settings = settings.override("gateway.host", host)
    if port is not None:
        settings = settings.override("gateway.port", port)
    host, port = settings.host, settings.port
    try:
        sock = runfiles.bind(host, port)
    except OSError as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = int(sock.getsockname()[1])
    if bound != port:
        settings = settings.override("gateway.port", bound)
    count = workers if workers is not None else int(settings.get("gateway.workers"))
    if count != int(settings.get("gateway.workers")):
        settings = settings.override("gateway.workers", count)
    runfiles.write(settings.data_dir, host, bound)
    try:
        if count > 1:
            generated = asyncio.run(bootstrap(settings))
            write_control_token(settings.data_dir)
            print(banner(settings, list(settings.providers), generated), flush=True)
            config = GuardedConfig(
                "tokgateway.server:worker_app",
                factory=True,
                host=host,
                port=bound,
                workers=count,
                **_server_options(settings),
            )
            Multiprocess(config, sockets=[sock]).run()
            return
        app = AllInOne(settings).build_app()
        server = uvicorn.Server(
            GuardedConfig(app, host=host, port=bound, **_server_options(settings))
        )
        if _loop() == "uvloop":
            import uvloop

            uvloop.run(server.serve(sockets=[sock]))
        else:  # pragma: no cover
            asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
        runfiles.clear(settings.data_dir)
