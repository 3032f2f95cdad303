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


def _version() -> str:
    import tomllib

    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_compose_and_k8s_run_the_same_documented_image() -> None:
    image = f"tokgateway:{_version()}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("router", "auth", "ledger", "registry"):
        assert compose["services"][name]["image"] == image
    for path in MANIFESTS:
        for doc in _docs(path):
            if doc["kind"] == "Deployment":
                for c in doc["spec"]["template"]["spec"]["containers"]:
                    assert c["image"] == image, path.name
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert image in readme
    assert "-t $(IMAGE):$(VERSION)" in (ROOT / "Makefile").read_text()


def test_deploy_readme_matches_the_published_ports() -> None:
    """Only the routers, Prometheus and Grafana are published; the README must
    not send the CLI to a service URL the host cannot reach."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = {n for n, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"router", "prometheus", "grafana"}
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "8081 and 8082" in readme and "9090" in readme and "3000" in readme
    assert compose["services"]["router"]["ports"] == ["8081-8082:8081"]
    assert "GATEWAY_AUTH_URL=http://localhost" not in readme
    assert "docker compose exec auth gateway" in readme


def test_network_policy_and_service_monitor_cover_the_services() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert "networkpolicy.yaml" in listed
    policies = {d["metadata"]["name"]: d for d in _docs(K8S / "networkpolicy.yaml")}
    router = policies["tokgateway-router"]["spec"]
    assert router["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "tokgateway-router"
    internal = policies["tokgateway-internal"]["spec"]
    guarded = set(internal["podSelector"]["matchExpressions"][0]["values"])
    assert guarded == {"tokgateway-auth", "tokgateway-ledger", "tokgateway-registry"}
    sources = internal["ingress"][0]["from"]
    assert {"app.kubernetes.io/part-of": "tokgateway"} in [
        s["podSelector"]["matchLabels"] for s in sources
    ]
    monitoring = K8S / "monitoring"
    assert yaml.safe_load((monitoring / "kustomization.yaml").read_text())["resources"] == [
        "servicemonitor.yaml"
    ]
    (monitor,) = _docs(monitoring / "servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["path"] == "/metrics"
    services = [d for p in MANIFESTS for d in _docs(p) if d["kind"] == "Service"]
    assert len(services) == 4
    for svc in services:
        assert selector.items() <= svc["metadata"]["labels"].items()
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_d_test_builds_and_runs_the_image_test_stage() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "docker build --target test" in make
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "AS test" in dockerfile
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # the test stage copies the context: what the suite reads must be in it
    for needed in ("tests", "deploy", "config", "pyproject.toml", "Dockerfile"):
        assert needed not in ignored
    assert (ROOT / "config" / "setting.example.ini").is_file()
    assert "COPY config/setting.example.ini /etc/tokgateway/setting.ini" in dockerfile


def test_the_test_stage_carries_what_the_console_tests_need() -> None:
    """The suite in the image builds the console and drives Chromium, as on a
    build machine: Debian's Node.js (Vite needs 20.19 or later: trixie, not
    bookworm), npm, chromium and make; the npm packages installed in the image,
    never copied from the checkout."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = dockerfile.split(" AS test\n", 1)[1].split("\nFROM ", 1)[0]
    base = dockerfile.split(" AS test\n", 1)[0].rsplit("FROM ", 1)[1]
    assert base.endswith("-trixie"), base
    install = next(line for line in stage.splitlines() if "apt-get install" in line).split()
    assert {"nodejs", "npm", "chromium", "make", "prometheus", "tinyproxy"} <= set(install)
    assert "npm ci" in stage and "make ui" in stage
    assert stage.index("npm ci") < stage.index("COPY . .") < stage.index("make ui")
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "fe/node_modules" in ignored
    # a headless Chromium in a container: the browser scripts do not rely on /dev/shm
    for script in ("console.e2e.mjs", "mesh.e2e.mjs"):
        assert "--disable-dev-shm-usage" in (ROOT / "fe" / "e2e" / script).read_text()


def _stages(dockerfile: str) -> dict[str, str]:
    """Each named stage of the Dockerfile: its FROM line and body."""
    out: dict[str, str] = {}
    for chunk in ("\n" + dockerfile).split("\nFROM ")[1:]:
        head = chunk.split("\n", 1)[0]
        if " AS " in head:
            out[head.rsplit(" AS ", 1)[1].strip()] = "FROM " + chunk
    return out


def test_the_image_builds_the_console_it_serves_at_ui() -> None:
    """`docker compose up --build` on a fresh checkout serves /ui: a Node.js
    stage runs the console's build from fe/ (Vite needs Node.js 20.19 or
    later), and the stage that builds the wheel takes fe/dist from it, never
    from the host, so the wheel carries tokgateway.console with web/ and h5/."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = _stages(dockerfile)
    assert list(stages)[:2] == ["console", "build"]  # defined before it is copied from
    console = stages["console"]
    image = console.split("\n", 1)[0].split()[1]
    assert image.startswith("node:"), image
    major = int(image.split(":", 1)[1].split(".", 1)[0].split("-", 1)[0])
    assert major >= 22, image
    assert "npm ci" in console and "npm run -s build" in console
    assert console.index("COPY fe/package.json fe/package-lock.json") < console.index("npm ci")
    assert console.index("npm ci") < console.index("COPY fe ./") < console.index("npm run")
    for built in ("dist/web/index.html", "dist/h5/index.html", "dist/__init__.py"):
        assert f"test -f {built}" in console
    build = stages["build"]
    assert "COPY --from=console /src/fe/dist ./fe/dist" in build
    assert build.index("COPY --from=console") < build.index("pip wheel")
    assert "COPY fe/dist" not in dockerfile  # the host's build (or its absence) never counts
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"fe/dist/web", "fe/dist/h5", "fe/node_modules"} <= set(ignored)
    assert "fe" not in ignored and "fe/dist" not in ignored  # the stage needs fe/ itself
    # where the wheel takes the console from, and what /ui serves
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"tokgateway.console" = "fe/dist"' in pyproject
    assert '"tokgateway.console" = ["web/*", "web/assets/*", "h5/*", "h5/assets/*"]' in pyproject
    # the runtime stage installs that wheel
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "COPY --from=build /wheels /wheels" in runtime
    make = (ROOT / "Makefile").read_text()
    d_build = make.split("\nd-build:", 1)[1].split("\n\n", 1)[0]
    assert "docker build -t" in d_build and "make" not in d_build.split("\n", 1)[1]


def test_make_help_lists_every_target() -> None:
    done = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True
    )
    phony = next(
        ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith(".PHONY")
    )
    for target in phony.split(":", 1)[1].split():
        assert f"make {target} " in done.stdout, target
