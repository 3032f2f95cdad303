"""Hook delivery in the mesh (inside the auth service): every key event
reaches a Standard Webhooks receiver once by id across a receiver answering
500, the auth service killed mid-delivery, and NATS stopped and restarted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.cluster import ADMIN_KEY, CONFIG, Mesh
from tests.support.hook_receiver import HookReceiver
from tokgateway.common.webhooks import new_secret

pytestmark = pytest.mark.integration
SECRET = new_secret()


def created_ids(receiver: HookReceiver) -> set[str]:
    return {e["data"]["id"] for e in receiver.events("key.created")}


def test_key_events_survive_500s_a_killed_deliverer_and_a_nats_restart(tmp_path: Path) -> None:
    receiver = HookReceiver(SECRET)
    with receiver.serve():
        config = (
            CONFIG
            + f"""
[hooks]
backoff_s = 0.1
backoff_max_s = 0.5
timeout_s = 2

[hook.sink]
kind = webhook
events = key.*
url = {receiver.url}
secret_env = HOOK_SECRET
"""
        )
        mesh = Mesh(tmp_path / "mesh", routers=1, config=config)
        mesh.env["HOOK_SECRET"] = SECRET
        try:
            mesh.start()
            expected: set[str] = set()

            # 1. the receiver answers 500 to the first deliveries
            receiver.fail_next = 4
            expected |= {mesh.create_key(f"a{i}")["id"] for i in range(3)}
            receiver.wait_for(lambda: created_ids(receiver) >= expected, 30)
            assert receiver.refused == 4

            # 2. the deliverer (auth) is killed while a delivery is in flight
            receiver.hold_s = 1.5
            before = receiver.requests
            batch = {mesh.create_key(f"b{i}")["id"] for i in range(3)}
            expected |= batch
            receiver.wait_for(lambda: receiver.requests > before, 20)
            mesh.auth.kill()
            receiver.hold_s = 0.0
            mesh.auth.start()
            mesh.auth.wait_ready()
            receiver.wait_for(lambda: created_ids(receiver) >= expected, 40)

            # 3. NATS goes away: events wait in the outbox, then flow again
            mesh.nats.stop()
            batch = {mesh.create_key(f"c{i}")["id"] for i in range(3)}
            expected |= batch
            time.sleep(1.0)
            assert not created_ids(receiver) & batch
            mesh.nats.start()
            receiver.wait_for(lambda: created_ids(receiver) >= expected, 40)

            assert created_ids(receiver) == expected  # nothing unexpected, nothing missing
            assert receiver.bad_signatures == 0
            log = mesh.admin("GET", mesh.auth.url + "/admin/hooks/log?limit=1000")["data"]
            assert {r["event_id"] for r in log} == {e["id"] for e in receiver.events()}
            deadline = time.monotonic() + 10
            while any(r["state"] != "delivered" for r in log):
                assert time.monotonic() < deadline, log
                time.sleep(0.2)
                log = mesh.admin("GET", mesh.auth.url + "/admin/hooks/log?limit=1000")["data"]
            assert ADMIN_KEY not in str(receiver.accepted)
        except BaseException:
            print(mesh.logs())
            raise
        finally:
            mesh.close()
