"""Layered settings: defaults < setting.ini < <env>/gateway.ini < environment.

The environment is read here and nowhere else. Every effective value remembers
the layer that set it, so ``gateway config show`` can say where it came from.
A bad file, an unknown key or a bad value raises ConfigError naming file and key.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokgateway.common.webhooks import secret_bytes

ENVIRONMENTS = ("dev", "test", "live")
PROVIDER_KINDS = ("openai", "anthropic", "openai-compatible", "gemini", "azure", "echo")
WORK_MODES = ("auto", "passthrough", "translation")
HOOK_KINDS = ("webhook", "script")
LAYER_DEFAULT = "default"
LAYER_ENV = "environment"


class ConfigError(Exception):
    """A configuration problem, with the file and key that caused it."""


def mask_secret(value: str) -> str:
    if not value:
        return ""
    if len(value) <= 8:
        return "****"
    return f"{value[:3]}…{value[-4:]}"


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


_BOOL_WORDS = frozenset({"1", "true", "yes", "on", "0", "false", "no", "off"})
# old name -> new dotted name; the old one is still read, with a warning
DEPRECATED_KEYS = {("gateway", "enable_providers"): "gateway.provider_filter"}


def _parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _parse_port(raw: str) -> int:
    port = _parse_int(raw)
    if not 1 <= port <= 65535:
        raise ValueError(f"expected a TCP port from 1 to 65535, got {raw.strip()!r}")
    return port


def mask_url(url: str) -> str:
    """``base_url`` with any ``user:password@`` part masked: such URLs carry
    credentials and are shown by ``config show`` and the admin API."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    host = authority.rsplit("@", 1)[1]
    return f"{scheme}://****@{host}{slash}{path}"


