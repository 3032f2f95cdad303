"""Users, teams and key limits on the SQLite stores: migration of older
databases, verify with the three scopes, lifecycle events, rotation, and the
admin API's access rules (admin, viewer, member)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from tokgateway.auth.admin_api import AuthAdminAPI
from tokgateway.auth.service import AuthService
from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import Limits, Scope, UsageEvent
from tokgateway.common.errors import BadRequest, NotFound, Unauthenticated
from tokgateway.common.http import AdminGuard
from tokgateway.common.keys import hash_key
from tokgateway.common.periods import period_start
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.ledger.filters import UsageFilter
from tokgateway.ledger.service import LedgerAdminAPI, LedgerService
from tokgateway.router.keycache import KeyCache

OLD_AUTH_SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,
    is_admin INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL, user_id TEXT REFERENCES users(id), models TEXT NOT NULL DEFAULT '[]',
    rpm INTEGER, is_admin INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    expires_at REAL, revoked_at REAL);
INSERT INTO users VALUES ('usr_old', 'admin@localhost', 1, 1.0);
INSERT INTO users VALUES ('usr_dev', 'dev@x.io', 0, 1.0);
INSERT INTO api_keys (id, name, key_hash, hint, user_id, rpm, created_at)
    VALUES ('key_old', 'old', '{hash}', 'tgk-…', 'usr_dev', 7, 1.0);
"""


class Recorder:
    def __init__(self, bus: InProcessBus) -> None:
        self.events: list[dict[str, Any]] = []
        bus.subscribe("auth.v1.", lambda s, p: self.events.append(orjson.loads(p)))

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[AuthService]:
    svc = AuthService(SQLiteDB(tmp_path / "g.db"), InProcessBus(), admin_email="admin@localhost")
    await svc.start(None)
    try:
        yield svc
    finally:
        await svc.close()


async def test_older_database_gains_columns_and_keeps_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_AUTH_SCHEMA.format(hash=hash_key("tgk-old-secret")))
    conn.close()
    for _ in range(2):  # idempotent
        svc = AuthService(SQLiteDB(path), InProcessBus(), admin_email="admin@localhost")
        await svc.prepare()
        await svc.close()
    svc = AuthService(SQLiteDB(path), InProcessBus(), admin_email="admin@localhost")
    await svc.prepare()
    info = await svc.verify(hash_key("tgk-old-secret"))
    assert info is not None and info.user_id == "usr_dev" and info.role == "member"
    assert info.scopes == (Scope("key", "key_old", Limits(rpm=7)),) and info.rpm == 7
    users = {u.id: u for u in await svc.list_users()}
    assert users["usr_old"].role == "admin" and users["usr_dev"].status == "active"
    team = await svc.create_team(name="t")
    await svc.add_member(team.id, "usr_dev")
    assert (await svc.get_user("usr_dev")).teams == (team.id,)
    await svc.close()


async def test_verify_fills_key_user_team_scopes_in_order(auth: AuthService) -> None:
    user = await auth.create_user(email="Dev@X.io", limits=Limits(tpm=1000))
    team = await auth.create_team(name="ml", limits=Limits(budget_usd=5, budget_period="week"))
    await auth.add_member(team.id, user.id)
    rec, secret = await auth.create_key(
        name="k", user_id=user.id, team_id=team.id, limits=Limits(rpm=10, budget_usd=1.5)
    )
    info = await auth.verify(hash_key(secret))
    assert info is not None
    assert (info.user_id, info.team_id, info.role, info.disabled) == (
        user.id,
        team.id,
        "member",
        False,
    )
    assert [(s.kind, s.id) for s in info.scopes] == [
        ("key", rec.id),
        ("user", user.id),
        ("team", team.id),
    ]
    assert info.scopes[0].limits == Limits(rpm=10, budget_usd=1.5, budget_period="month")
    assert info.scopes[2].limits.budget_period == "week"
    assert type(info).from_dict(orjson.loads(orjson.dumps(info.to_dict()))) == info
    # A key without limits of its own, a user without limits: only the team scope.
    bare = await auth.create_user(email="bare@x.io", role="viewer")
    await auth.add_member(team.id, bare.id)
    _, bare_secret = await auth.create_key(name="b", user_id=bare.id, team_id=team.id)
    bare_info = await auth.verify(hash_key(bare_secret))
    assert bare_info is not None and bare_info.role == "viewer"
    assert [s.kind for s in bare_info.scopes] == ["team"]


