from __future__ import annotations

from pathlib import Path

import pytest

from tokgateway.common.settings import ConfigError, default_state_dir, load_settings, mask_url


def write(root: Path, base: str = "", overlay: str = "", env: str = "dev") -> Path:
    (root / env).mkdir(parents=True, exist_ok=True)
    (root / "setting.ini").write_text(base)
    (root / env / "gateway.ini").write_text(overlay)
    return root


def test_layers_and_their_names(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[gateway]\nport = 9000\nhost = 0.0.0.0\n", "[gateway]\nport = 9001\n")
    s = load_settings(cfg, {"GATEWAY_HOST": "127.0.0.2"})
    assert s.port == 9001 and s.values["gateway.port"].layer == "dev/gateway.ini"
    assert s.host == "127.0.0.2" and s.values["gateway.host"].layer == "environment"
    assert s.values["gateway.admin_email"].layer == "default"


def test_env_picks_overlay(tmp_path: Path) -> None:
    write(tmp_path, "", "[gateway]\nport = 7000\n", env="live")
    assert load_settings(tmp_path, {"GATEWAY_ENV": "live"}).port == 7000
    assert load_settings(tmp_path, {}).port == 8081


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    write(tmp_path, "[gateway]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"setting\.ini: \[gateway\] prot: unknown key"):
        load_settings(tmp_path, {})


def test_bad_value_names_file_and_key(tmp_path: Path) -> None:
    write(tmp_path, "", "[gateway]\nport = eighty\n")
    with pytest.raises(
        ConfigError, match=r"dev/gateway\.ini: \[gateway\] port: expected an integer"
    ):
        load_settings(tmp_path, {})


def test_bad_env_value_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment GATEWAY_PORT"):
        load_settings(write(tmp_path), {"GATEWAY_PORT": "x"})


def test_unparseable_file(tmp_path: Path) -> None:
    (tmp_path / "setting.ini").write_text("no section here\n")
    with pytest.raises(ConfigError, match=r"setting\.ini: cannot parse"):
        load_settings(tmp_path, {})


def test_providers_from_conventional_variables(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path),
        {
            "OPENAI_API_KEY": "sk-a",
            "ANTHROPIC_API_KEY": "sk-b",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:1/",
        },
    )
    assert set(s.providers) == {"openai", "anthropic", "echo"}
    assert s.providers["anthropic"].base_url == "http://127.0.0.1:1"
    patterns = {r.pattern: r.targets[0].provider for r in s.routes}
    assert patterns["gpt-*"] == "openai" and patterns["claude-*"] == "anthropic"
    assert patterns["text-embedding-*"] == "openai"
    assert s.get("gateway.primary_provider") == ""


def test_echo_answers_only_its_own_name(tmp_path: Path) -> None:
    """With no provider configured, echo is no catch-all: a mistyped model is a
    404 instead of an echo billed under the name asked for."""
    s = load_settings(write(tmp_path), {})
    assert s.get("gateway.primary_provider") == ""
    assert [(r.pattern, r.targets[0].provider) for r in s.routes] == [("echo", "echo")]


def test_echo_routes_no_typo() -> None:
    from tokgateway.common.errors import NotFound
    from tokgateway.common.pricing import PriceTable
    from tokgateway.common.routing import RouteTable

    s = load_settings("/nonexistent", {})
    table = RouteTable(
        rules=s.routes,
        aliases={},
        providers=s.providers,
        primary=None,
        prices=PriceTable.default(),
    )
    assert table.resolve("echo").deployments[0].provider.kind == "echo"
    with pytest.raises(NotFound):
        table.resolve("gpt-4o-typo")


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_port_outside_range_is_a_config_error(tmp_path: Path, port: str) -> None:
    with pytest.raises(ConfigError, match=r"GATEWAY_PORT.*1 to 65535"):
        load_settings(write(tmp_path), {"GATEWAY_PORT": port})
    with pytest.raises(ConfigError, match=r"setting\.ini.*port"):
        load_settings(write(tmp_path, f"[gateway]\nport = {port}\n"), {})


def test_unset_api_key_env_is_a_warning(tmp_path: Path) -> None:
    base = "[provider.openai]\nkind = openai\napi_key_env = NOT_SET_ANYWHERE\n"
    s = load_settings(write(tmp_path, base), {})
    assert s.providers["openai"].missing_key == "NOT_SET_ANYWHERE"
    assert any("NOT_SET_ANYWHERE" in w for w in s.warnings())
    s = load_settings(write(tmp_path, base), {"NOT_SET_ANYWHERE": "sk-1"})
    assert s.providers["openai"].missing_key == "" and s.warnings() == []


def test_base_url_userinfo_masked(tmp_path: Path) -> None:
    base = (
        "[provider.local]\nkind = openai-compatible\n"
        "base_url = https://bob:hunter2@llm.example.com:8443/v1\n"
    )
    s = load_settings(write(tmp_path, base), {})
    shown = {k: v for k, v, _ in s.rows()}["provider.local.base_url"]
    assert shown == "https://****@llm.example.com:8443/v1"
    assert "hunter2" not in repr(s.providers["local"])
    assert mask_url("http://h/v1") == "http://h/v1"


def test_state_dir_follows_xdg() -> None:
    assert default_state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/tokgateway")
    assert default_state_dir({"HOME": "/home/u"}) == Path("/home/u/.local/state/tokgateway")


def test_routes_in_file_order_with_fallback_and_upstream_model(tmp_path: Path) -> None:
    base = (
        "[provider.local]\nkind = openai-compatible\nbase_url = http://127.0.0.1:1/v1\n"
        "[routes]\nllama* = local\nsmart = local:qwen2.5, echo\n"
        "[aliases]\nfast = smart\n"
    )
    s = load_settings(write(tmp_path, base), {"PRIMARY_PROVIDER": "local"})
    assert [r.pattern for r in s.routes][:2] == ["llama*", "smart"]
    smart = s.routes[1]
    assert [(t.provider, t.upstream_model) for t in smart.targets] == [
        ("local", "qwen2.5"),
        ("echo", None),
    ]
    assert s.aliases == {"fast": "smart"}
    assert s.values["gateway.primary_provider"].layer == "environment"


def test_route_to_unknown_provider_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        load_settings(write(tmp_path, "[routes]\nx = nope\n"), {})


def test_provider_key_from_env_var_and_masked(tmp_path: Path) -> None:
    base = "[provider.oa]\nkind = openai\napi_key_env = MY_KEY\n"
    s = load_settings(write(tmp_path, base), {"MY_KEY": "sk-secret-value-123456"})
    assert s.providers["oa"].api_key == "sk-secret-value-123456"
    shown = {k: v for k, v, _ in s.rows()}
    assert "sk-secret-value-123456" not in str(s.rows())
    assert shown["provider.oa.api_key"].endswith("3456")
    assert "sk-secret" not in repr(s.providers["oa"])


def test_admin_key_masked(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path), {"GATEWAY_ADMIN_KEY": "tga-very-secret-admin"})
    shown = {k: v for k, v, _ in s.rows()}
    assert "very-secret" not in shown["gateway.admin_key"]


def test_bad_provider_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[provider.x\] kind: expected one of"):
        load_settings(write(tmp_path, "[provider.x]\nkind = magic\n"), {})


def test_price_override(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[prices]\nmine = 1.5, 3\n"), {})
    assert s.prices["mine"].input == 1.5 and s.prices["mine"].cached is None
    with pytest.raises(ConfigError, match="mine"):
        load_settings(write(tmp_path, "[prices]\nmine = cheap\n"), {})