def _parse_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _text(raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class KeySpec:
    section: str
    name: str
    default: str
    parse: Callable[[str], Any] = _text
    env: tuple[str, ...] = ()
    secret: bool = False
    doc: str = ""

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


KEYS: tuple[KeySpec, ...] = (
    KeySpec("gateway", "env", "dev", _choice(ENVIRONMENTS), ("GATEWAY_ENV",)),
    KeySpec("gateway", "host", "127.0.0.1", env=("GATEWAY_HOST",)),
    KeySpec("gateway", "port", "8081", _parse_port, ("GATEWAY_PORT",)),
    KeySpec(
        "gateway",
        "workers",
        "1",
        _parse_int,
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
        _parse_bool,
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
        _parse_bool,
        ("GATEWAY_MARKET_AUTO_APPROVE",),
        doc="grant subscriptions at once (else `gateway market approve`)",
    ),
    KeySpec("market", "poll_s", "30", _parse_float, doc="how often peers' listings are pulled"),
    KeySpec("market", "listing_days", "30", _parse_float, doc="a listing expires after this"),
    KeySpec(
        "market", "feed_token", "", secret=True, doc="bearer token peers need to read the feed"
    ),
    KeySpec("market", "subscriber_rpm", "0", _parse_int, doc="rpm of keys minted (0: none)"),
    KeySpec("market", "subscriber_budget_usd", "0", _parse_float, doc="monthly budget (0: none)"),
    KeySpec("gateway", "work_mode", "auto", _choice(WORK_MODES), ("GATEWAY_WORK_MODE",)),
    KeySpec("gateway", "log_level", "info", _choice(("debug", "info", "warning", "error"))),
    KeySpec("gateway", "access_log", "true", _parse_bool, ("GATEWAY_ACCESS_LOG",)),
    KeySpec("gateway", "log_prompts", "false", _parse_bool),
    KeySpec("gateway", "max_body_mb", "32", _parse_int),
    KeySpec("gateway", "idle_timeout", "75", _parse_float, doc="s a connection may sit idle"),
    KeySpec("gateway", "header_timeout", "10", _parse_float, doc="s to send a request head"),
    KeySpec("gateway", "body_timeout", "120", _parse_float, doc="s to send a request body"),
    KeySpec("gateway", "max_connections", "10000", _parse_int, doc="open client connections"),
    KeySpec("gateway", "max_header_kb", "64", _parse_int, doc="request line + headers (431)"),
    KeySpec("gateway", "max_headers", "100", _parse_int, doc="header fields a request (431)"),
    KeySpec("gateway", "drain_seconds", "30", _parse_float, doc="graceful stop: time to finish"),
    KeySpec("gateway", "connect_timeout", "10", _parse_float),
    KeySpec("gateway", "upstream_timeout", "600", _parse_float),
    KeySpec(
        "gateway",
        "upstream_max_connections",
        "256",
        _parse_int,
        doc="connections per upstream origin (a provider's max_connections overrides it)",
    ),
    KeySpec(
        "gateway",
        "upstream_pool_timeout",
        "30",
        _parse_float,
        doc="seconds a request waits for a free connection to its origin, then 503",
    ),
    KeySpec(
        "gateway",
        "upstream_max_body_mb",
        "64",
        _parse_int,
        doc="largest upstream answer (decompressed) that is not streamed; larger is a 502",
    ),
    KeySpec(
        "gateway",
        "upstream_max_event_mb",
        "8",
        _parse_int,
        doc="largest single server-sent event of an upstream stream; larger is an error",
    ),
    KeySpec(
        "gateway", "upstream_keepalive", "60", _parse_float, doc="idle seconds a connection is kept"
    ),
    KeySpec(
        "gateway",
        "upstream_happy_eyeballs_ms",
        "250",
        _parse_float,
        doc="delay before the next address (IPv6/IPv4) is tried (RFC 8305)",
    ),
    KeySpec("gateway", "key_cache_ttl", "300", _parse_float),
    KeySpec(
        "gateway",
        "health_check_s",
        "30",
        _parse_float,
        ("GATEWAY_HEALTH_CHECK_S",),
        doc="seconds between the router's provider health checks; 0 turns them off",
    ),
    KeySpec(
        "gateway",
        "default_max_tokens",
        "4096",
        _parse_int,
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
        _parse_int,
        ("GATEWAY_EVENT_BUFFER",),
        doc="usage events a mesh router holds while NATS is unreachable",
    ),
    KeySpec(
        "hooks",
        "max_attempts",
        "8",
        _parse_int,
        ("GATEWAY_HOOKS_MAX_ATTEMPTS",),
        doc="tries per delivery before it is dead-lettered",
    ),
    KeySpec(
        "hooks",
        "api_scripts",
        "false",
        _parse_bool,
        doc="allow script hooks added through the admin API (commands run on this host)",
    ),
    KeySpec("hooks", "backoff_s", "1", _parse_float, doc="first retry delay, doubled each try"),
    KeySpec("hooks", "backoff_max_s", "600", _parse_float, doc="longest retry delay"),
    KeySpec("hooks", "timeout_s", "10", _parse_float, doc="webhook request timeout"),
    KeySpec(
        "hooks",
        "expiry_sweep_s",
        "30",
        _parse_float,
        doc="how often auth looks for keys that expired (key.expired events)",
    ),
    KeySpec("ledger", "batch_size", "100", _parse_int),
    KeySpec("ledger", "flush_interval_ms", "20", _parse_int),
    KeySpec("ledger", "queue_limit", "100000", _parse_int),
    KeySpec(
        "ledger",
        "retention_days",
        "0",
        _parse_int,
        ("GATEWAY_LEDGER_RETENTION_DAYS",),
        doc="PostgreSQL ledger: drop whole daily partitions older than this; 0 keeps all",
    ),
)

PROXY_VARS = ("https_proxy", "http_proxy", "no_proxy")
PROVIDER_KEYS: dict[str, Callable[[str], Any]] = {
    "kind": _choice(PROVIDER_KINDS),
    "base_url": _text,
    "api_key": _text,
    "api_key_env": _text,
    "timeout": _parse_float,
    "anthropic_version": _text,
    "api_version": _text,
    "proxy": _text,
    "ca_file": _text,
    "tls_verify": _parse_bool,
    "cert_file": _text,
    "key_file": _text,
    "headers": _text,
    "max_connections": _parse_int,
    "forward_org_headers": _parse_bool,
}
HOOK_KEYS: dict[str, Callable[[str], Any]] = {
    "kind": _choice(HOOK_KINDS),
    "events": _text,
    "url": _text,
    "secret_env": _text,
    "command": _text,
    "timeout_s": _parse_float,
    "enabled": _parse_bool,
}
_KEY_INDEX = {(k.section, k.name): k for k in KEYS}


def parse_header_list(text: str) -> tuple[tuple[str, str], ...]:
    """``"X-Team: search, X-Env: prod"`` as ``(("x-team", "search"), ...)``."""
    out: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        name = name.strip().lower()
        if not sep or not name or any(c in name for c in " \t\r\n") or "\n" in value:
            raise ValueError(f"{item.strip()!r} is not 'Name: value'")
        out.append((name, value.strip()))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class ProviderNetwork:
    """How a provider is reached beyond its URL: proxy (None follows
    HTTPS_PROXY/HTTP_PROXY/NO_PROXY, "none" goes direct), TLS files, extra
    headers, its own pool limit, and whether clients' OpenAI organisation and
    project headers are passed on (off: the key's owner decides what is billed)."""

    proxy: str | None = field(default=None, repr=False)  # may carry user:password
    ca_file: str = ""
    tls_verify: bool = True
    cert_file: str = ""
    key_file: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    max_connections: int = 0
    forward_org_headers: bool = False


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str
    api_key: str = field(default="", repr=False)
    timeout: float | None = None
    anthropic_version: str = "2023-06-01"
    api_version: str = ""
    api_key_env: str = ""  # the variable the key was read from, if any
    network: ProviderNetwork = field(default_factory=ProviderNetwork)

    @property
    def missing_key(self) -> str:
        """The name of the unset variable ``api_key_env`` points at, or ''."""
        return self.api_key_env if self.api_key_env and not self.api_key else ""

    def __repr__(self) -> str:
        return (
            f"ProviderConfig(name={self.name!r}, kind={self.kind!r}, "
            f"base_url={mask_url(self.base_url)!r}, api_key={mask_secret(self.api_key)!r})"
        )


@dataclass(frozen=True, kw_only=True)
class HookConfig:
    """One provisioning hook: a webhook (Standard Webhooks, signed with the
    ``whsec_`` secret read from ``secret_env``) or a script, for the event
    types its ``events`` globs match."""

    name: str
    kind: str
    events: tuple[str, ...]
    url: str = ""
    secret: str = field(default="", repr=False)
    secret_env: str = ""
    command: str = ""
    timeout_s: float | None = None
    enabled: bool = True

    def __repr__(self) -> str:
        target = self.url if self.kind == "webhook" else self.command
        return (
            f"HookConfig(name={self.name!r}, kind={self.kind!r}, events={self.events!r}, "
            f"target={target!r}, secret={mask_secret(self.secret)!r})"
        )


@dataclass(frozen=True)
class RouteTarget:
    provider: str
    upstream_model: str | None = None


@dataclass(frozen=True)
class RouteRule:
    pattern: str
    targets: tuple[RouteTarget, ...]


@dataclass(frozen=True)
class PriceOverride:
    input: float
    output: float
    cached: float | None = None


@dataclass(frozen=True)
class Setting:
    value: Any
    layer: str
    secret: bool = False

    def shown(self) -> str:
        if self.secret:
            return mask_secret(str(self.value))
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "echo": "",
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    values: Mapping[str, Setting]
    providers: Mapping[str, ProviderConfig]
    provider_layers: Mapping[str, str]
    routes: tuple[RouteRule, ...]
    aliases: Mapping[str, str]
    prices: Mapping[str, PriceOverride]
    config_dir: Path
    files: tuple[Path, ...]
    hooks: Mapping[str, HookConfig] = field(default_factory=dict)
    # HTTPS_PROXY, HTTP_PROXY, NO_PROXY (either case) as found; the upstream client's
    proxy_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    deprecations: tuple[str, ...] = ()
    # [strategies] route pattern -> (strategy, provider weights)
    strategies: Mapping[str, tuple[str, Mapping[str, float]]] = field(default_factory=dict)

    def get(self, dotted: str) -> Any:
        return self.values[dotted].value

    def override(self, dotted: str, value: Any, layer: str = "command line") -> Settings:
        """A copy with one key set from outside the layers (``--port``, the
        port really bound), so banners and ``config show`` tell the truth."""
        values = dict(self.values)
        values[dotted] = Setting(value, layer, values[dotted].secret)
        return replace(self, values=values)

    @property
    def env(self) -> str:
        return str(self.get("gateway.env"))

    @property
    def host(self) -> str:
        return str(self.get("gateway.host"))

    @property
    def port(self) -> int:
        return int(self.get("gateway.port"))

    @property
    def data_dir(self) -> Path:
        return Path(str(self.get("gateway.data_dir"))).expanduser()

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, shown value, layer) for every effective key, secrets masked."""
        out = [(k, s.shown(), s.layer) for k, s in self.values.items()]
        for name, prov in self.providers.items():
            layer = self.provider_layers.get(name, LAYER_DEFAULT)
            out.append((f"provider.{name}.kind", prov.kind, layer))
            out.append((f"provider.{name}.base_url", mask_url(prov.base_url), layer))
            out.append((f"provider.{name}.api_key", mask_secret(prov.api_key), layer))
            net = prov.network
            if net.proxy:
                out.append((f"provider.{name}.proxy", mask_url(net.proxy), layer))
            if not net.tls_verify:
                out.append((f"provider.{name}.tls_verify", "false", layer))
            if net.headers:  # names only: values may be credentials
                out.append(
                    (f"provider.{name}.headers", ", ".join(k for k, _ in net.headers), layer)
                )
        for i, rule in enumerate(self.routes):
            targets = ", ".join(
                t.provider + (f":{t.upstream_model}" if t.upstream_model else "")
                for t in rule.targets
            )
            out.append((f"routes.{rule.pattern}", targets, f"route #{i + 1}"))
        for alias, target in self.aliases.items():
            out.append((f"aliases.{alias}", target, "aliases"))
        for name, hook in self.hooks.items():
            target = hook.url if hook.kind == "webhook" else hook.command
            out.append((f"hook.{name}", f"{hook.kind} {target} [{', '.join(hook.events)}]", "hook"))
        for model, price in self.prices.items():
            out.append(
                (f"prices.{model}", f"{price.input}, {price.output}, {price.cached}", "prices")
            )
        return out

    def warnings(self) -> list[str]:
        """Problems that do not stop start-up but will fail requests."""
        return [
            f"provider {p.name}: api_key_env names {p.missing_key}, which is not set; "
            "its requests will fail upstream"
            for p in self.providers.values()
            if p.missing_key
        ] + list(self.deprecations)


class _Layer:
    """One parsed INI file."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            with path.open(encoding="utf-8") as fh:
                parser.read_file(fh)
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot parse: {exc}") from None
        self.parser = parser

    def sections(self) -> list[str]:
        return list(self.parser.sections())

    def items(self, section: str) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.parser.items(section, raw=True)]


