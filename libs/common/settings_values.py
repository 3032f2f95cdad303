"""Values in the settings files: the error naming file and key, the parsers of
one raw value, and the masking of secrets and credential-carrying URLs."""

from __future__ import annotations

from collections.abc import Callable


class ConfigError(Exception):
    """A configuration problem, with the file and key that caused it."""


def mask_secret(value: str) -> str:
    if not value:
        return ""
    if len(value) <= 8:
        return "****"
    return f"{value[:3]}…{value[-4:]}"


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


BOOL_WORDS = frozenset({"1", "true", "yes", "on", "0", "false", "no", "off"})


def parse_int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def parse_port(raw: str) -> int:
    port = parse_int(raw)
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


def parse_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def parse_choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def parse_text(raw: str) -> str:
    return raw.strip()
