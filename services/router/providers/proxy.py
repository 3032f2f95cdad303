"""Proxies for upstream calls: which proxy an origin goes through, and the
CONNECT handshake that tunnels TLS through an HTTP proxy (SOCKS5 proxies,
``socks5://`` and ``socks5h://``, are in :mod:`.socks`).

The environment is read once, by :func:`proxies_from_env` (``HTTPS_PROXY``,
``HTTP_PROXY``, ``NO_PROXY`` and their lowercase forms, lowercase first as
curl does); a provider's own ``proxy`` setting wins over it (``"none"`` turns
the proxy off for that provider). ``https`` origins are tunnelled with CONNECT;
``http`` origins are sent to the proxy with the absolute URI in the request
line. Loopback origins never use an environment proxy."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from tokgateway.common.settings import mask_url

MAX_CONNECT_ANSWER = 16 * 1024


class ProxyError(OSError):
    """The proxy refused or broke the tunnel; ``str()`` names no credential."""


SCHEMES = {"http": 80, "socks5": 1080, "socks5h": 1080}  # scheme -> default port


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str = field(default="", repr=False)  # "Basic ..." from URL userinfo
    url: str = field(default="", compare=False)  # masked, for messages
    scheme: str = "http"
    username: str | None = field(default=None, repr=False)  # SOCKS5 username/password
    password: str = field(default="", repr=False)

    @property
    def is_socks(self) -> bool:
        return self.scheme != "http"

    @property
    def remote_dns(self) -> bool:
        """socks5h: the proxy resolves the upstream's name."""
        return self.scheme == "socks5h"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        raw = url.strip()
        if "://" not in raw:
            raw = "http://" + raw
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not parts.hostname:
            raise ValueError(
                f"unsupported proxy URL {mask_url(raw)!r} "
                "(use http://host:port, socks5://host:port or socks5h://host:port)"
            )
        try:
            port = parts.port or SCHEMES[scheme]
        except ValueError:
            raise ValueError(f"the proxy URL {mask_url(raw)!r} has an invalid port") from None
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password or "")
        auth = ""
        if user is not None and scheme == "http":
            pair = f"{user}:{password}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(
            parts.hostname,
            port,
            auth,
            mask_url(raw),
            scheme,
            user if scheme != "http" else None,
            password if scheme != "http" else "",
        )


@dataclass(frozen=True, slots=True)
class EnvProxies:
    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    def for_origin(self, scheme: str, host: str) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or is_loopback(host) or bypassed(host, self.no_proxy):
            return None
        return proxy


def _env(env: Mapping[str, str], name: str) -> str:
    return (env.get(name.lower()) or env.get(name.upper()) or "").strip()


def proxies_from_env(env: Mapping[str, str]) -> EnvProxies:
    """The environment's proxies; a malformed proxy URL is a ``ValueError`` naming
    the variable, so the gateway refuses to start rather than go around it."""
    found: dict[str, Proxy | None] = {}
    for name in ("http_proxy", "https_proxy"):
        value = _env(env, name)
        try:
            found[name] = Proxy.parse(value) if value else None
        except ValueError as exc:
            raise ValueError(f"{name.upper()}: {exc}") from None
    entries = tuple(e.strip().lower() for e in _env(env, "no_proxy").split(",") if e.strip())
    return EnvProxies(found["http_proxy"], found["https_proxy"], entries)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bypassed(host: str, entries: tuple[str, ...]) -> bool:
    """NO_PROXY as curl reads it: ``*``, domain suffixes (``.example.com`` or
    ``example.com`` both match subdomains), exact IPs, and CIDR ranges."""
    name = host.lower().strip("[]")
    for raw in entries:
        if raw == "*":
            return True
        entry = raw.split(":", 1)[0] if raw.count(":") == 1 else raw
        if "/" in entry:
            try:
                if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        suffix = entry.lstrip(".")
        if name == suffix or name.endswith("." + suffix):
            return True
    return False


async def tunnel(sock: socket.socket, proxy: Proxy, host: str, port: int) -> None:
    """Ask the proxy for a CONNECT tunnel to ``host:port`` over ``sock``; on
    return the socket carries bytes to the origin (the TLS handshake is next)."""
    loop = asyncio.get_running_loop()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
    if proxy.authorization:
        head += f"proxy-authorization: {proxy.authorization}\r\n"
    await loop.sock_sendall(sock, (head + "\r\n").encode("latin-1"))
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = await loop.sock_recv(sock, 4096)
        if not data:
            raise ProxyError(f"the proxy {proxy.url} closed the connection during CONNECT")
        answer += data
        if len(answer) > MAX_CONNECT_ANSWER:
            raise ProxyError(f"the proxy {proxy.url} sent an oversized CONNECT answer")
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    status_line = head_bytes.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or parts[1] != "200":
        why = status_line[:100] or "no status line"
        raise ProxyError(f"the proxy {proxy.url} refused the tunnel ({why})")
    if rest:
        raise ProxyError(f"the proxy {proxy.url} sent data before the tunnel was open")