async def test_key_rules_and_events(auth: AuthService) -> None:
    seen = Recorder(auth.bus)  # type: ignore[arg-type]
    user = await auth.create_user(email="a@x.io")
    team = await auth.create_team(name="t")
    with pytest.raises(BadRequest, match="not a member"):
        await auth.create_key(name="k", user_id=user.id, team_id=team.id)
    with pytest.raises(BadRequest, match="No user"):
        await auth.create_key(name="k", user_id="usr_missing")
    with pytest.raises(BadRequest) as taken:
        await auth.create_user(email="a@x.io")
    assert taken.value.code == "email_taken"
    await auth.add_member(team.id, user.id)
    await auth.add_member(team.id, user.id)  # twice: one event
    rec, secret = await auth.create_key(name="k", user_id=user.id, team_id=team.id)
    updated = await auth.update_key(rec.id, {"tpm": 99, "models": ("gpt-*",)})
    assert updated.limits.tpm == 99 and updated.models == ("gpt-*",)
    rotated, new_secret = await auth.rotate_key(rec.id)
    assert rotated.id == rec.id and rotated.name == "k" and rotated.limits.tpm == 99
    assert await auth.verify(hash_key(secret)) is None
    assert (await auth.verify(hash_key(new_secret))) is not None
    await auth.remove_member(team.id, user.id)
    assert (await auth.get_key(rec.id)).team_id is None  # the key left with its user
    await auth.update_user(user.id, {"status": "disabled"})
    assert (await auth.verify(hash_key(new_secret))).disabled  # type: ignore[union-attr]
    await auth.delete_user(user.id)
    assert (await auth.verify(hash_key(new_secret))).revoked  # type: ignore[union-attr]
    await auth.delete_team(team.id)
    assert seen.types() == [
        "user.created",
        "team.created",
        "team.member_added",
        "key.created",
        "key.updated",
        "key.rotated",
        "key.updated",
        "team.member_removed",
        "user.disabled",
        "key.revoked",
        "user.deleted",
        "team.deleted",
    ]
    raw = orjson.dumps(seen.events).decode()
    assert secret not in raw and new_secret not in raw and hash_key(new_secret) not in raw
    rotated_event = seen.events[5]["data"]
    assert rotated_event["id"] == rec.id and rotated_event["hint"] == rotated.hint
    assert seen.events[7]["data"] == {"team_id": team.id, "user_id": user.id}
    admin_id = next(u.id for u in await auth.list_users() if u.is_admin)
    with pytest.raises(BadRequest):
        await auth.disable_user(admin_id)
    with pytest.raises(NotFound):
        await auth.rotate_key("key_nope")


async def test_disabled_user_refused_by_key_cache_and_evicted(auth: AuthService) -> None:
    user = await auth.create_user(email="c@x.io")
    _, secret = await auth.create_key(name="k", user_id=user.id)
    cache = KeyCache(auth, ttl=300)
    auth.bus.subscribe("auth.v1.", cache.on_auth_event)  # type: ignore[attr-defined]
    await cache.authenticate(secret)  # cached now
    await auth.disable_user(user.id)
    with pytest.raises(Unauthenticated) as exc:
        await cache.authenticate(secret)
    assert exc.value.code == "user_disabled"
    await auth.update_user(user.id, {"status": "active"})
    assert (await cache.authenticate(secret)).user_id == user.id


# -- the ledger ---------------------------------------------------------------------------
def _usage(i: int, ts: float, key: str, user: str | None, team: str | None, cost: float) -> Any:
    return UsageEvent(
        request_id=f"r{i}",
        ts=ts,
        key_id=key,
        user_id=user,
        team_id=team,
        route="/v1/chat/completions",
        model="m",
        cost_usd=cost,
    )