def _parse_targets(raw: str, where: str) -> tuple[RouteTarget, ...]:
    targets = []
    for piece in raw.split(","):
        part = piece.strip()
        if not part:
            continue
        provider, _, model = part.partition(":")
        if not provider.strip():
            raise ConfigError(f"{where}: empty provider in {raw!r}")
        targets.append(RouteTarget(provider.strip(), model.strip() or None))
    if not targets:
        raise ConfigError(f"{where}: no provider given")
    return tuple(targets)


ROUTING_STRATEGIES = ("priority", "weighted", "cheapest", "fastest", "least-busy")


def _parse_strategy(raw: str, where: str) -> tuple[str, dict[str, float]]:
    """'weighted a=3 b=1', 'cheapest', ...: a strategy and optional weights."""
    parts = raw.split()
    if not parts or parts[0] not in ROUTING_STRATEGIES:
        raise ConfigError(f"{where}: expected one of {', '.join(ROUTING_STRATEGIES)}")
    weights: dict[str, float] = {}
    for piece in parts[1:]:
        name, _, value = piece.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ConfigError(f"{where}: weights are provider=number, got {piece!r}") from None
        if weights[name] < 0:
            raise ConfigError(f"{where}: a weight must not be negative")
    return parts[0], weights


def _parse_price(raw: str, where: str) -> PriceOverride:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"{where}: expected 'input, output[, cached]' USD per million") from None
    if len(nums) not in (2, 3) or any(n < 0 for n in nums):
        raise ConfigError(f"{where}: expected 'input, output[, cached]' USD per million")
    return PriceOverride(nums[0], nums[1], nums[2] if len(nums) == 3 else None)


