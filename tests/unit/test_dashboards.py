"""The Grafana dashboards and alert rules as files: generated from one source,
valid against Grafana's dashboard schema (the models of grafana-foundation-sdk,
generated from Grafana's own schemas), every panel on the datasource
variable, and the rules accepted and unit-tested by promtool. That the queries
return data is proven against a real Prometheus in
tests/integration/test_dashboards_prometheus.py."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
ALERTS = ROOT / "deploy/prometheus/alerts.yml"


def _build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", ROOT / "deploy/grafana/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _lost(written: Any, decoded: Any, path: str = "") -> list[str]:
    """Fields of ``written`` that the schema model dropped or changed."""
    if isinstance(written, dict) and isinstance(decoded, dict):
        out = []
        for key, value in written.items():
            if key not in decoded:
                out.append(f"{path}/{key} unknown to the schema")
            else:
                out += _lost(value, decoded[key], f"{path}/{key}")
        return out
    if isinstance(written, list) and isinstance(decoded, list):
        if len(written) != len(decoded):
            return [f"{path}: {len(written)} items, {len(decoded)} decoded"]
        return [
            x
            for i, (a, b) in enumerate(zip(written, decoded, strict=True))
            for x in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if written == decoded else [f"{path}: {written!r} decoded as {decoded!r}"]


def test_generated_files_are_up_to_date() -> None:
    for path, text in _build().rendered().items():
        assert path.read_text() == text, f"{path} is stale: run python deploy/grafana/build.py"
    assert len(DASHBOARDS) == 4


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_matches_grafana_schema(path: Path) -> None:
    plugins.register_default_plugins()  # typed panel options and Prometheus queries
    written = json.loads(path.read_text())
    model = Dashboard.from_json(written)
    decoded = json.loads(JSONEncoder().encode(model))
    assert _lost(written, decoded) == []
    assert model.uid and 8 <= len(model.uid) <= 40
    assert model.title and model.schema_version and model.schema_version >= 36
    for panel in model.panels or []:
        assert type(panel.options).__module__.endswith(("timeseries", "statetimeline", "bargauge"))
        for target in panel.targets or []:
            assert type(target).__module__.endswith(".prometheus"), panel.title


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_uses_the_datasource_variable(path: Path) -> None:
    doc = json.loads(path.read_text())
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        ref = panel["datasource"]
        assert ref == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ref
            assert target["expr"].strip()
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_dashboards_are_provisioned_in_compose_and_kubernetes() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"] if v.startswith("./")}
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/tokgateway.yml").read_text()
    )
    assert mounts["./deploy/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    sources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert sources["datasources"][0]["type"] == "prometheus"
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    prometheus = compose["services"]["prometheus"]
    assert any(v.endswith("/etc/prometheus/alerts.yml:ro") for v in prometheus["volumes"])
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]

    k8s = ROOT / "deploy/k8s"
    listed = yaml.safe_load((k8s / "kustomization.yaml").read_text())["resources"]
    assert {"grafana-dashboards.yaml", "prometheus-rules.yaml"} <= set(listed)
    maps = yaml.safe_load((k8s / "grafana-dashboards.yaml").read_text())
    assert maps["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {f"{p.name}" for p in DASHBOARDS} == set(maps["data"])
    for path in DASHBOARDS:
        assert json.loads(maps["data"][path.name]) == json.loads(path.read_text())
    rules = yaml.safe_load((k8s / "prometheus-rules.yaml").read_text())
    assert yaml.safe_load(rules["data"]["alerts.yml"]) == yaml.safe_load(ALERTS.read_text())


def test_every_alert_says_what_and_how_bad() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "warn"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_promtool_accepts_and_unit_tests_the_rules() -> None:
    # Debian's prometheus package brings promtool; .ci/run installs it.
    PROMTOOL = shutil.which("promtool")
    assert PROMTOOL is not None, "promtool missing: apt-get install prometheus"
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    unit = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yml"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ALERTS.parent,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
