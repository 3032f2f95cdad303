"""A provider's network options in the registry: checked when the admin API
writes them, sealed in the record like the API key (a proxy URL and header
values may carry credentials), opened for the route table and the snapshot
routers load.

The admin API takes the keys of an INI ``[provider.NAME]`` section: ``proxy``
(an ``http://``, ``socks5://`` or ``socks5h://`` URL, or ``"none"`` for
direct; absent or null follows the environment), ``ca_file``, ``tls_verify``,
``cert_file``, ``key_file``, ``headers`` ("Name: value, ..." or an object),
``max_connections`` and ``forward_org_headers``. A write keeps the provider's
current value of each key it does not name (the way a write without
``api_key`` keeps the key); a key given as null goes back to its default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from tokgateway.common.errors import BadRequest
from tokgateway.common.settings_providers import (
    NETWORK_KEYS,
    ProviderNetwork,
    network_doc,
    network_from_doc,
    parse_header_list,
    proxy_url_problem,
)


class Sealer(Protocol):
    def seal(self, plaintext: str) -> str: ...

    def open(self, token: str) -> str: ...


def seal_network(box: Sealer, net: ProviderNetwork) -> str:
    doc = network_doc(net)
    return box.seal(orjson.dumps(doc).decode()) if doc else ""


def open_network(box: Sealer, token: str) -> ProviderNetwork:
    if not token:
        return ProviderNetwork()
    return network_from_doc(orjson.loads(box.open(token)))


def check_proxy_url(url: str) -> None:
    """A proxy URL the upstream client can use, or BadRequest naming the problem
    (never the credentials in it)."""
    problem = proxy_url_problem(url)
    if problem:
        raise BadRequest(f"'proxy' {problem}.", param="proxy")


def network_from_api(data: Mapping[str, Any], current: ProviderNetwork) -> ProviderNetwork:
    """The network options an admin API provider body gives over ``current``,
    checked like the INI keys are."""
    if not any(key in data for key in NETWORK_KEYS):
        return current
    data = {**_as_api(current), **{k: data[k] for k in NETWORK_KEYS if k in data}}
    proxy = data.get("proxy")
    if proxy is not None:
        if not isinstance(proxy, str):
            raise BadRequest("'proxy' must be a URL string.", param="proxy")
        proxy = proxy.strip() or None
        if proxy is not None and proxy.lower() != "none":
            check_proxy_url(proxy)
    files = {}
    for key in ("ca_file", "cert_file", "key_file"):
        value = data.get(key) or ""
        if not isinstance(value, str) or "\n" in value or "\0" in value:
            raise BadRequest(f"'{key}' must be a file path.", param=key)
        files[key] = value.strip()
    if files["key_file"] and not files["cert_file"]:
        raise BadRequest("'key_file' needs 'cert_file'.", param="key_file")
    flags = {}
    for key, default in (("tls_verify", True), ("forward_org_headers", False)):
        value = default if data.get(key) is None else data[key]
        if not isinstance(value, bool):
            raise BadRequest(f"'{key}' must be true or false.", param=key)
        flags[key] = value
    limit = data.get("max_connections") or 0
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise BadRequest(
            "'max_connections' must be an integer, 0 or more.", param="max_connections"
        )
    return ProviderNetwork(
        proxy=proxy,
        ca_file=files["ca_file"],
        tls_verify=flags["tls_verify"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        headers=_headers(data.get("headers")),
        max_connections=limit,
        forward_org_headers=flags["forward_org_headers"],
    )


def _as_api(net: ProviderNetwork) -> dict[str, Any]:
    return {
        "proxy": net.proxy,
        "ca_file": net.ca_file,
        "tls_verify": net.tls_verify,
        "cert_file": net.cert_file,
        "key_file": net.key_file,
        "headers": dict(net.headers),
        "max_connections": net.max_connections,
        "forward_org_headers": net.forward_org_headers,
    }


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        if not all(isinstance(v, str) and "," not in v for v in raw.values()):
            raise BadRequest("'headers' values must be strings without commas.", param="headers")
        raw = ", ".join(f"{k}: {v}" for k, v in raw.items())
    if not isinstance(raw, str):
        raise BadRequest("'headers' must be 'Name: value, ...' or an object.", param="headers")
    try:
        headers = parse_header_list(raw)
    except ValueError as exc:
        raise BadRequest(f"'headers': {exc}.", param="headers") from None
    for name, value in headers:
        text = name + value
        if not text.isprintable() or not text.isascii():
            raise BadRequest("'headers' must be printable ASCII.", param="headers")
    return headers
