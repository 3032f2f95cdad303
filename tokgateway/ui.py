"""The web console at /ui: the files `make ui` builds (fe/dist/web, and the
phone layout fe/dist/h5 at /ui/h5), served as they are. The console only calls
the gateway's own admin API from the same origin; the headers below keep it
from loading anything from elsewhere. Not built: /ui says how to build it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokgateway.common.errors import NotFound
from tokgateway.common.http import error_response

PREFIX = "/ui"
LAYOUTS = ("web", "h5")

# Everything is bundled: scripts, styles and data come from this origin only.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def console_dir() -> Path | None:
    """Where the built files are: the installed package ``tokgateway.console``
    (the wheel, or fe/dist in an editable install), else a source checkout's
    fe/dist. None when neither holds a build."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("tokgateway.console")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    candidates.append(Path(__file__).resolve().parents[1] / "fe" / "dist")
    for root in candidates:
        if (root / "web" / "index.html").is_file():
            return root
    return None


class _Headers:
    """Adds the security headers, and keeps index.html from being cached (the
    hashed files under assets/ may be cached for good)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        immutable = "/assets/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
                headers.append((b"cache-control", cache.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _not_built(request: Request) -> Response:
    return error_response(
        NotFound(
            "The web console is not built: run `make ui` (Node.js and npm), then reload.",
            code="console_not_built",
        )
    )


def ui_routes(root: Path | None = None) -> list[BaseRoute]:
    """Mounts for /ui/h5 and /ui (the more specific first)."""
    root = root if root is not None else console_dir()
    if root is None or not (root / "web" / "index.html").is_file():
        return [
            Route(PREFIX, _not_built, methods=["GET", "HEAD"]),
            Route(PREFIX + "/{rest:path}", _not_built, methods=["GET", "HEAD"]),
        ]
    mounts: list[BaseRoute] = []
    if (root / "h5" / "index.html").is_file():
        mounts.append(
            Mount(PREFIX + "/h5", app=_Headers(StaticFiles(directory=root / "h5", html=True)))
        )
    mounts.append(Mount(PREFIX, app=_Headers(StaticFiles(directory=root / "web", html=True))))
    return mounts
