"""The deployment files are checked here, since no container engine or cluster
runs on the build machines: the Dockerfile with hadolint, the compose file
against the Compose JSON schema, the Kubernetes manifests against the API
schemas, and the wiring between them against the code's settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tokgateway.common.settings import KEYS

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
KNOWN_ENV = {var for spec in KEYS for var in spec.env}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_dockerfile_passes_hadolint() -> None:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run(
        [exe, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_ships_both_commands_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["gatewayd"]' in text
    assert "USER 10001" in text
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'gateway = "tokgateway.cli:main"' in scripts
    assert 'gatewayd = "tokgateway.daemon:main"' in scripts


def test_compose_file_matches_the_compose_schema() -> None:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(doc, schema)


def test_compose_runs_the_mesh() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"nats", "postgres", "redis", "prometheus"} <= set(services)
    assert "-js" in services["nats"]["command"]
    for name in ("router", "auth", "ledger", "registry"):
        svc = services[name]
        assert svc["command"] == ["--service", name]
        assert svc["build"] == "."
        env = svc["environment"]
        assert set(env) <= KNOWN_ENV, set(env) - KNOWN_ENV
        assert env["GATEWAY_NATS_URL"].startswith("nats://nats:")
        assert env["GATEWAY_DATABASE_URL"].startswith("postgresql://")
        assert "readyz" in " ".join(svc["healthcheck"]["test"])
    assert services["router"]["deploy"]["replicas"] >= 2
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"] for j in prometheus["scrape_configs"]}
    assert jobs == {"tokgateway-router", "tokgateway-services"}


MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_are_valid(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_mesh_wiring() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert all((K8S / name).is_file() for name in listed)
    kinds: dict[tuple[str, str], dict[str, Any]] = {}
    for path in MANIFESTS:
        for doc in _docs(path):
            kinds[(doc["kind"], doc["metadata"]["name"])] = doc
    config = kinds[("ConfigMap", "tokgateway-config")]["data"]
    assert {k for k in config if k.startswith("GATEWAY_")} <= KNOWN_ENV
    for name in ("router", "auth", "ledger", "registry"):
        deploy = kinds[("Deployment", f"tokgateway-{name}")]
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["--service", name]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
        assert "secret-key" in refs
        assert ("database-url" in refs) == (name != "router")
        assert ("Service", f"tokgateway-{name}") in kinds
        url = config.get(f"GATEWAY_{name.upper()}_URL")
        if url:
            assert url == f"http://tokgateway-{name}:8081"
    hpa = kinds[("HorizontalPodAutoscaler", "tokgateway-router")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "tokgateway-router"
    assert hpa["spec"]["minReplicas"] >= 2
