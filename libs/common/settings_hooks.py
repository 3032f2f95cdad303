"""Provisioning hooks in the settings: [hook.<name>] sections."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokgateway.common.settings_values import (
    ConfigError,
    mask_secret,
    parse_bool,
    parse_choice,
    parse_float,
    parse_text,
)
from tokgateway.common.webhooks import secret_bytes

HOOK_KINDS = ("webhook", "script")
HOOK_KEYS: dict[str, Callable[[str], Any]] = {
    "kind": parse_choice(HOOK_KINDS),
    "events": parse_text,
    "url": parse_text,
    "secret_env": parse_text,
    "command": parse_text,
    "timeout_s": parse_float,
    "enabled": parse_bool,
}


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


def parse_event_globs(raw: str) -> tuple[str, ...]:
    """'key.*, user.created' -> ('key.*', 'user.created')."""
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def build_hooks(
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
