"""Layered settings: defaults < setting.ini < <env>/gateway.ini < environment.

The environment is read here and nowhere else. Every effective value remembers
the layer that set it, so ``gateway config show`` can say where it came from.
A bad file, an unknown key or a bad value raises ConfigError naming file and key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokgateway.common.settings_hooks import (
    HOOK_KEYS,
    HOOK_KINDS,
    HookConfig,
    build_hooks,
    parse_event_globs,
)
from tokgateway.common.settings_ini import IniLayer, default_state_dir, resolve_config_dir
from tokgateway.common.settings_keys import (
    DEPRECATED_KEYS,
    ENVIRONMENTS,
    KEY_INDEX,
    KEYS,
    LAYER_DEFAULT,
    LAYER_ENV,
    WORK_MODES,
    KeySpec,
)
from tokgateway.common.settings_providers import (
    DEFAULT_BASE_URLS,
    PROVIDER_KEYS,
    PROVIDER_KINDS,
    PROXY_VARS,
    ProviderConfig,
    ProviderNetwork,
    build_providers,
    mask_proxy,
    parse_header_list,
)
from tokgateway.common.settings_routes import (
    ROUTING_STRATEGIES,
    PriceOverride,
    RouteRule,
    RouteTarget,
    default_routes,
    parse_price,
    parse_strategy,
    parse_targets,
)
from tokgateway.common.settings_values import BOOL_WORDS, ConfigError, mask_secret, mask_url

__all__ = [
    "DEFAULT_BASE_URLS",
    "DEPRECATED_KEYS",
    "ENVIRONMENTS",
    "HOOK_KEYS",
    "HOOK_KINDS",
    "KEYS",
    "LAYER_DEFAULT",
    "LAYER_ENV",
    "PROVIDER_KEYS",
    "PROVIDER_KINDS",
    "PROXY_VARS",
    "ROUTING_STRATEGIES",
    "WORK_MODES",
    "ConfigError",
    "HookConfig",
    "KeySpec",
    "PriceOverride",
    "ProviderConfig",
    "ProviderNetwork",
    "RouteRule",
    "RouteTarget",
    "Setting",
    "Settings",
    "default_state_dir",
    "load_settings",
    "mask_secret",
    "mask_url",
    "parse_event_globs",
    "parse_header_list",
    "resolve_config_dir",
]


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
                out.append((f"provider.{name}.proxy", mask_proxy(net.proxy), layer))
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
            shown = f"{price.input}, {price.output}, {price.cached}, {price.cache_write}"
            out.append((f"prices.{model}", shown, "prices"))
        return out

    def warnings(self) -> list[str]:
        """Problems that do not stop start-up but will fail requests."""
        return [
            f"provider {p.name}: api_key_env names {p.missing_key}, which is not set; "
            "its requests will fail upstream"
            for p in self.providers.values()
            if p.missing_key
        ] + list(self.deprecations)


def load_settings(
    config_dir: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    env = dict(os.environ if environ is None else environ)
    cfg_dir = Path(config_dir).expanduser() if config_dir else resolve_config_dir(env)

    layers: list[IniLayer] = []
    base = cfg_dir / "setting.ini"
    if base.is_file():
        layers.append(IniLayer(base, "setting.ini"))
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
        layers.append(IniLayer(overlay, f"{env_name}/gateway.ini"))

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
                        pattern, parse_targets(value, f"{where_s} {pattern}")
                    )
            elif section == "aliases":
                for alias, target in items:
                    if not target.strip():
                        raise ConfigError(f"{where_s} {alias}: empty alias target")
                    aliases[alias] = target.strip()
            elif section == "strategies":
                for pattern, value in items:
                    strategies[pattern] = parse_strategy(value, f"{where_s} {pattern}")
            elif section == "prices":
                for model, value in items:
                    prices[model] = parse_price(value, f"{where_s} {model}")
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
                    if (section, key) not in KEY_INDEX:
                        raise ConfigError(f"{where_s} {key}: unknown key")
                    raw[f"{section}.{key}"] = (value, layer.label, f"{where_s} {key}")

    legacy = env.get("GATEWAY_ENABLE_PROVIDER", "").strip()
    if legacy and legacy.lower() not in BOOL_WORDS:
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

    providers = build_providers(provider_raw, env)
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
    rules.extend(default_routes(providers, {r.pattern for r in rules}))

    return Settings(
        values=values,
        providers=providers,
        provider_layers=layers_by_provider,
        routes=tuple(rules),
        aliases=aliases,
        prices=prices,
        config_dir=cfg_dir,
        files=tuple(layer.path for layer in layers),
        hooks=build_hooks(hook_raw, env),
        proxy_env={k: v for k, v in env.items() if k.lower() in PROXY_VARS},
        deprecations=tuple(deprecations),
        strategies=strategies,
    )
