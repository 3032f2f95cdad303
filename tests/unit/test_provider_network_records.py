"""A provider added through the admin API carries its own network options:
checked on write, sealed in the registry's file, shown masked, and handed to
the router's providers (the all-in-one table and the mesh snapshot alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tokgateway.allinone import client_options, registry_service
from tokgateway.common.bus import InProcessBus
from tokgateway.common.clients import table_from_snapshot
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.errors import BadRequest
from tokgateway.common.settings import ProviderNetwork, Settings, load_settings
from tokgateway.registry.service import RegistryService
from tokgateway.router.providers.client import ConnectOptions
from tokgateway.router.providers.http import connect_options

PROXY = "http://squid:pr0xy-s3cret@proxy.corp:3128"
CORP = {
    "name": "corp",
    "kind": "openai-compatible",
    "base_url": "https://llm.corp.example/v1",
    "proxy": PROXY,
    "ca_file": "/etc/corp/ca.pem",
    "cert_file": "/etc/corp/client.pem",
    "key_file": "/etc/corp/client-key.pem",
    "headers": {"X-Team": "search", "X-Token": "hdr-s3cret"},
    "max_connections": 7,
    "forward_org_headers": True,
}


def _settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "cfg", {"GATEWAY_DATA_DIR": str(tmp_path / "data")})


async def _registry(tmp_path: Path) -> RegistryService:
    registry = registry_service(_settings(tmp_path), InProcessBus())
    await registry.start()
    return registry


async def test_api_provider_network_reaches_the_table_sealed_and_masked(tmp_path: Path) -> None:
    registry = await _registry(tmp_path)
    await registry.put_provider(CORP)
    net = registry.snapshot().providers["corp"].network
    assert net == ProviderNetwork(
        proxy=PROXY,
        ca_file="/etc/corp/ca.pem",
        cert_file="/etc/corp/client.pem",
        key_file="/etc/corp/client-key.pem",
        headers=(("x-team", "search"), ("x-token", "hdr-s3cret")),
        max_connections=7,
        forward_org_headers=True,
    )
    [shown] = [p for p in registry.providers_public() if p["name"] == "corp"]
    assert shown["network"]["proxy"] == "http://****@proxy.corp:3128"
    assert shown["network"]["headers"] == ["x-team", "x-token"]
    assert "s3cret" not in repr(registry.providers_public())
    # a write without network keys keeps them, like a write without api_key keeps the key
    await registry.put_provider({k: CORP[k] for k in ("name", "kind", "base_url")} | {"timeout": 9})
    assert registry.snapshot().providers["corp"].network == net
    # each key named replaces that key only; null is its default
    await registry.put_provider({**CORP, "proxy": "none", "headers": None})
    assert registry.snapshot().providers["corp"].network.proxy == "none"
    assert registry.snapshot().providers["corp"].network.headers == ()
    await registry.put_provider(
        {k: CORP[k] for k in ("name", "kind", "base_url")} | {"proxy": None}
    )
    changed = registry.snapshot().providers["corp"].network
    assert changed.proxy is None and changed.ca_file == "/etc/corp/ca.pem"
    await registry.put_provider(CORP)
    await registry.close()
    stored = (tmp_path / "data" / "gateway.db").read_bytes()
    assert b"s3cret" not in stored and b"proxy.corp" not in stored

    reopened = await _registry(tmp_path)
    assert reopened.snapshot().providers["corp"].network == net
    wire = await reopened.wire_snapshot()
    assert "s3cret" not in repr(wire)
    box = reopened.box
    assert isinstance(box, CredentialBox)
    assert table_from_snapshot(wire, box).providers["corp"].network == net
    await reopened.close()


async def test_router_uses_the_record_network_when_its_ini_has_no_section(
    tmp_path: Path,
) -> None:
    registry = await _registry(tmp_path)
    await registry.put_provider(CORP)
    options = client_options(_settings(tmp_path))  # the all-in-one's INI: no [provider.corp]
    config = options.with_network(registry.snapshot().providers["corp"])
    assert connect_options(config) == ConnectOptions(
        proxy=PROXY,
        ca_file="/etc/corp/ca.pem",
        cert_file="/etc/corp/client.pem",
        key_file="/etc/corp/client-key.pem",
        max_connections=7,
    )
    await registry.close()


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"proxy": "ftp://proxy:21"}, "proxy"),
        ({"proxy": "http://:3128"}, "proxy"),
        ({"proxy": "http://proxy:99999"}, "proxy"),
        ({"proxy": "http://proxy:3128/path"}, "proxy"),
        ({"proxy": 3128}, "proxy"),
        ({"proxy": "http://[::1"}, "proxy"),
        ({"headers": {"X-A": "caf\u00e9"}}, "headers"),
        ({"cert_file": ""}, "key_file"),
        ({"ca_file": "/a\nb"}, "ca_file"),
        ({"tls_verify": "no"}, "tls_verify"),
        ({"max_connections": -1}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"headers": "no colon here"}, "headers"),
        ({"headers": {"X-A": "1, 2"}}, "headers"),
        ({"headers": ["X-A: 1"]}, "headers"),
    ],
)
async def test_bad_network_options_are_refused(
    tmp_path: Path, change: dict[str, Any], param: str
) -> None:
    registry = await _registry(tmp_path)
    try:
        with pytest.raises(BadRequest) as caught:
            await registry.put_provider({**CORP, **change})
        assert caught.value.param == param
        assert "s3cret" not in str(caught.value)
        assert "corp" not in registry.snapshot().providers
    finally:
        await registry.close()


@pytest.mark.parametrize(
    "proxy", ["socks5://proxy.corp:1080", "socks5h://u:p@proxy.corp:9050", "none", "http://p:8"]
)
async def test_proxy_schemes_the_client_speaks_are_taken(tmp_path: Path, proxy: str) -> None:
    registry = await _registry(tmp_path)
    try:
        await registry.put_provider({**CORP, "proxy": proxy})
        assert registry.snapshot().providers["corp"].network.proxy == proxy
    finally:
        await registry.close()


def test_config_show_masks_a_proxy_password_with_or_without_a_scheme(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "setting.ini").write_text(
        "[provider.a]\nkind = openai-compatible\nbase_url = http://h/v1\n"
        "proxy = u:pr0xy-s3cret@proxy.corp:3128\n"
        "[provider.b]\nkind = openai-compatible\nbase_url = http://h/v1\n"
        "proxy = socks5h://u:pr0xy-s3cret@proxy.corp:1080\n"
    )
    rows = {k: v for k, v, _ in load_settings(cfg, {}).rows()}
    assert rows["provider.a.proxy"] == "****@proxy.corp:3128"
    assert rows["provider.b.proxy"] == "socks5h://****@proxy.corp:1080"
