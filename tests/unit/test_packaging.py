"""What `pip install tokgateway` gives: the all-in-one gateway without the
mesh's drivers, which come with the `mesh` extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MESH_DRIVERS = ("asyncpg", "nats", "redis", "opentelemetry.exporter")

# Refuses the mesh drivers as if they were not installed.
PROBE = """
import sys
from importlib.abc import MetaPathFinder

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("asyncpg", "nats", "redis") or name.startswith(
            "opentelemetry.exporter"
        ):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Refuse())
import tokgateway.cli, tokgateway.daemon, tokgateway.server, tokgateway.process
from tokgateway.allinone import AllInOne
from tokgateway.common.settings import load_settings
from tokgateway.common.tracing import Tracing

Tracing("router")

AllInOne(load_settings(sys.argv[1], {"GATEWAY_DATA_DIR": sys.argv[2]})).build_app()
tokgateway.cli.build_parser().parse_args(["keys", "list"])
print("ok")
"""


def test_all_in_one_imports_without_mesh_drivers(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "cfg"), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_mesh_drivers_are_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    mesh = " ".join(project["optional-dependencies"]["mesh"])
    for dist in ("asyncpg", "nats-py", "redis", "opentelemetry-exporter-otlp-proto-http"):
        assert dist not in base
        assert dist in mesh
    assert "'.[dev,mesh]'" in (ROOT / "Makefile").read_text()
    assert "[mesh]" in (ROOT / "Dockerfile").read_text()


def test_license_matches_the_declared_licence() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_mesh_service_without_the_drivers_says_what_to_install(tmp_path: Path) -> None:
    probe = PROBE.split("import tokgateway.cli", maxsplit=1)[0] + (
        "from tokgateway.daemon import main\nsys.exit(main(['--service', 'auth']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "GATEWAY_CONFIG_DIR": str(tmp_path / "cfg"),
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        },
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'tokgateway[mesh]'" in done.stderr
    assert "Traceback" not in done.stderr
