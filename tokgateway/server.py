"""Serving: uvicorn with uvloop and httptools, graceful shutdown that drains
in-flight requests before the lifespan flushes the ledger."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

import uvicorn

from tokgateway.common.logs import configure_logging
from tokgateway.common.settings import Settings


def ensure_default_config(config_dir: Path) -> bool:
    """Write the default setting.ini when there is none. True when written."""
    target = config_dir / "setting.ini"
    if target.exists():
        return False
    config_dir.mkdir(parents=True, exist_ok=True)
    text = resources.files("tokgateway.common").joinpath("data/setting.ini").read_text()
    target.write_text(text, encoding="utf-8")
    return True


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    from tokgateway.allinone import AllInOne

    configure_logging(str(settings.get("gateway.log_level")))
    gateway = AllInOne(settings)
    app = gateway.build_app()
    loop = "uvloop"
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - platforms without uvloop
        loop = "asyncio"
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        loop=loop,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=str(settings.get("gateway.log_level")),
        timeout_graceful_shutdown=30,
        timeout_keep_alive=75,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve()) if loop == "asyncio" else _run_uvloop(server)


def _run_uvloop(server: uvicorn.Server) -> None:
    import uvloop

    uvloop.run(server.serve())
