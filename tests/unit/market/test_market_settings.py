"""The marketplace switches, and the provider filter's new name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokgateway.common.settings import ConfigError, load_settings


def test_enable_provider_is_a_switch_and_the_filter_has_its_own_name(tmp_path: Path) -> None:
    s = load_settings(
        tmp_path,
        {
            "GATEWAY_ENABLE_PROVIDER": "true",
            "GATEWAY_PUBLISH_NAME": "Acme",
            "GATEWAY_MODEL_FAMILY": "llama3*",
        },
    )
    assert s.get("gateway.enable_provider") is True
    assert s.get("gateway.publish_name") == "Acme" and s.get("gateway.model_family") == "llama3*"
    assert s.get("gateway.provider_filter") == "" and s.warnings() == []
    only = load_settings(tmp_path, {"GATEWAY_PROVIDER_FILTER": "echo"})
    assert list(only.providers) == ["echo"]


def test_the_old_filter_names_still_work_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "setting.ini").write_text("[gateway]\nenable_providers = echo\n")
    s = load_settings(tmp_path, {})
    assert s.get("gateway.provider_filter") == "echo" and list(s.providers) == ["echo"]
    assert any("enable_providers is deprecated" in w for w in s.warnings())
    legacy = load_settings(tmp_path / "none", {"GATEWAY_ENABLE_PROVIDER": "echo"})
    assert legacy.get("gateway.provider_filter") == "echo"
    assert legacy.get("gateway.enable_provider") is False
    assert any("GATEWAY_PROVIDER_FILTER" in w for w in legacy.warnings())
    with pytest.raises(ConfigError, match="provider_filter: unknown provider nope"):
        load_settings(tmp_path / "none", {"GATEWAY_PROVIDER_FILTER": "nope"})
