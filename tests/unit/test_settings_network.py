"""Network settings of the upstream client and of each provider."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokgateway.allinone import client_options
from tokgateway.common.settings import ConfigError, ProviderNetwork, Settings, load_settings
from tokgateway.router.providers.proxy import Proxy

PROVIDER = """
[provider.corp]
kind = openai-compatible
base_url = https://llm.corp.example/v1
proxy = http://user:pw@proxy.corp.example:3128
ca_file = /etc/corp/ca.pem
tls_verify = false
cert_file = /etc/corp/client.pem
key_file = /etc/corp/client.key
headers = X-Team: search, X-Cost-Center: 42
max_connections = 16
forward_org_headers = true

[provider.plain]
kind = openai-compatible
base_url = http://127.0.0.1:11434/v1
"""


def test_provider_network_keys(tmp_path: Path) -> None:
    s = load_settings_text(tmp_path, PROVIDER)
    corp = s.providers["corp"].network
    assert corp == ProviderNetwork(
        proxy="http://user:pw@proxy.corp.example:3128",
        ca_file="/etc/corp/ca.pem",
        tls_verify=False,
        cert_file="/etc/corp/client.pem",
        key_file="/etc/corp/client.key",
        headers=(("x-team", "search"), ("x-cost-center", "42")),
        max_connections=16,
        forward_org_headers=True,
    )
    assert "pw" not in repr(s.providers["corp"]) and "pw" not in repr(corp)
    assert s.providers["plain"].network == ProviderNetwork()
    shown = {k: v for k, v, _ in s.rows()}
    assert shown["provider.corp.proxy"] == "http://****@proxy.corp.example:3128"
    assert shown["provider.corp.headers"] == "x-team, x-cost-center"
    assert shown["provider.corp.tls_verify"] == "false"


def test_gateway_network_keys_and_the_environment(tmp_path: Path) -> None:
    env = {"HTTPS_PROXY": "http://proxy:8080", "no_proxy": ".internal", "HOME": "/root"}
    s = load_settings_text(
        tmp_path,
        "[gateway]\nupstream_pool_timeout = 2.5\nupstream_max_body_mb = 8\n"
        "upstream_keepalive = 15\nupstream_happy_eyeballs_ms = 100\n" + PROVIDER,
        env,
    )
    assert s.proxy_env == {"HTTPS_PROXY": "http://proxy:8080", "no_proxy": ".internal"}
    options = client_options(s)
    assert options.pool_timeout == 2.5
    assert options.max_body == 8 << 20
    assert options.max_event == 8 << 20  # the default
    assert options.keepalive == 15
    assert options.happy_eyeballs_delay == pytest.approx(0.1)
    assert options.proxies.https == Proxy("proxy", 8080)
    assert options.proxies.no_proxy == (".internal",)
    assert options.networks["corp"].max_connections == 16
    assert int(s.get("gateway.upstream_max_connections")) == 256
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        client_options(load_settings_text(tmp_path, "", {"HTTPS_PROXY": "ftp://x:1"}))
    socks = client_options(load_settings_text(tmp_path, "", {"HTTPS_PROXY": "socks5h://x:1"}))
    assert socks.proxies.https is not None and socks.proxies.https.remote_dns


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "headers = no colon here",
            r"\[provider.p\] headers: 'no colon here' is not 'Name: value'",
        ),
        ("key_file = /k.pem", r"\[provider.p\] key_file: needs cert_file"),
        ("max_connections = -1", r"\[provider.p\] max_connections: must be 0 or more"),
        ("tls_verify = maybe", r"\[provider.p\] tls_verify"),
    ],
)
def test_bad_provider_network_values_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    text = f"[provider.p]\nkind = openai-compatible\nbase_url = http://x/v1\n{line}\n"
    with pytest.raises(ConfigError, match=message):
        load_settings_text(tmp_path, text)


def load_settings_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    (tmp_path / "setting.ini").write_text(text)
    return load_settings(tmp_path, env or {})


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        ("ftp://proxy.corp:21", r"unsupported scheme ftp://"),
        ("https://proxy.corp:443", r"https:// proxies \(TLS to the proxy\) are not supported"),
        ("http://proxy.corp:99999", r"invalid port"),
        ("proxy.corp:abc", r"invalid port"),
        ("http://:3128", r"has no host"),
        ("socks5://proxy.corp:1080/path", r"without a path"),
        ("socks4://proxy.corp:1080", r"unsupported scheme socks4://"),
    ],
)
def test_a_bad_provider_proxy_stops_the_config_load(
    tmp_path: Path, proxy: str, problem: str
) -> None:
    text = f"[provider.corp]\nkind = openai-compatible\nbase_url = http://x/v1\nproxy = {proxy}\n"
    with pytest.raises(ConfigError, match=r"\[provider\.corp\] proxy: .*" + problem):
        load_settings_text(tmp_path, text)


def test_a_bad_provider_proxy_names_no_password(tmp_path: Path) -> None:
    text = (
        "[provider.corp]\nkind = openai-compatible\nbase_url = http://x/v1\n"
        "proxy = ftp://alice:s3cret@proxy.corp:21\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_settings_text(tmp_path, text)
    assert "s3cret" not in str(exc.value) and "proxy.corp:21" in str(exc.value)


@pytest.mark.parametrize(
    "proxy",
    [
        "none",
        "http://proxy.corp:3128",
        "proxy.corp:3128",
        "http://u:p@proxy.corp",
        "socks5://127.0.0.1:1080",
        "socks5h://[::1]:1080/",
    ],
)
def test_good_provider_proxies_load_and_parse(tmp_path: Path, proxy: str) -> None:
    text = f"[provider.corp]\nkind = openai-compatible\nbase_url = http://x/v1\nproxy = {proxy}\n"
    net = load_settings_text(tmp_path, text).providers["corp"].network
    assert net.proxy == proxy
    if proxy != "none":
        assert Proxy.parse(proxy).port > 0  # the upstream client reads it the same way


def test_config_show_and_run_report_a_bad_provider_proxy(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "setting.ini").write_text(
        "[provider.corp]\nkind = openai-compatible\nbase_url = http://x/v1\n"
        "proxy = htp://proxy.corp:3128\n"
    )
    env = {**os.environ, "GATEWAY_CONFIG_DIR": str(cfg), "GATEWAY_DATA_DIR": str(tmp_path / "d")}
    entry = "import sys; from tokgateway.cli import main; sys.exit(main())"
    for command in (["config", "show"], ["run", "--port", "0"]):
        # `run` with a config it accepted would serve until the timeout ends it
        done = subprocess.run(
            [sys.executable, "-c", entry, *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "configuration error" in done.stderr
        assert (
            "[provider.corp] proxy: 'htp://proxy.corp:3128' unsupported scheme htp://"
            in done.stderr
        )
