"""The lock-free metric families render as Prometheus expects."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tokgateway.common.metrics import RouterMetrics, process_metrics, render


def _samples(m: RouterMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(m.registry)[0].decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_counters_and_histograms() -> None:
    m = RouterMetrics()
    m.requests.labels("/v1/chat/completions", "gpt-4o", "p", "200").inc()
    m.requests.labels("/v1/chat/completions", "gpt-4o", "p", "200").inc()
    m.tokens.labels("gpt-4o", "p", "prompt").inc(12)
    for value in (0.0005, 0.0005001, 2.0):  # on a bound, just above it, above all
        m.overhead.observe(value)
    s = _samples(m)
    labels = (("model", "gpt-4o"), ("provider", "p"), ("route", "/v1/chat/completions"))
    assert s[("gateway_requests_total", (*labels, ("status", "200")))] == 2
    assert (
        s[("gateway_tokens_total", (("kind", "prompt"), ("model", "gpt-4o"), ("provider", "p")))]
        == 12
    )
    assert s[("gateway_overhead_seconds_bucket", (("le", "0.00025"),))] == 0
    assert s[("gateway_overhead_seconds_bucket", (("le", "0.0005"),))] == 1  # le: bound included
    assert s[("gateway_overhead_seconds_bucket", (("le", "0.001"),))] == 2
    assert s[("gateway_overhead_seconds_bucket", (("le", "1.0"),))] == 2
    assert s[("gateway_overhead_seconds_bucket", (("le", "+Inf"),))] == 3
    assert s[("gateway_overhead_seconds_count", ())] == 3
    assert abs(s[("gateway_overhead_seconds_sum", ())] - 2.0010001) < 1e-9


def test_wrong_label_count_is_refused() -> None:
    m = RouterMetrics()
    with pytest.raises(ValueError, match="error_class"):
        m.errors.labels("client", "extra")


def test_model_names_from_clients_are_bounded() -> None:
    m = RouterMetrics(max_models=2)
    labels = [m.model_label(name) for name in ("a", "b", "c", "a", "d", "b")]
    assert labels == ["a", "b", "(other)", "a", "(other)", "b"]


def test_governance_families_and_their_bounded_scope_ids() -> None:
    m = RouterMetrics(max_scope_ids=2)
    m.reject("key", "key_1", "rpm")
    m.reject("key", "key_1", "rpm")
    m.reject("user", "u1", "budget")
    m.reject("team", "t1", "tpm")  # a third id: past the bound
    m.budget("team", "t9", "month", 45.0, 50.0)  # also past it
    m.budget("user", "u1", "day", 1.0, 0.0)  # no budget: ratio 0, not a division by zero
    s = _samples(m)
    rejected = "gateway_limit_rejections_total"
    assert s[(rejected, (("limit", "rpm"), ("scope", "key"), ("scope_id", "key_1")))] == 2
    assert s[(rejected, (("limit", "budget"), ("scope", "user"), ("scope_id", "u1")))] == 1
    assert s[(rejected, (("limit", "tpm"), ("scope", "team"), ("scope_id", "(other)")))] == 1
    team = (("period", "month"), ("scope", "team"), ("scope_id", "(other)"))
    assert s[("gateway_budget_spend_usd", team)] == 45.0
    assert s[("gateway_budget_limit_usd", team)] == 50.0
    assert s[("gateway_budget_used_ratio", team)] == 0.9
    assert (
        s[("gateway_budget_used_ratio", (("period", "day"), ("scope", "user"), ("scope_id", "u1")))]
        == 0
    )
    m.drop_budget("team", "t9", "month")
    assert ("gateway_budget_used_ratio", team) not in _samples(m)


def test_upstream_families() -> None:
    m = RouterMetrics()
    m.fallback("openai")
    m.set_cooldown("openai", True)
    m.set_cooldown("anthropic", False)

    def pool() -> list[tuple[str, int | None, int]]:
        return [("https://api.openai.com:443", 3, 2), ("http://127.0.0.1:9", None, 1)]

    m.watch_pool(pool)
    s = _samples(m)
    assert s[("gateway_fallbacks_total", (("provider", "openai"),))] == 1
    assert s[("gateway_provider_cooldown", (("provider", "openai"),))] == 1
    assert s[("gateway_provider_cooldown", (("provider", "anthropic"),))] == 0
    conn = "gateway_upstream_connections"
    assert s[(conn, (("origin", "https://api.openai.com:443"), ("state", "in_use")))] == 3
    assert s[(conn, (("origin", "https://api.openai.com:443"), ("state", "idle")))] == 2
    assert s[(conn, (("origin", "http://127.0.0.1:9"), ("state", "idle")))] == 1
    assert (conn, (("origin", "http://127.0.0.1:9"), ("state", "in_use"))) not in s  # not counted
    m.unwatch_pool(pool)
    assert not any(name == conn for name, _ in _samples(m))


def test_process_metrics_once_per_registry() -> None:
    m = RouterMetrics()
    process_metrics(m.registry)  # the mesh adds it again: no duplicate, no error
    s = _samples(m)
    assert s[("process_resident_memory_bytes", ())] > 1e6
    assert ("process_cpu_seconds_total", ()) in s


def test_mesh_state_gauges_say_what_they_count() -> None:
    import re
    from pathlib import Path

    from prometheus_client import CollectorRegistry, generate_latest

    from tokgateway.mesh_common import STATE_HELP, StateCollector

    root = Path(__file__).resolve().parents[2] / "tokgateway"
    used: set[str] = set()
    for path in root.glob("mesh_*.py"):
        body = path.read_text().partition("def _state(self)")[2].partition("\n    def ")[0]
        used |= set(re.findall(r'"([a-z_]+)":', body))
    assert {"rows_inserted", "usage_dropped", "bus_connected"} <= used
    assert used <= set(STATE_HELP), used - set(STATE_HELP)
    registry = CollectorRegistry()
    registry.register(StateCollector("gateway_ledger", lambda: {"rows_inserted": 3.0}))
    text = generate_latest(registry).decode()
    assert (
        "# HELP gateway_ledger_rows_inserted ledger: usage rows committed to PostgreSQL since start"
        in text
    )
