"""`gateway hooks` on a stopped all-in-one gateway: the CLI goes through the
admin client's in-process admin app on the data file, hooks routes included."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.support.hook_receiver import HookReceiver
from tokgateway.admin_client import LocalAdmin, connect
from tokgateway.cli import main
from tokgateway.common.settings import load_settings
from tokgateway.common.webhooks import new_secret

SECRET = new_secret()


@pytest.fixture
def stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No gateway runs for this data dir, and no mesh is configured."""
    for var in (
        "GATEWAY_URL",
        "GATEWAY_ADMIN_KEY",
        "GATEWAY_AUTH_URL",
        "GATEWAY_LEDGER_URL",
        "GATEWAY_REGISTRY_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return orjson.loads(capsys.readouterr().out)


def test_hooks_cli_on_the_stopped_gateways_file(
    stopped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert isinstance(connect(load_settings()), LocalAdmin)
    receiver = HookReceiver(SECRET)
    with receiver.serve():
        added = _json(
            capsys,
            "hooks", "add", "sink", "--events", "key.*", "--url", receiver.url,
            "--secret", SECRET,
        )  # fmt: skip
        assert isinstance(added, dict)
        assert added["name"] == "sink" and added["source"] == "api"
        listed = _json(capsys, "hooks", "list")
        assert isinstance(listed, list) and [h["name"] for h in listed] == ["sink"]
        tested = _json(capsys, "hooks", "test", "sink")
        assert isinstance(tested, dict) and tested["ok"] is True
        (event,) = receiver.events("hook.test")  # signed with the hook's secret
        assert receiver.bad_signatures == 0 and event["type"] == "hook.test"
    assert _json(capsys, "hooks", "log") == []  # a test delivery is not logged
    assert main(["hooks", "remove", "sink"]) == 0
    assert main(["hooks", "remove", "sink"]) == 1
    assert "404: No hook named 'sink'." in capsys.readouterr().err
    assert _json(capsys, "hooks", "list") == []
    assert (stopped / "gateway.db").is_file()
