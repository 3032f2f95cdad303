"""Serving the built console at /ui (tokgateway/ui.py), on a stand-in build."""

from __future__ import annotations

import tomllib
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tokgateway.ui import SECURITY_HEADERS, ui_routes

ROOT = Path(__file__).resolve().parents[2]


def _build(root: Path) -> Path:
    for layout in ("web", "h5"):
        (root / layout / "assets").mkdir(parents=True)
        (root / layout / "index.html").write_text(f"<html>{layout} console</html>")
        (root / layout / "assets" / "app-1a2b.js").write_text("console.log(1)")
    return root


def test_serves_both_layouts_with_the_policy(tmp_path: Path) -> None:
    client = TestClient(Starlette(routes=ui_routes(_build(tmp_path / "dist"))))
    web = client.get("/ui/")
    assert web.status_code == 200 and "web console" in web.text
    assert web.headers["cache-control"] == "no-cache"
    for name, value in SECURITY_HEADERS.items():
        assert web.headers[name] == value
    assert "h5 console" in client.get("/ui/h5/").text
    asset = client.get("/ui/assets/app-1a2b.js")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert client.get("/ui", follow_redirects=False).headers["location"].endswith("/ui/")
    assert client.get("/ui/assets/missing.js").status_code == 404


def test_not_built_says_how_to_build(tmp_path: Path) -> None:
    client = TestClient(Starlette(routes=ui_routes(_missing(tmp_path))))
    resp = client.get("/ui/")
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["code"] == "console_not_built" and "make ui" in err["message"]


def _missing(tmp_path: Path) -> Path:
    """A build folder without the web layout counts as not built."""
    (tmp_path / "dist" / "h5").mkdir(parents=True)
    return tmp_path / "dist"


def test_the_wheel_carries_the_built_files() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["tokgateway.console"] == "fe/dist"
    assert "tokgateway.console" in setuptools["packages"]
    data = setuptools["package-data"]["tokgateway.console"]
    assert {"web/*", "web/assets/*", "h5/*", "h5/assets/*"} <= set(data)
    assert (ROOT / "fe" / "dist" / "__init__.py").is_file()  # committed: the package exists unbuilt
