"""[hook.NAME] sections: parsed additively across layers, checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokgateway.common.settings import ConfigError, load_settings
from tokgateway.common.webhooks import new_secret

SECRET = new_secret()


def write(root: Path, base: str, overlay: str = "") -> Path:
    (root / "dev").mkdir(parents=True, exist_ok=True)
    (root / "setting.ini").write_text(base)
    (root / "dev" / "gateway.ini").write_text(overlay)
    return root


def test_hooks_from_two_layers(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "[hook.crm]\nkind = webhook\nevents = key.*, user.created\n"
        "url = https://crm.example/hooks\nsecret_env = CRM_SECRET\n",
        "[hook.audit]\nkind = script\nevents = *\ncommand = /usr/local/bin/audit --json\n"
        "timeout_s = 5\n[hook.crm]\nenabled = false\n",
    )
    s = load_settings(cfg, {"CRM_SECRET": SECRET})
    crm, audit = s.hooks["crm"], s.hooks["audit"]
    assert crm.events == ("key.*", "user.created") and crm.secret == SECRET
    assert not crm.enabled  # the overlay adds to the section, like [provider.NAME]
    assert audit.kind == "script" and audit.timeout_s == 5.0
    assert SECRET not in repr(crm)
    assert ("hook.audit", "script /usr/local/bin/audit --json [*]", "hook") in s.rows()


@pytest.mark.parametrize(
    ("section", "env", "message"),
    [
        ("kind = webhook\nevents = key.*\nurl = http://x\nsecret_env = S\n", {}, "S is not set"),
        (
            "kind = webhook\nevents = key.*\nurl = http://x\nsecret_env = S\n",
            {"S": "nope!"},
            "base64",
        ),
        ("kind = webhook\nevents = key.*\nurl = ftp://x\nsecret_env = S\n", {"S": SECRET}, "url"),
        ("kind = script\nevents = key.*\n", {}, "command"),
        ("kind = script\ncommand = x\n", {}, "events"),
        ("kind = carrier-pigeon\n", {}, "expected one of"),
        ("kind = script\nevents = *\ncommand = x\ncolour = red\n", {}, "unknown key"),
    ],
)
def test_bad_hooks_fail_at_start(
    tmp_path: Path, section: str, env: dict[str, str], message: str
) -> None:
    cfg = write(tmp_path, "[hook.h]\n" + section)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(cfg, env)
    assert "hook.h" in str(err.value)