def resolve_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("GATEWAY_CONFIG_DIR") or "./config").expanduser()


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``gatewayd`` keeps its state when no data dir is set: the user's
    XDG state directory, never whatever directory the daemon was started in."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or "~") / ".local" / "state")
    return Path(base).expanduser() / "tokgateway"


def load_settings(
    config_dir: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    env = dict(os.environ if environ is None else environ)
    cfg_dir = Path(config_dir).expanduser() if config_dir else resolve_config_dir(env)

    layers: list[_Layer] = []
    base = cfg_dir / "setting.ini"
    if base.is_file():
        layers.append(_Layer(base, "setting.ini"))
    env_name = env.get("GATEWAY_ENV", "").strip().lower()
    if not env_name:
        env_name = "dev"
        for layer in layers:
            if layer.parser.has_option("gateway", "env"):
                env_name = layer.parser.get("gateway", "env", raw=True).strip().lower()
    if env_name not in ENVIRONMENTS:
        raise ConfigError(
            f"GATEWAY_ENV / [gateway] env: expected one of {', '.join(ENVIRONMENTS)}, "
            f"got {env_name!r}"
        )
    overlay = cfg_dir / env_name / "gateway.ini"
    if overlay.is_file():
        layers.append(_Layer(overlay, f"{env_name}/gateway.ini"))

    raw: dict[str, tuple[str, str, str]] = {}  # dotted -> (raw, layer label, where)
    for spec in KEYS:
        raw[spec.dotted] = (spec.default, LAYER_DEFAULT, f"default {spec.dotted}")

    provider_raw: dict[str, dict[str, tuple[str, str]]] = {}
    provider_layer: dict[str, str] = {}
    routes: dict[str, RouteRule] = {}
    aliases: dict[str, str] = {}
    prices: dict[str, PriceOverride] = {}
    hook_raw: dict[str, dict[str, tuple[str, str]]] = {}
    deprecations: list[str] = []
    strategies: dict[str, tuple[str, dict[str, float]]] = {}

    for layer in layers:
        for section in layer.sections():
            where_s = f"{layer.path}: [{section}]"
            items = layer.items(section)
            if section.startswith("provider."):
                name = section.removeprefix("provider.").strip()
                if not name:
                    raise ConfigError(f"{where_s}: provider name missing")
                entry = provider_raw.setdefault(name, {})
                for key, value in items:
                    if key not in PROVIDER_KEYS:
                        raise ConfigError(
                            f"{where_s} {key}: unknown key (known: {', '.join(PROVIDER_KEYS)})"
                        )
                    entry[key] = (value, f"{where_s} {key}")
                provider_layer[name] = layer.label
            elif section.startswith("hook."):
                name = section.removeprefix("hook.").strip()
                if not name:
                    raise ConfigError(f"{where_s}: hook name missing")
                hook_entry = hook_raw.setdefault(name, {})
                for key, value in items:
                    if key not in HOOK_KEYS:
                        raise ConfigError(
                            f"{where_s} {key}: unknown key (known: {', '.join(HOOK_KEYS)})"
                        )
                    hook_entry[key] = (value, f"{where_s} {key}")
            elif section == "routes":
                for pattern, value in items:
                    routes[pattern] = RouteRule(
                        pattern, _parse_targets(value, f"{where_s} {pattern}")
                    )
            elif section == "aliases":
                for alias, target in items:
                    if not target.strip():
                        raise ConfigError(f"{where_s} {alias}: empty alias target")
                    aliases[alias] = target.strip()
            elif section == "strategies":
                for pattern, value in items:
                    strategies[pattern] = _parse_strategy(value, f"{where_s} {pattern}")
            elif section == "prices":
                for model, value in items:
                    prices[model] = _parse_price(value, f"{where_s} {model}")
            else:
                for key, value in items:
                    if (section, key) in DEPRECATED_KEYS:
                        new_key = DEPRECATED_KEYS[(section, key)]
                        deprecations.append(
                            f"{layer.path}: [{section}] {key} is deprecated; "
                            f"call it {new_key.split('.')[1]}"
                        )
                        raw[new_key] = (value, layer.label, f"{where_s} {key}")
                        continue
                    if (section, key) not in _KEY_INDEX:
                        raise ConfigError(f"{where_s} {key}: unknown key")
                    raw[f"{section}.{key}"] = (value, layer.label, f"{where_s} {key}")

    legacy = env.get("GATEWAY_ENABLE_PROVIDER", "").strip()
    if legacy and legacy.lower() not in _BOOL_WORDS:
        # before the marketplace, GATEWAY_ENABLE_PROVIDER held the provider filter
        deprecations.append(
            "GATEWAY_ENABLE_PROVIDER as a provider list is deprecated; "
            "use GATEWAY_PROVIDER_FILTER (GATEWAY_ENABLE_PROVIDER=true publishes on the market)"
        )
        env.pop("GATEWAY_ENABLE_PROVIDER")
        env.setdefault("GATEWAY_PROVIDER_FILTER", legacy)
    for spec in KEYS:
        for var in spec.env:
            if var in env and env[var].strip() != "":
                raw[spec.dotted] = (env[var], LAYER_ENV, f"environment {var}")
                break

    values: dict[str, Setting] = {}
    for spec in KEYS:
        value_raw, label, where = raw[spec.dotted]
        try:
            value = spec.parse(value_raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        values[spec.dotted] = Setting(value, label, spec.secret)
    values["gateway.env"] = Setting(env_name, values["gateway.env"].layer)

    providers = _build_providers(provider_raw, env)
    layers_by_provider = {n: provider_layer.get(n, LAYER_ENV) for n in providers}
    layers_by_provider.setdefault("echo", LAYER_DEFAULT)
    if "echo" not in provider_raw:
        layers_by_provider["echo"] = LAYER_DEFAULT

    enabled = [p.strip() for p in str(values["gateway.provider_filter"].value).split(",")]
    enabled = [p for p in enabled if p]
    if enabled:
        unknown = [p for p in enabled if p not in providers]
        if unknown:
            raise ConfigError(
                f"gateway.provider_filter: unknown provider {', '.join(unknown)} "
                f"(configured: {', '.join(providers)})"
            )
        providers = {n: p for n, p in providers.items() if n in enabled}

    primary = str(values["gateway.primary_provider"].value)
    if primary and primary not in providers:
        raise ConfigError(
            f"gateway.primary_provider ({values['gateway.primary_provider'].layer}): "
            f"unknown provider {primary!r} (configured: {', '.join(providers)})"
        )

    rules = list(routes.values())
    for rule in rules:
        for route_target in rule.targets:
            if route_target.provider not in providers:
                raise ConfigError(
                    f"[routes] {rule.pattern}: unknown provider {route_target.provider!r} "
                    f"(configured: {', '.join(providers)})"
                )
    rules.extend(_default_routes(providers, {r.pattern for r in rules}))

    return Settings(
        values=values,
        providers=providers,
        provider_layers=layers_by_provider,
        routes=tuple(rules),
        aliases=aliases,
        prices=prices,
        config_dir=cfg_dir,
        files=tuple(layer.path for layer in layers),
        hooks=_build_hooks(hook_raw, env),
        proxy_env={k: v for k, v in env.items() if k.lower() in PROXY_VARS},
        deprecations=tuple(deprecations),
        strategies=strategies,
    )


def parse_event_globs(raw: str) -> tuple[str, ...]:
    """'key.*, user.created' -> ('key.*', 'user.created')."""
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _build_hooks(
    hook_raw: Mapping[str, Mapping[str, tuple[str, str]]], env: Mapping[str, str]
) -> dict[str, HookConfig]:
    hooks: dict[str, HookConfig] = {}
    for name, entry in hook_raw.items():
        fields: dict[str, Any] = {}
        for key, (value, where) in entry.items():
            try:
                fields[key] = HOOK_KEYS[key](value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        kind = fields.get("kind")
        if not kind:
            raise ConfigError(f"[hook.{name}] kind: missing (one of {', '.join(HOOK_KINDS)})")
        events = parse_event_globs(str(fields.get("events", "")))
        if not events:
            raise ConfigError(f"[hook.{name}] events: missing (globs such as 'key.*, user.*')")
        secret_env = str(fields.get("secret_env", ""))
        secret = env.get(secret_env, "") if secret_env else ""
        if kind == "webhook":
            url = str(fields.get("url", ""))
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"[hook.{name}] url: an http:// or https:// URL is required")
            if not secret_env:
                raise ConfigError(f"[hook.{name}] secret_env: the variable holding whsec_...")
            if not secret:
                raise ConfigError(f"[hook.{name}] secret_env: {secret_env} is not set")
            try:
                secret_bytes(secret)
            except ValueError as exc:
                raise ConfigError(f"[hook.{name}] secret_env: {secret_env}: {exc}") from None
        elif not str(fields.get("command", "")):
            raise ConfigError(f"[hook.{name}] command: required for kind script")
        timeout = fields.get("timeout_s")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"[hook.{name}] timeout_s: must be positive")
        hooks[name] = HookConfig(
            name=name,
            kind=kind,
            events=events,
            url=str(fields.get("url", "")),
            secret=secret,
            secret_env=secret_env,
            command=str(fields.get("command", "")),
            timeout_s=timeout,
            enabled=bool(fields.get("enabled", True)),
        )
    return hooks


def _build_providers(
    provider_raw: Mapping[str, Mapping[str, tuple[str, str]]], env: Mapping[str, str]
) -> dict[str, ProviderConfig]:
    providers: dict[str, ProviderConfig] = {}
    for name, entry in provider_raw.items():
        fields: dict[str, Any] = {}
        for key, (value, where) in entry.items():
            try:
                fields[key] = PROVIDER_KEYS[key](value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        kind = fields.get("kind") or ("echo" if name == "echo" else "")
        if not kind:
            raise ConfigError(
                f"[provider.{name}] kind: missing (one of {', '.join(PROVIDER_KINDS)})"
            )
        base_url = str(fields.get("base_url") or DEFAULT_BASE_URLS.get(kind, ""))
        if kind in ("openai-compatible", "azure") and not base_url:
            raise ConfigError(f"[provider.{name}] base_url: required for kind {kind}")
        api_key = str(fields.get("api_key", ""))
        key_env = str(fields.get("api_key_env", ""))
        if key_env and not api_key:
            api_key = env.get(key_env, "")
        providers[name] = ProviderConfig(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            timeout=fields.get("timeout"),
            anthropic_version=str(fields.get("anthropic_version") or "2023-06-01"),
            api_version=str(fields.get("api_version") or ""),
            api_key_env=key_env,
            network=_provider_network(name, fields),
        )
    if not provider_raw:
        if env.get("OPENAI_API_KEY"):
            providers["openai"] = ProviderConfig(
                name="openai",
                kind="openai",
                base_url=(env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URLS["openai"]).rstrip("/"),
                api_key=env["OPENAI_API_KEY"],
            )
        if env.get("ANTHROPIC_API_KEY"):
            providers["anthropic"] = ProviderConfig(
                name="anthropic",
                kind="anthropic",
                base_url=(env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URLS["anthropic"]).rstrip(
                    "/"
                ),
                api_key=env["ANTHROPIC_API_KEY"],
            )
    providers.setdefault("echo", ProviderConfig(name="echo", kind="echo", base_url=""))
    return providers


def _provider_network(name: str, fields: Mapping[str, Any]) -> ProviderNetwork:
    try:
        headers = parse_header_list(str(fields.get("headers", "")))
    except ValueError as exc:
        raise ConfigError(f"[provider.{name}] headers: {exc}") from None
    if fields.get("key_file") and not fields.get("cert_file"):
        raise ConfigError(f"[provider.{name}] key_file: needs cert_file")
    limit = int(fields.get("max_connections", 0))
    if limit < 0:
        raise ConfigError(f"[provider.{name}] max_connections: must be 0 or more")
    proxy = fields.get("proxy")
    return ProviderNetwork(
        proxy=str(proxy) if proxy else None,
        ca_file=str(fields.get("ca_file", "")),
        tls_verify=bool(fields.get("tls_verify", True)),
        cert_file=str(fields.get("cert_file", "")),
        key_file=str(fields.get("key_file", "")),
        headers=headers,
        max_connections=limit,
        forward_org_headers=bool(fields.get("forward_org_headers", False)),
    )


def _default_routes(providers: Mapping[str, ProviderConfig], taken: set[str]) -> list[RouteRule]:
    defaults: list[tuple[str, str]] = []
    if "openai" in providers:
        defaults += [(p, "openai") for p in ("gpt-*", "o1*", "o3*", "o4*", "text-embedding-*")]
    if "anthropic" in providers:
        defaults.append(("claude-*", "anthropic"))
    if "echo" in providers:
        # only its own name: a mistyped model is a 404, never an echo billed as another
        defaults.append(("echo", "echo"))
    return [
        RouteRule(pattern, (RouteTarget(provider),))
        for pattern, provider in defaults
        if pattern not in taken
    ]
