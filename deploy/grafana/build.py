"""Writes the Grafana dashboards (deploy/grafana/dashboards/*.json) and their
Kubernetes ConfigMap (deploy/k8s/grafana-dashboards.yaml) from the panel
lists below, and the ConfigMap of the alert rules
(deploy/k8s/prometheus-rules.yaml) from deploy/prometheus/alerts.yml. Edit
here (or alerts.yml), then run ``python deploy/grafana/build.py``; a test fails
while the committed files differ from what this writes.

Every panel queries the ``datasource`` template variable, so the dashboards
work with whatever the Prometheus data source is called where they land."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DASHBOARD_DIR = HERE / "dashboards"
CONFIGMAP = ROOT / "deploy" / "k8s" / "grafana-dashboards.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULES_CONFIGMAP = ROOT / "deploy" / "k8s" / "prometheus-rules.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    extra: dict[str, object] = field(default_factory=dict)


def quantiles(metric: str, by: str = "") -> tuple[tuple[str, str], ...]:
    group = f"le, {by}" if by else "le"
    legend = f"p{{q}} {{{{{by}}}}}" if by else "p{q}"
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            legend.format(q=round(q * 100)),
        )
        for q in (0.5, 0.95, 0.99)
    )


OVERVIEW = (
    Panel(
        "Requests per second by route and status",
        (
            (
                f"sum by (route, status) (rate(gateway_requests_total[{RATE}]))",
                "{{route}} {{status}}",
            ),
        ),
        "reqps",
    ),
    Panel(
        "Errors per second by class",
        ((f"sum by (error_class) (rate(gateway_errors_total[{RATE}]))", "{{error_class}}"),),
        "reqps",
        description="client: bad requests; policy: gateway limits and budgets; "
        "upstream: providers failing; internal: gateway bugs",
    ),
    Panel(
        "Gateway overhead (p50, p95, p99)",
        quantiles("gateway_overhead_seconds"),
        "s",
        description="Time the gateway itself added: total minus upstream time",
    ),
    Panel(
        "Upstream latency by provider (p50, p95, p99)",
        quantiles("gateway_upstream_seconds", "provider"),
        "s",
    ),
    Panel(
        "Time to first token by provider (p50, p95, p99)",
        quantiles("gateway_time_to_first_token_seconds", "provider"),
        "s",
    ),
    Panel(
        "Tokens per second by kind",
        ((f"sum by (kind) (rate(gateway_tokens_total[{RATE}]))", "{{kind}}"),),
        "short",
        description="prompt, completion, and the cached part of the prompt",
    ),
    Panel(
        "Cost by model and provider (USD per hour)",
        (
            (
                f"sum by (model, provider) (rate(gateway_cost_usd_total[{RATE}])) * 3600",
                "{{model}} via {{provider}}",
            ),
        ),
        "currencyUSD",
    ),
    Panel(
        "Requests without a price (metered at cost 0)",
        (
            (
                f"sum by (upstream_model) (increase(gateway_unpriced_requests_total[{RATE}]))",
                "{{upstream_model}}",
            ),
        ),
        "short",
        description="Add a [prices] line for these models",
    ),
)

GOVERNANCE = (
    Panel(
        "Budget used (spend / budget)",
        (
            (
                "max by (scope, scope_id, period) (gateway_budget_used_ratio)",
                "{{scope}} {{scope_id}} ({{period}})",
            ),
        ),
        "percentunit",
        extra={"thresholds": [(None, "green"), (0.75, "orange"), (0.9, "red")]},
    ),
    Panel(
        "Spend against budget (USD)",
        (
            (
                "max by (scope, scope_id, period) (gateway_budget_spend_usd)",
                "spent {{scope}} {{scope_id}} ({{period}})",
            ),
            (
                "max by (scope, scope_id, period) (gateway_budget_limit_usd)",
                "budget {{scope}} {{scope_id}} ({{period}})",
            ),
        ),
        "currencyUSD",
    ),
    Panel(
        "Limit rejections per second by scope and limit",
        (
            (
                f"sum by (scope, limit) (rate(gateway_limit_rejections_total[{RATE}]))",
                "{{scope}} {{limit}}",
            ),
        ),
        "reqps",
        description="Requests refused by a gateway rpm, tpm or budget limit (HTTP 429)",
    ),
    Panel(
        "Most rejected keys, users and teams",
        (
            (
                "topk(10, sum by (scope, scope_id, limit) "
                f"(increase(gateway_limit_rejections_total[{RATE}])))",
                "{{scope}} {{scope_id}} {{limit}}",
            ),
        ),
        "short",
        kind="bargauge",
    ),
    Panel(
        "Policy errors (gateway limits and permissions)",
        (
            (
                f'sum(rate(gateway_errors_total{{error_class="policy"}}[{RATE}]))',
                "policy",
            ),
        ),
        "reqps",
    ),
)

UPSTREAM = (
    Panel(
        "Upstream errors per second by provider and status",
        (
            (
                "sum by (provider, status) "
                f'(rate(gateway_requests_total{{provider!="", status=~"429|5.."}}[{RATE}]))',
                "{{provider}} {{status}}",
            ),
        ),
        "reqps",
    ),
    Panel(
        "Fallbacks per second by provider",
        ((f"sum by (provider) (rate(gateway_fallbacks_total[{RATE}]))", "{{provider}}"),),
        "reqps",
        description="Attempts on this provider that failed and went to the next deployment",
    ),
    Panel(
        "Providers in cooldown",
        (("max by (provider) (gateway_provider_cooldown)", "{{provider}}"),),
        "bool",
        kind="state-timeline",
    ),
    Panel(
        "Provider health checks (1 healthy, 0 down)",
        (("min by (provider) (gateway_provider_healthy)", "{{provider}}"),),
        "bool",
        kind="state-timeline",
    ),
    Panel(
        "Health check latency by provider",
        (("max by (provider) (gateway_provider_probe_latency_seconds)", "{{provider}}"),),
        "s",
    ),
    Panel(
        "Upstream connections by origin",
        (("sum by (origin, state) (gateway_upstream_connections)", "{{origin}} {{state}}"),),
        "short",
    ),
    Panel(
        "Upstream p95 latency by provider",
        (
            (
                "histogram_quantile(0.95, sum by (le, provider) "
                f"(rate(gateway_upstream_seconds_bucket[{RATE}])))",
                "{{provider}}",
            ),
        ),
        "s",
    ),
)

MESH = (
    Panel(
        "Ledger consumer lag (JetStream pending)",
        (
            ("max(gateway_ledger_consumer_pending)", "not delivered"),
            ("max(gateway_ledger_consumer_ack_pending)", "delivered, not acked"),
        ),
        "short",
        description="Usage events in the USAGE stream the ledger has not committed yet",
    ),
    Panel(
        "Ledger rows inserted per second",
        ((f"sum(rate(gateway_ledger_rows_inserted[{RATE}]))", "rows"),),
        "short",
    ),
    Panel(
        "Usage events buffered in routers",
        (("sum by (instance) (gateway_router_mesh_usage_buffered)", "{{instance}}"),),
        "short",
        description="Held while NATS is unreachable; dropped past gateway.event_buffer",
    ),
    Panel(
        "NATS connected",
        (("min by (service) (gateway_nats_connected)", "{{service}}"),),
        "bool",
        kind="state-timeline",
    ),
    Panel(
        "NATS reconnects",
        ((f"sum by (service) (increase(gateway_nats_reconnects_total[{RATE}]))", "{{service}}"),),
        "short",
    ),
    Panel(
        "PostgreSQL connections opened and failed",
        (
            (
                f"sum by (service) (increase(gateway_db_connections_opened_total[{RATE}]))",
                "opened {{service}}",
            ),
            (
                f"sum by (service) (increase(gateway_db_connect_failures_total[{RATE}]))",
                "failed {{service}}",
            ),
        ),
        "short",
    ),
    Panel(
        "CPU per service",
        (
            (
                "sum by (job, instance) "
                f'(rate(process_cpu_seconds_total{{job=~"tokgateway.*"}}[{RATE}]))',
                "{{job}} {{instance}}",
            ),
        ),
        "percentunit",
    ),
    Panel(
        "Resident memory per service",
        (
            (
                'sum by (job, instance) (process_resident_memory_bytes{job=~"tokgateway.*"})',
                "{{job}} {{instance}}",
            ),
        ),
        "bytes",
    ),
)

DASHBOARDS = {
    "overview": ("Tokligence Gateway: overview", OVERVIEW),
    "governance": ("Tokligence Gateway: governance", GOVERNANCE),
    "upstream": ("Tokligence Gateway: upstreams", UPSTREAM),
    "mesh": ("Tokligence Gateway: mesh", MESH),
}


LEGEND: dict[str, object] = {
    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}
}
OPTIONS: dict[str, dict[str, object]] = {
    "bargauge": {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    },
}


def panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, object]:
    targets = [
        {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": expr,
            "legendFormat": legend,
            "range": True,
        }
        for i, (expr, legend) in enumerate(panel.targets)
    ]
    steps = panel.extra.get("thresholds") or [(None, "green")]
    assert isinstance(steps, list)
    out: dict[str, object] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": color, "value": value} for value, color in steps],
                },
            },
            "overrides": [],
        },
        "options": OPTIONS.get(panel.kind, LEGEND),
        "targets": targets,
    }
    if panel.description:
        out["description"] = panel.description
    return out


def dashboard_json(uid: str, title: str, panels: tuple[Panel, ...]) -> dict[str, object]:
    laid: list[dict[str, object]] = []
    x = y = 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        laid.append(panel_json(panel, i, x, y))
        x += panel.width
    return {
        "uid": f"tokgateway-{uid}",
        "title": title,
        "tags": ["tokgateway"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["tokgateway"], "asDropdown": True, "title": "Gateway"}
        ],
        "panels": laid,
    }


def configmap(name: str, comment: str, label: str, data: dict[str, str]) -> str:
    lines = [
        *(f"# {line}" for line in comment.splitlines()),
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {name}",
        "  labels:",
        "    app.kubernetes.io/part-of: tokgateway",
        f'    {label}: "1"',
        "data:",
    ]
    for key, text in data.items():
        lines.append(f"  {key}: |")
        lines.extend(f"    {line}" if line else "" for line in text.splitlines())
    return "\n".join(lines) + "\n"


def rendered() -> dict[Path, str]:
    """Every file this script writes, by path, with its text."""
    files: dict[Path, str] = {}
    data: dict[str, str] = {}
    for uid, (title, panels) in DASHBOARDS.items():
        text = json.dumps(dashboard_json(uid, title, panels), indent=2) + "\n"
        files[DASHBOARD_DIR / f"tokgateway-{uid}.json"] = text
        data[f"tokgateway-{uid}.json"] = text
    files[CONFIGMAP] = configmap(
        "tokgateway-grafana-dashboards",
        "Generated by deploy/grafana/build.py: the dashboards of deploy/grafana/dashboards.\n"
        "Grafana's dashboard sidecar (label grafana_dashboard) or a volume mount loads them.",
        "grafana_dashboard",
        data,
    )
    files[RULES_CONFIGMAP] = configmap(
        "tokgateway-prometheus-rules",
        "Generated by deploy/grafana/build.py from deploy/prometheus/alerts.yml: mount it\n"
        "into Prometheus and list alerts.yml under rule_files.",
        "prometheus_rules",
        {"alerts.yml": ALERTS.read_text()},
    )
    return files


def main() -> int:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
