"""Provisioning hooks on the all-in-one gateway run as a process with two
workers: signed webhooks (verified with the standardwebhooks library) through
a receiver that fails for a while, a script hook, the CLI, and a restart."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.hook_receiver import HookReceiver
from tests.support.mock_upstream import MockUpstream
from tokgateway.common.webhooks import new_secret

pytestmark = pytest.mark.e2e
SECRET = new_secret()


def hooks_config(url: str) -> str:
    return f"""
[hooks]
api_scripts = true
; keeps retrying (~1 min) while the receiver is down
max_attempts = 300
backoff_s = 0.05
backoff_max_s = 0.3
expiry_sweep_s = 0.3

[hook.sink]
kind = webhook
events = key.*
url = {url}
secret_env = HOOK_SECRET
"""


def test_key_events_reach_a_flaky_webhook_and_a_script_once_each(
    mock: tuple[MockUpstream, str], tmp_path: Path
) -> None:
    receiver = HookReceiver(SECRET)
    receiver.fail_next = 4
    with receiver.serve():
        gw = GatewayProcess(
            tmp_path / "gw",
            gateway_config(mock[1], hooks_config(receiver.url)),
            env={"GATEWAY_WORKERS": "2", "HOOK_SECRET": SECRET},
        ).start()
        try:
            out = tmp_path / "script.jsonl"
            script = tmp_path / "sink.py"
            script.write_text(
                "import os, sys\n"
                f"with open({str(out)!r}, 'a') as f:\n"
                "    f.write(os.environ['GATEWAY_EVENT_TYPE'] + ' ' + sys.stdin.read() + '\\n')\n"
            )
            gw.cli(
                "hooks", "add", "audit", "--events", "key.revoked",
                "--command", f"{sys.executable} {script}",
            )  # fmt: skip
            listed = {h["name"]: h for h in orjson.loads(gw.cli("hooks", "list", "--json").stdout)}
            assert listed["sink"]["source"] == "config" and listed["audit"]["source"] == "api"

            keys = [gw.create_key(f"k{i}") for i in range(3)]
            gw.cli("keys", "revoke", keys[0]["id"])
            short = gw.create_key("short", "--expires-days", "0.00001")  # ~1 s
            receiver.wait_for(lambda: len(receiver.events()) >= 6)
            created = receiver.events("key.created")
            assert sorted(e["data"]["id"] for e in created) == sorted(
                k["id"] for k in [*keys, short]
            )
            (revoked,) = receiver.events("key.revoked")
            assert revoked["data"]["id"] == keys[0]["id"]
            (expired,) = receiver.events("key.expired")
            assert expired["data"]["id"] == short["id"]
            assert receiver.refused == 4 and receiver.bad_signatures == 0
            sent = orjson.dumps(receiver.accepted).decode()
            assert not any(k["key"] in sent for k in [*keys, short])  # ids and hints only

            deadline = time.monotonic() + 10
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            kind, _, body = out.read_text().strip().partition(" ")
            assert kind == "key.revoked" and orjson.loads(body)["id"] == revoked["id"]

            log = orjson.loads(gw.cli("hooks", "log", "--json").stdout)
            assert {r["state"] for r in log} == {"delivered"}
            assert len(log) == 7  # six webhook deliveries and one script run
            assert orjson.loads(gw.cli("hooks", "log", "--failed", "--json").stdout) == []
            assert gw.cli("hooks", "test", "sink").returncode == 0

            # replay: the same event id again (receivers dedupe on it)
            gw.cli("hooks", "replay", revoked["id"])
            receiver.wait_for(lambda: receiver.ids().count(revoked["id"]) == 2)
            gw.cli("hooks", "remove", "audit")

            # receiver down across a restart: the event waits in the database
            receiver.fail_until = time.monotonic() + 3600
            late = gw.create_key("late")
            deadline = time.monotonic() + 10
            while not orjson.loads(gw.cli("hooks", "log", "--failed", "--json").stdout):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            gw.stop()
            listed = orjson.loads(gw.cli("hooks", "list", "--json").stdout)  # stopped: the file
            assert [h["name"] for h in listed] == ["sink"]
            receiver.fail_until = 0.0
            gw.start()
            receiver.wait_for(
                lambda: any(e["data"].get("id") == late["id"] for e in receiver.events())
            )
        finally:
            gw.stop()
    assert receiver.bad_signatures == 0