async def test_ledger_team_column_groups_and_spend(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    conn = sqlite3.connect(path)  # a ledger from before teams
    conn.execute(
        "CREATE TABLE usage_events (request_id TEXT PRIMARY KEY, ts REAL NOT NULL, key_id TEXT,"
        " user_id TEXT, route TEXT NOT NULL, model TEXT NOT NULL, provider TEXT,"
        " upstream_model TEXT, stream INTEGER NOT NULL DEFAULT 0,"
        " prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,"
        " cached_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,"
        " usage_estimated INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,"
        " status INTEGER NOT NULL, error_class TEXT, error TEXT, latency_ms REAL,"
        " upstream_ms REAL, ttft_ms REAL, overhead_ms REAL, attempts INTEGER NOT NULL DEFAULT 0)"
    )
    conn.execute(
        "INSERT INTO usage_events (request_id, ts, key_id, user_id, route, model, cost_usd,"
        " status) VALUES ('old', ?, 'k1', 'u1', '/v1/x', 'm', 0.25, 200)",
        (time.time(),),
    )
    conn.commit()
    conn.close()
    ledger = LedgerService(SQLiteDB(path), None)
    await ledger.start()
    await ledger.store.migrate()  # again: idempotent
    now = time.time()
    month = period_start("month", now)
    before_month = month - 3600
    await ledger.store.insert_batch(
        [
            _usage(1, now, "k1", "u1", "t1", 1.0),
            _usage(2, now, "k2", "u2", "t1", 2.0),
            _usage(3, now, "k3", "u2", None, 4.0),
            _usage(4, before_month, "k1", "u1", "t1", 8.0),
        ]
    )
    by_team = {r["group"]: r["cost_usd"] for r in await ledger.usage(group_by="team")}
    assert by_team == {"": 4.25, "t1": 11.0}
    by_user = {r["group"]: r["requests"] for r in await ledger.usage(group_by="user")}
    assert by_user == {"u1": 3, "u2": 2}
    only_u2 = await ledger.usage(UsageFilter(user_id="u2"), group_by="key")
    assert {r["group"] for r in only_u2} == {"k2", "k3"}
    assert await ledger.spend_since("team", "t1", month) == 3.0
    assert await ledger.spend_since("user", "u1", 0.0) == 9.25
    assert await ledger.spend_since("key", "nobody", 0.0) == 0.0
    spend = await ledger.spend_by_scope({"month": month, "total": 0.0})
    assert spend[("key", "k1", "month")] == 1.25
    assert spend[("key", "k1", "total")] == 9.25
    assert spend[("team", "t1", "total")] == 11.0
    assert spend[("user", "u2", "month")] == 6.0
    assert ("team", "None", "month") not in spend and len(
        spend
    ) == 12  # 3 keys, 2 users, 1 team, 2 periods
    with pytest.raises(BadRequest):
        await ledger.spend_by_scope({"fortnight": 0.0})
    with pytest.raises(BadRequest):
        await ledger.spend_since("org", "x", 0.0)
    await ledger.close()


# -- the admin API -----------------------------------------------------------------------
async def test_admin_api_access_by_role(tmp_path: Path) -> None:
    db = tmp_path / "api.db"
    auth = AuthService(SQLiteDB(db), InProcessBus(), admin_email="admin@localhost")
    ledger = LedgerService(SQLiteDB(db), None)
    await ledger.start()
    admin_key = await auth.start(None)
    assert admin_key is not None
    guard = AdminGuard(auth, "tgc-local")
    app = Starlette(
        routes=[
            *AuthAdminAPI(auth, guard, spend=ledger).routes(),
            *LedgerAdminAPI(ledger, guard).routes(),
        ]
    )
    transport = httpx.ASGITransport(app=app)

    def client(token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=transport,
            base_url="http://t",
            headers={"authorization": f"Bearer {token}"},
        )

    async with client(admin_key) as admin:
        bad = await admin.post("/admin/users", json={"email": "x@y.z", "role": "boss"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "role"
        assert bad.json()["error"]["type"] == "invalid_request_error"
        bad = await admin.post("/admin/keys", json={"name": "k", "tpm": -1})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "tpm"
        bad = await admin.patch("/admin/teams/team_x", json={"budget_period": "year"})
        assert bad.status_code == 400
        alice = (await admin.post("/admin/users", json={"email": "alice@x.io"})).json()
        bob = (await admin.post("/admin/users", json={"email": "bob@x.io"})).json()
        viewer = (
            await admin.post("/admin/users", json={"email": "v@x.io", "role": "viewer"})
        ).json()
        keys = {}
        for who in (alice, bob, viewer):
            made = await admin.post(
                "/admin/keys",
                json={"name": who["email"], "user_id": who["id"], "budget_usd": 10},
            )
            assert made.status_code == 201
            keys[who["email"]] = made.json()
        alice_key = keys["alice@x.io"]
        await ledger.store.insert_batch(
            [
                _usage(1, time.time(), alice_key["id"], alice["id"], None, 2.5),
                _usage(2, time.time(), keys["bob@x.io"]["id"], bob["id"], None, 1.0),
            ]
        )
        me = (await admin.get("/admin/whoami")).json()
        assert (me["access"], me["can_write"], me["sees_all"]) == ("admin", True, True)
        shown = (await admin.get(f"/admin/keys/{alice_key['id']}")).json()
        assert shown["spend_usd"] == 2.5 and shown["remaining_usd"] == 7.5
        assert "key" not in shown and "key_hash" not in shown
    async with client(alice_key["key"]) as member:
        me = (await member.get("/admin/whoami")).json()
        assert (me["access"], me["can_write"], me["sees_all"]) == ("member", False, False)
        assert (me["key_id"], me["user_id"]) == (alice_key["id"], alice["id"])
        mine = (await member.get("/admin/keys")).json()["data"]
        assert [k["id"] for k in mine] == [alice_key["id"]]
        usage = (await member.get("/admin/usage", params={"group_by": "user"})).json()["data"]
        assert [(r["group"], r["cost_usd"]) for r in usage] == [(alice["id"], 2.5)]
        other = await member.get(f"/admin/keys/{keys['bob@x.io']['id']}")
        assert other.status_code == 404
        assert (await member.get("/admin/users")).status_code == 403
        assert (await member.post("/admin/teams", json={"name": "n"})).status_code == 403
    async with client(keys["v@x.io"]["key"]) as view:
        me = (await view.get("/admin/whoami")).json()
        assert (me["access"], me["can_write"], me["sees_all"]) == ("viewer", False, True)
        assert len((await view.get("/admin/users")).json()["data"]) == 4
        assert len((await view.get("/admin/usage")).json()["data"]) == 1
        assert (await view.get("/admin/usage")).json()["data"][0]["requests"] == 2
        denied = await view.patch(f"/admin/users/{bob['id']}", json={"rpm": 1})
        assert denied.status_code == 403
        assert (await view.post(f"/admin/keys/{alice_key['id']}/rotate")).status_code == 403
    async with client("tgc-local") as local:
        me = (await local.get("/admin/whoami")).json()
        assert (me["access"], me["key_id"]) == ("admin", None)
        rotated = (await local.post(f"/admin/keys/{alice_key['id']}/rotate")).json()
        assert rotated["id"] == alice_key["id"] and rotated["key"] != alice_key["key"]
        gone = await local.patch(f"/admin/users/{alice['id']}", json={"status": "disabled"})
        assert gone.json()["status"] == "disabled"
    async with client(alice_key["key"]) as old:
        assert (await old.get("/admin/keys")).status_code == 401
        assert (await old.get("/admin/whoami")).status_code == 401
    async with client(rotated["key"]) as disabled:
        refused = await disabled.get("/admin/keys")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "user_disabled"
    await ledger.close()
    await auth.close()
