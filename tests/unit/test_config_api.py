"""GET /admin/config: what `gateway config show` prints, for admin and viewer keys."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tokgateway.common.contracts import KeyInfo
from tokgateway.common.http import AdminGuard
from tokgateway.common.settings import load_settings
from tokgateway.config_api import config_routes

TOKEN = "tgc-config-test"


class NoKeys:
    async def verify(self, key_hash: str) -> KeyInfo | None:
        return None


def test_effective_config_with_layers_and_masked_secrets(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "setting.ini").write_text(
        "[provider.up]\nkind = openai-compatible\nbase_url = http://127.0.0.1:9/v1\n"
        "api_key = sk-very-secret-value-123\n"
    )
    settings = load_settings(cfg, {"GATEWAY_PORT": "9123", "GATEWAY_DATA_DIR": str(tmp_path)})
    client = TestClient(
        Starlette(routes=config_routes(lambda: settings, AdminGuard(NoKeys(), TOKEN)))
    )
    assert client.get("/admin/config").status_code == 401
    body = client.get("/admin/config", headers={"authorization": f"Bearer {TOKEN}"}).json()
    rows = {r["key"]: r for r in body["data"]}
    assert rows["gateway.port"] == {"key": "gateway.port", "value": "9123", "layer": "environment"}
    assert "sk-very-secret-value-123" not in str(body)
    assert rows["provider.up.api_key"]["value"] != ""
    assert body["files"] == [str(cfg / "setting.ini")]
