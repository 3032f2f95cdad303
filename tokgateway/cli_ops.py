"""`gateway status` for a mesh (each service's readiness, by URL) and
`gateway reload` (the running gateway re-reads its INI files)."""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

import httpx

from tokgateway.cli_output import Output
from tokgateway.common.settings import Settings, load_settings

MESH_AREAS = ("auth", "ledger", "registry")


def mesh_urls(settings: Settings) -> dict[str, str]:
    """The mesh services the CLI is configured for (GATEWAY_*_URL), plus a
    router when GATEWAY_URL names one."""
    urls = {a: str(settings.get(f"gateway.{a}_url")).rstrip("/") for a in MESH_AREAS}
    urls = {a: u for a, u in urls.items() if u}
    if urls and os.environ.get("GATEWAY_URL"):
        urls = {"router": os.environ["GATEWAY_URL"].rstrip("/"), **urls}
    return urls


def probe(url: str, timeout: float = 3.0) -> tuple[str, str]:
    """(state, detail) of one service from its /readyz: ready, not ready (with
    the dependencies it says are failing) or down (with the connection error)."""
    try:
        resp = httpx.get(url + "/readyz", timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        return "down", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        body: Any = resp.json()
    except ValueError:
        body = {}
    if resp.status_code == 200:
        return "ready", ""
    failing = [k for k, v in body.items() if v is False] if isinstance(body, dict) else []
    detail = f"HTTP {resp.status_code}" + (f"; failing: {', '.join(failing)}" if failing else "")
    return "not ready", detail


def mesh_status(settings: Settings, out: Output, as_json: bool) -> int:
    """0 when every service is ready, 1 otherwise."""
    rows = []
    for service, url in mesh_urls(settings).items():
        state, detail = probe(url)
        rows.append({"service": service, "url": url, "status": state, "detail": detail})
    if as_json:
        out.json(rows)
    else:
        out.table(
            ("SERVICE", "URL", "STATUS", "DETAIL"),
            [(r["service"], r["url"], r["status"], r["detail"]) for r in rows],
            status_column="STATUS",
        )
    return 0 if all(r["status"] == "ready" for r in rows) else 1


def cmd_reload(args: argparse.Namespace) -> int:
    """SIGHUP to the gateway of this data dir: it re-reads the INI files."""
    from tokgateway import runfiles

    settings = load_settings()
    running = runfiles.read(settings.data_dir)
    out = Output.for_stdout()
    if running is None:
        out.err.write(f"gateway: no gateway runs from {settings.data_dir}\n")
        return 3
    os.kill(running.pid, signal.SIGHUP)
    out.line(f"asked the gateway (pid {running.pid}) to reload {settings.config_dir}")
    return 0


def add_commands(sub: Any) -> None:
    reload = sub.add_parser(
        "reload",
        help="re-read the INI files in the running gateway (same as SIGHUP), no restart",
    )
    reload.set_defaults(func=cmd_reload)
