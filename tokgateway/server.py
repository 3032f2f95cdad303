"""Serving: uvicorn with uvloop and httptools, graceful shutdown that drains
in-flight requests before the lifespan flushes the ledger. With more than one
worker, the parent prepares the shared state once and uvicorn's supervisor runs
the workers on one listening socket."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from tokgateway.common.logs import configure_logging
from tokgateway.common.settings import Settings, load_settings


def ensure_default_config(config_dir: Path) -> bool:
    """Write the default setting.ini when there is none. True when written."""
    target = config_dir / "setting.ini"
    if target.exists():
        return False
    config_dir.mkdir(parents=True, exist_ok=True)
    text = resources.files("tokgateway.common").joinpath("data/setting.ini").read_text()
    target.write_text(text, encoding="utf-8")
    return True


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - platforms without uvloop
        return "asyncio"
    return "uvloop"


def _server_options(settings: Settings) -> dict[str, Any]:
    return {
        "loop": _loop(),
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        # nothing reads the client address, so X-Forwarded-* need no rewriting
        "proxy_headers": False,
        "server_header": False,
        "log_config": None,
        "log_level": str(settings.get("gateway.log_level")),
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": 75,
        "backlog": 4096,
    }


def worker_app() -> ASGIApp:
    """The app of one worker process (uvicorn factory)."""
    from tokgateway.allinone import AllInOne

    settings = load_settings()
    configure_logging(str(settings.get("gateway.log_level")))
    return AllInOne(settings, worker=True).build_app()


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    from tokgateway.allinone import AllInOne, banner, bootstrap, write_control_token

    configure_logging(str(settings.get("gateway.log_level")))
    host = host or settings.host
    port = port if port is not None else settings.port
    count = workers if workers is not None else int(settings.get("gateway.workers"))
    if count > 1:
        generated = asyncio.run(bootstrap(settings))
        write_control_token(settings.data_dir)
        print(banner(settings, list(settings.providers), generated), flush=True)
        uvicorn.run(
            "tokgateway.server:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=count,
            **_server_options(settings),
        )
        return
    app = AllInOne(settings).build_app()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **_server_options(settings)))
    if _loop() == "uvloop":
        import uvloop

        uvloop.run(server.serve())
    else:  # pragma: no cover
        asyncio.run(server.serve())
