"""The table of plain settings keys: section, name, default, parser,
environment variables, whether secret, and a line of help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokgateway.common.settings_values import (
    parse_bool,
    parse_choice,
    parse_float,
    parse_int,
    parse_port,
    parse_text,
)

ENVIRONMENTS = ("dev", "test", "live")
WORK_MODES = ("auto", "passthrough", "translation")
LAYER_DEFAULT = "default"
LAYER_ENV = "environment"
# old name -> new dotted name; the old one is still read, with a warning
DEPRECATED_KEYS = {("gateway", "enable_providers"): "gateway.provider_filter"}


@dataclass(frozen=True)
class KeySpec:
    section: str
    name: str
    default: str
    parse: Callable[[str], Any] = parse_text
    env: tuple[str, ...] = ()
    secret: bool = False
    doc: str = ""

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


KEYS: tuple[KeySpec, ...] = (
    KeySpec("gateway", "env", "dev", parse_choice(ENVIRONMENTS), ("GATEWAY_ENV",)),
    KeySpec("gateway", "host", "127.0.0.1", env=("GATEWAY_HOST",)),
    KeySpec("gateway", "port", "8081", parse_port, ("GATEWAY_PORT",)),
    KeySpec(
        "gateway",
        "workers",
        "1",
        parse_int,
        ("GATEWAY_WORKERS",),
        doc="server processes sharing the port (all-in-one)",
    ),
    KeySpec(
        "gateway",
        "data_dir",
        "./data",
        env=("GATEWAY_DATA_DIR",),
        doc="SQLite, pid, port and log files; gatewayd alone: $XDG_STATE_HOME/tokgateway",
    ),
    KeySpec("gateway", "admin_key", "", env=("GATEWAY_ADMIN_KEY",), secret=True),
    KeySpec("gateway", "admin_email", "admin@localhost", env=("GATEWAY_EMAIL",)),
    KeySpec(
        "gateway",
        "primary_provider",
        "",
        env=("PRIMARY_PROVIDER", "GATEWAY_PRIMARY_PROVIDER"),
        doc="provider that takes every model no route matches",
    ),
    KeySpec(
        "gateway",
        "provider_filter",
        "",
        env=("GATEWAY_PROVIDER_FILTER",),
        doc="comma list of configured providers to use; empty uses all (was enable_providers)",
    ),
    KeySpec(
        "gateway",
        "enable_provider",
        "false",
        parse_bool,
        ("GATEWAY_ENABLE_PROVIDER",),
        doc="offer this gateway's models on the marketplace (publishing is refused otherwise)",
    ),
    KeySpec(
        "gateway",
        "publish_name",
        "",
        env=("GATEWAY_PUBLISH_NAME",),
        doc="display name of this gateway's marketplace listings",
    ),
    KeySpec(
        "gateway",
        "model_family",
        "",
        env=("GATEWAY_MODEL_FAMILY",),
        doc="comma list of models published when `market publish` names none",
    ),
    KeySpec(
        "market",
        "public_url",
        "",
        env=("GATEWAY_PUBLIC_URL",),
        doc="this gateway's URL as other operators reach it (default http://host:port)",
    ),
    KeySpec(
        "market",
        "auto_approve",
        "false",
        parse_bool,
        ("GATEWAY_MARKET_AUTO_APPROVE",),
        doc="grant subscriptions at once (else `gateway market approve`)",
    ),
    KeySpec("market", "poll_s", "30", parse_float, doc="how often peers' listings are pulled"),
    KeySpec("market", "listing_days", "30", parse_float, doc="a listing expires after this"),
    KeySpec(
        "market", "feed_token", "", secret=True, doc="bearer token peers need to read the feed"
    ),
    KeySpec("market", "subscriber_rpm", "0", parse_int, doc="rpm of keys minted (0: none)"),
    KeySpec("market", "subscriber_budget_usd", "0", parse_float, doc="monthly budget (0: none)"),
    KeySpec("gateway", "work_mode", "auto", parse_choice(WORK_MODES), ("GATEWAY_WORK_MODE",)),
    KeySpec("gateway", "log_level", "info", parse_choice(("debug", "info", "warning", "error"))),
    KeySpec("gateway", "access_log", "true", parse_bool, ("GATEWAY_ACCESS_LOG",)),
    KeySpec("gateway", "log_prompts", "false", parse_bool),
    KeySpec("gateway", "max_body_mb", "32", parse_int),
    KeySpec("gateway", "idle_timeout", "75", parse_float, doc="s a connection may sit idle"),
    KeySpec("gateway", "header_timeout", "10", parse_float, doc="s to send a request head"),
    KeySpec("gateway", "body_timeout", "120", parse_float, doc="s to send a request body"),
    KeySpec("gateway", "max_connections", "10000", parse_int, doc="open client connections"),
    KeySpec("gateway", "max_header_kb", "64", parse_int, doc="request line + headers (431)"),
    KeySpec("gateway", "max_headers", "100", parse_int, doc="header fields a request (431)"),
    KeySpec("gateway", "drain_seconds", "30", parse_float, doc="graceful stop: time to finish"),
    KeySpec("gateway", "connect_timeout", "10", parse_float),
    KeySpec("gateway", "upstream_timeout", "600", parse_float),
    KeySpec(
        "gateway",
        "upstream_max_connections",
        "256",
        parse_int,
        doc="connections per upstream origin (a provider's max_connections overrides it)",
    ),
    KeySpec(
        "gateway",
        "upstream_pool_timeout",
        "30",
        parse_float,
        doc="seconds a request waits for a free connection to its origin, then 503",
    ),
    KeySpec(
        "gateway",
        "upstream_max_body_mb",
        "64",
        parse_int,
        doc="largest upstream answer (decompressed) that is not streamed; larger is a 502",
    ),
    KeySpec(
        "gateway",
        "upstream_max_event_mb",
        "8",
        parse_int,
        doc="largest single server-sent event of an upstream stream; larger is an error",
    ),
    KeySpec(
        "gateway", "upstream_keepalive", "60", parse_float, doc="idle seconds a connection is kept"
    ),
    KeySpec(
        "gateway",
        "upstream_happy_eyeballs_ms",
        "250",
        parse_float,
        doc="delay before the next address (IPv6/IPv4) is tried (RFC 8305)",
    ),
    KeySpec("gateway", "key_cache_ttl", "300", parse_float),
    KeySpec(
        "gateway",
        "health_check_s",
        "30",
        parse_float,
        ("GATEWAY_HEALTH_CHECK_S",),
        doc="seconds between the router's provider health checks; 0 turns them off",
    ),
    KeySpec(
        "gateway",
        "default_max_tokens",
        "4096",
        parse_int,
        ("GATEWAY_DEFAULT_MAX_TOKENS",),
        doc="output tokens a limited request is assumed to ask for when it sets no max_tokens",
    ),
    KeySpec("gateway", "secret_key", "", env=("GATEWAY_SECRET_KEY",), secret=True),
    KeySpec("gateway", "database_url", "", env=("GATEWAY_DATABASE_URL",), secret=True),
    KeySpec("gateway", "nats_url", "", env=("GATEWAY_NATS_URL",)),
    KeySpec("gateway", "redis_url", "", env=("GATEWAY_REDIS_URL",)),
    KeySpec("gateway", "auth_url", "", env=("GATEWAY_AUTH_URL",)),
    KeySpec("gateway", "ledger_url", "", env=("GATEWAY_LEDGER_URL",)),
    KeySpec("gateway", "registry_url", "", env=("GATEWAY_REGISTRY_URL",)),
    KeySpec(
        "gateway",
        "otlp_endpoint",
        "",
        env=("GATEWAY_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        doc="OTLP/HTTP collector base URL; empty exports no spans (context still propagates)",
    ),
    KeySpec(
        "gateway",
        "event_buffer",
        "100000",
        parse_int,
        ("GATEWAY_EVENT_BUFFER",),
        doc="usage events a mesh router holds while NATS is unreachable",
    ),
    KeySpec(
        "hooks",
        "max_attempts",
        "8",
        parse_int,
        ("GATEWAY_HOOKS_MAX_ATTEMPTS",),
        doc="tries per delivery before it is dead-lettered",
    ),
    KeySpec(
        "hooks",
        "api_scripts",
        "false",
        parse_bool,
        doc="allow script hooks added through the admin API (commands run on this host)",
    ),
    KeySpec("hooks", "backoff_s", "1", parse_float, doc="first retry delay, doubled each try"),
    KeySpec("hooks", "backoff_max_s", "600", parse_float, doc="longest retry delay"),
    KeySpec("hooks", "timeout_s", "10", parse_float, doc="webhook request timeout"),
    KeySpec(
        "hooks",
        "expiry_sweep_s",
        "30",
        parse_float,
        doc="how often auth looks for keys that expired (key.expired events)",
    ),
    KeySpec("ledger", "batch_size", "100", parse_int),
    KeySpec("ledger", "flush_interval_ms", "20", parse_int),
    KeySpec("ledger", "queue_limit", "100000", parse_int),
    KeySpec(
        "ledger",
        "retention_days",
        "0",
        parse_int,
        ("GATEWAY_LEDGER_RETENTION_DAYS",),
        doc="PostgreSQL ledger: drop whole daily partitions older than this; 0 keeps all",
    ),
)

KEY_INDEX = {(k.section, k.name): k for k in KEYS}
