"""Providers in the settings: their keys, their network options and the
building of ProviderConfig from a [provider.<name>] section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tokgateway.common.settings_values import (
    ConfigError,
    mask_secret,
    mask_url,
    parse_bool,
    parse_choice,
    parse_float,
    parse_int,
    parse_text,
)

PROVIDER_KINDS = ("openai", "anthropic", "openai-compatible", "gemini", "azure", "echo")
PROXY_VARS = ("https_proxy", "http_proxy", "no_proxy")
PROXY_SCHEMES = ("http", "socks5", "socks5h")  # what the upstream client speaks to a proxy


def proxy_url_problem(url: str) -> str | None:
    """Why the upstream client could not use ``url`` (with its scheme) as a
    proxy, or None. The answer never repeats the URL, which may carry a
    password."""
    shown = ", ".join(f"{s}://host:port" for s in PROXY_SCHEMES)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # such as an unclosed [IPv6 bracket
        return f"must be {shown}, or none"
    scheme = parts.scheme.lower()
    if scheme == "https":
        return (
            "https:// proxies (TLS to the proxy) are not supported; an http:// proxy "
            "tunnels https upstreams with CONNECT"
        )
    if scheme not in PROXY_SCHEMES or not url.isprintable():
        return (
            f"unsupported scheme {scheme + '://' if scheme else '(none)'}; must be {shown}, or none"
        )
    if not host:
        return f"has no host; must be {shown}"
    try:
        port = parts.port
    except ValueError:
        return "has an invalid port (1-65535)"
    if port == 0:
        return "has an invalid port (1-65535)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "must be scheme://[user:password@]host:port, without a path"
    return None


def parse_proxy(raw: str) -> str:
    """A provider's ``proxy``: ``none`` (direct), or a proxy URL the upstream
    client can use (``host:port`` alone means ``http://host:port``)."""
    text = raw.strip()
    if text.lower() in ("", "none"):
        return text
    problem = proxy_url_problem(text if "://" in text else "http://" + text)
    if problem:
        raise ValueError(f"{mask_proxy(text)!r} {problem}")
    return text


PROVIDER_KEYS: dict[str, Callable[[str], Any]] = {
    "kind": parse_choice(PROVIDER_KINDS),
    "base_url": parse_text,
    "api_key": parse_text,
    "api_key_env": parse_text,
    "timeout": parse_float,
    "anthropic_version": parse_text,
    "api_version": parse_text,
    "proxy": parse_proxy,
    "ca_file": parse_text,
    "tls_verify": parse_bool,
    "cert_file": parse_text,
    "key_file": parse_text,
    "headers": parse_text,
    "max_connections": parse_int,
    "forward_org_headers": parse_bool,
}

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "echo": "",
}


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


def build_providers(
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
            network=provider_network(name, fields),
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


def provider_network(name: str, fields: Mapping[str, Any]) -> ProviderNetwork:
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


NETWORK_KEYS = (
    "proxy",
    "ca_file",
    "tls_verify",
    "cert_file",
    "key_file",
    "headers",
    "max_connections",
    "forward_org_headers",
)


def network_doc(net: ProviderNetwork) -> dict[str, Any]:
    """A provider's network options as JSON (the registry keeps it sealed: a
    proxy URL and header values may carry credentials); {} for the defaults."""
    if net == ProviderNetwork():
        return {}
    return {
        "proxy": net.proxy,
        "ca_file": net.ca_file,
        "tls_verify": net.tls_verify,
        "cert_file": net.cert_file,
        "key_file": net.key_file,
        "headers": [[k, v] for k, v in net.headers],
        "max_connections": net.max_connections,
        "forward_org_headers": net.forward_org_headers,
    }


def network_from_doc(doc: Mapping[str, Any]) -> ProviderNetwork:
    """The inverse of :func:`network_doc` (a document it wrote)."""
    if not doc:
        return ProviderNetwork()
    proxy = doc.get("proxy")
    return ProviderNetwork(
        proxy=str(proxy) if proxy is not None else None,
        ca_file=str(doc.get("ca_file") or ""),
        tls_verify=bool(doc.get("tls_verify", True)),
        cert_file=str(doc.get("cert_file") or ""),
        key_file=str(doc.get("key_file") or ""),
        headers=tuple((str(k), str(v)) for k, v in doc.get("headers") or ()),
        max_connections=int(doc.get("max_connections") or 0),
        forward_org_headers=bool(doc.get("forward_org_headers", False)),
    )


def network_shown(net: ProviderNetwork) -> dict[str, Any]:
    """What an API or ``config show`` may print: the proxy's credentials
    masked, header names without their values."""
    return {
        "proxy": mask_proxy(net.proxy) if net.proxy else net.proxy,
        "ca_file": net.ca_file,
        "tls_verify": net.tls_verify,
        "cert_file": net.cert_file,
        "key_file": net.key_file,
        "headers": [k for k, _ in net.headers],
        "max_connections": net.max_connections,
        "forward_org_headers": net.forward_org_headers,
    }


def mask_proxy(url: str) -> str:
    """A proxy URL with its ``user:password@`` masked, with or without a scheme."""
    if "://" in url:
        return mask_url(url)
    return url if "@" not in url else "****@" + url.rsplit("@", 1)[1]
