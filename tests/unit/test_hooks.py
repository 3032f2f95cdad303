"""Provisioning hooks: signing (checked with the published standardwebhooks
library), delivery with retries, dead letters, scripts, and the outbox."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.hook_receiver import HookReceiver
from tokgateway.auth.hook_store import SQLiteHookStore
from tokgateway.auth.hooks import DeliveryPolicy, Hooks, matches
from tokgateway.auth.outbox import SQLiteOutbox
from tokgateway.auth.service import AuthService
from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import AuthEvent
from tokgateway.common.errors import BadRequest
from tokgateway.common.settings import HookConfig
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.common.webhooks import new_secret, sign, signed_headers, verify

SECRET = new_secret()
FAST = DeliveryPolicy(max_attempts=4, backoff_s=0.02, backoff_max_s=0.1, timeout_s=2.0)


def webhook(url: str, events: tuple[str, ...] = ("key.*",), name: str = "sink") -> HookConfig:
    return HookConfig(name=name, kind="webhook", events=events, url=url, secret=SECRET)


async def drain(hooks: Hooks, until: float = 10.0) -> None:
    """Run delivery passes until nothing is pending any more."""
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        await hooks.deliver_due()
        pending = [r for r in await hooks.log(limit=1000) if r["state"] == "pending"]
        if not pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("deliveries still pending")


def test_signature_verifies_with_the_standardwebhooks_library() -> None:
    body = b'{"id":"evt_1","type":"key.created"}'
    ts = int(time.time())
    headers = signed_headers(SECRET, "evt_1", ts, body)
    assert Webhook(SECRET).verify(body, headers) == orjson.loads(body)
    assert Webhook(SECRET).sign("evt_1", _dt(ts), body.decode()) == sign(SECRET, "evt_1", ts, body)
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, body + b" ")
    assert not verify(new_secret(), headers, body)


def _dt(ts: int) -> object:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def test_event_globs() -> None:
    assert matches(("key.*",), "key.revoked")
    assert matches(("key.*", "user.created"), "user.created")
    assert not matches(("key.*", "user.created"), "user.deleted")
    assert matches(("*",), "team.member_added")


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    policy = DeliveryPolicy(backoff_s=1.0, backoff_max_s=30.0)
    for attempt, base in ((1, 1.0), (2, 2.0), (3, 4.0), (9, 30.0)):
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(base / 2 <= d <= base for d in delays)
        assert len(delays) > 1  # jittered
    assert policy.delay(1, retry_after=12.0) >= 12.0


@pytest.fixture
def hooks_db(tmp_path: Path) -> SQLiteDB:
    return SQLiteDB(tmp_path / "gateway.db")


async def test_retried_through_500s_and_delivered_once_per_id(hooks_db: SQLiteDB) -> None:
    receiver = HookReceiver(SECRET)
    receiver.fail_next = 5
    policy = DeliveryPolicy(max_attempts=10, backoff_s=0.02, backoff_max_s=0.1, timeout_s=2.0)
    with receiver.serve():
        hooks = Hooks(SQLiteHookStore(hooks_db), {"sink": webhook(receiver.url)}, policy)
        await hooks.migrate()
        events = [AuthEvent(type="key.created", data={"id": f"key_{i}"}) for i in range(4)]
        for event in events:
            assert await hooks.accept(event) == 1
            assert await hooks.accept(event) == 0  # redelivered from the bus: nothing new
        assert await hooks.accept(AuthEvent(type="user.created", data={})) == 0  # no match
        await drain(hooks)
        await hooks.close()
    assert receiver.refused == 5 and receiver.bad_signatures == 0
    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    pairs = zip(receiver.headers, receiver.accepted, strict=True)
    assert all(h["webhook-id"] == e["id"] for h, e in pairs)
    log = await hooks.log(limit=10)
    assert {r["state"] for r in log} == {"delivered"}
    assert max(r["attempts"] for r in log) > 1
    await hooks_db.close()


async def test_dead_letter_after_max_attempts_and_4xx_not_retried(hooks_db: SQLiteDB) -> None:
    receiver = HookReceiver(SECRET)
    receiver.fail_until = time.monotonic() + 3600
    with receiver.serve():
        store = SQLiteHookStore(hooks_db)
        bad = HookReceiver(new_secret())  # verifies with another secret: answers 401
        with bad.serve():
            hooks = Hooks(
                store,
                {
                    "down": webhook(receiver.url, name="down"),
                    "wrong": webhook(bad.url, name="wrong"),
                },
                FAST,
            )
            await hooks.migrate()
            event = AuthEvent(type="key.revoked", data={"id": "key_x"})
            assert await hooks.accept(event) == 2
            await drain(hooks)
    rows = {r["hook"]: r for r in await hooks.log(failed=True, limit=10)}
    assert rows["down"]["state"] == "dead" and rows["down"]["attempts"] == FAST.max_attempts
    assert rows["down"]["last_status"] == 500
    assert rows["wrong"]["state"] == "dead" and rows["wrong"]["attempts"] == 1
    assert "not retried" in rows["wrong"]["last_error"]
    # replay puts both back in the queue
    assert await hooks.replay(event.id) == 2
    assert {r["state"] for r in await hooks.log(event_id=event.id)} == {"pending"}
    await hooks.close()
    await hooks_db.close()


async def test_connection_refused_is_retried(hooks_db: SQLiteDB) -> None:
    from tests.support.mock_upstream import free_port

    hooks = Hooks(
        SQLiteHookStore(hooks_db),
        {"s": webhook(f"http://127.0.0.1:{free_port()}/x", name="s")},
        FAST,
    )
    await hooks.migrate()
    await hooks.accept(AuthEvent(type="key.created", data={}))
    await drain(hooks)
    (row,) = await hooks.log()
    assert row["state"] == "dead" and row["attempts"] == FAST.max_attempts
    assert "ConnectError" in row["last_error"]
    await hooks.close()
    await hooks_db.close()


async def test_scripts_get_the_event_on_stdin_and_their_type_in_env(
    hooks_db: SQLiteDB, tmp_path: Path
) -> None:
    out = tmp_path / "seen.jsonl"
    script = tmp_path / "sink.py"
    script.write_text(
        "import os, sys\n"
        f"out = open({str(out)!r}, 'a')\n"
        "out.write(os.environ['GATEWAY_EVENT_TYPE'] + ' ' + sys.stdin.read() + '\\n')\n"
    )
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nsys.stderr.write('no database')\nsys.exit(3)\n")
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    py = sys.executable
    configured = {
        "ok": HookConfig(name="ok", kind="script", events=("*",), command=f"{py} {script}"),
        "bad": HookConfig(name="bad", kind="script", events=("key.*",), command=f"{py} {failing}"),
        "slow": HookConfig(
            name="slow", kind="script", events=("key.*",), command=f"{py} {slow}", timeout_s=0.5
        ),
    }
    policy = DeliveryPolicy(max_attempts=2, backoff_s=0.01, backoff_max_s=0.02, timeout_s=5)
    hooks = Hooks(SQLiteHookStore(hooks_db), configured, policy)
    await hooks.migrate()
    event = AuthEvent(type="key.created", data={"id": "key_1", "hint": "tgk-abc…wxyz"})
    assert await hooks.accept(event) == 3
    await drain(hooks)
    kind, _, body = out.read_text().strip().partition(" ")
    assert kind == "key.created" and orjson.loads(body)["id"] == event.id
    rows = {r["hook"]: r for r in await hooks.log()}
    assert rows["ok"]["state"] == "delivered" and rows["ok"]["last_status"] == 0
    assert rows["bad"]["state"] == "dead" and rows["bad"]["last_status"] == 3
    assert "no database" in rows["bad"]["last_error"]
    assert rows["slow"]["state"] == "dead" and "timeout" in rows["slow"]["last_error"]
    await hooks.close()
    await hooks_db.close()


async def test_api_hooks_persist_with_a_sealed_secret(hooks_db: SQLiteDB) -> None:
    store = SQLiteHookStore(hooks_db)
    hooks = Hooks(store, {}, FAST, secret_key="k" * 32)
    await hooks.migrate()
    _, generated = await hooks.add(
        {"name": "crm", "kind": "webhook", "url": "http://127.0.0.1:9/x", "events": "user.*"}
    )
    assert generated is not None and generated.startswith("whsec_")
    (stored,) = await store.list_hooks()
    assert stored.stored_secret.startswith("sealed:") and generated not in stored.stored_secret
    again = Hooks(store, {}, FAST, secret_key="k" * 32)  # as after a restart
    assert (await again.sinks())["crm"].secret == generated
    assert [h["name"] for h in await again.listing()] == ["crm"]
    with pytest.raises(BadRequest, match="api_scripts"):
        await again.add({"name": "sh", "kind": "script", "command": "rm -rf /", "events": "*"})
    await again.remove("crm")
    assert await again.listing() == []
    await hooks.close()
    await again.close()
    await hooks_db.close()


async def test_outbox_keeps_every_event_and_other_processes_republish(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    bus_a, bus_b = InProcessBus(), InProcessBus()
    a = AuthService(SQLiteDB(path), bus_a, admin_email="admin@localhost")
    b = AuthService(SQLiteDB(path), bus_b, admin_email="admin@localhost")
    await a.start(None)
    await b.prepare()
    seen_a: list[str] = []
    seen_b: list[str] = []
    bus_a.subscribe("auth.v1.", lambda s, p: seen_a.append(AuthEvent.from_json(p).type))
    bus_b.subscribe("auth.v1.", lambda s, p: seen_b.append(AuthEvent.from_json(p).type))
    start = await b.outbox.last_seq()  # type: ignore[union-attr]
    rec, _ = await a.create_key(name="x")
    await a.revoke(rec.id)
    assert seen_a == ["key.created", "key.revoked"] and seen_b == []
    newest = await b.republish_foreign(start)
    assert seen_b == ["key.created", "key.revoked"]
    assert await a.republish_foreign(start) == newest
    assert seen_a == ["key.created", "key.revoked"]  # its own events are not repeated
    rows = await SQLiteOutbox(SQLiteDB(path)).since(0)
    assert [r.event.type for r in rows] == ["key.created", "key.revoked"]
    assert all("key" not in r.event.data or r.event.data["key"] is None for r in rows)
    await a.close()
    await b.close()


async def test_expired_keys_are_announced_once(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    bus = InProcessBus()
    seen: list[AuthEvent] = []
    bus.subscribe("auth.v1.", lambda s, p: seen.append(AuthEvent.from_json(p)))
    a = AuthService(SQLiteDB(path), bus, admin_email="admin@localhost")
    b = AuthService(SQLiteDB(path), InProcessBus(), admin_email="admin@localhost")
    await a.start(None)
    await b.prepare()
    rec, _ = await a.create_key(name="short", expires_days=1)
    await a.create_key(name="long", expires_days=30)
    later = time.time() + 2 * 86400
    assert await a.sweep_expired(later) == 1
    assert await b.sweep_expired(later) == 0  # another worker: already announced
    assert await a.sweep_expired(later) == 0
    (expired,) = [e for e in seen if e.type == "key.expired"]
    assert expired.data["id"] == rec.id and expired.actor == "system"
    await a.close()
    await b.close()
