from __future__ import annotations

from pathlib import Path

from tokgateway.common.settings import load_settings
from tokgateway.registry.service import ClearBox, build_table, config_definitions


def test_provider_settings_survive_the_registry_round_trip(tmp_path: Path) -> None:
    (tmp_path / "setting.ini").write_text(
        "[provider.az]\nkind = azure\nbase_url = https://x.openai.azure.com\n"
        "api_key = k-123\napi_version = 2025-01-01-preview\ntimeout = 30\n"
        "[provider.ant]\nkind = anthropic\nanthropic_version = 2024-01-01\n"
        "[routes]\ngpt-4o = az\n"
    )
    settings = load_settings(tmp_path, {})
    box = ClearBox()
    table = build_table(config_definitions(settings, box), None, box)
    az = table.providers["az"]
    assert (az.kind, az.api_version, az.api_key, az.timeout) == (
        "azure",
        "2025-01-01-preview",
        "k-123",
        30.0,
    )
    assert table.providers["ant"].anthropic_version == "2024-01-01"
    assert table.resolve("gpt-4o").deployments[0].provider.name == "az"
