"""Users, teams and key limits on the PostgreSQL stores of the mesh, on a
throwaway cluster: the migration from the first schema, verify in one join,
the same rules as SQLite, and the ledger's team column and spend queries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.cluster import Postgres
from tokgateway.auth.service import AuthService
from tokgateway.auth.store_pg import MIGRATIONS as AUTH_MIGRATIONS
from tokgateway.auth.store_pg import PgAuthStore
from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import Limits, UsageEvent
from tokgateway.common.errors import BadRequest
from tokgateway.common.keys import hash_key
from tokgateway.common.periods import period_start
from tokgateway.common.postgres import create_pool, migrate
from tokgateway.ledger.filters import UsageFilter
from tokgateway.ledger.service import LedgerService
from tokgateway.ledger.store_pg import MIGRATIONS as LEDGER_MIGRATIONS
from tokgateway.ledger.store_pg import PgLedgerStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def pool(postgres: Postgres) -> AsyncIterator[Any]:
    pool = await create_pool(postgres.url)
    for table in ("auth_team_members", "auth_keys", "auth_teams", "auth_users", "usage_events"):
        await pool.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    await pool.execute("DROP TABLE IF EXISTS schema_migrations")
    try:
        yield pool
    finally:
        await pool.close()


async def test_auth_migrates_from_first_schema_and_keeps_keys(pool: Any) -> None:
    assert await migrate(pool, "auth", AUTH_MIGRATIONS[:1]) == [1]
    await pool.execute(
        "INSERT INTO auth_users (id, email, is_admin, created_at) VALUES"
        " ('usr_a', 'admin@localhost', true, 1), ('usr_d', 'dev@x.io', false, 1)"
    )
    await pool.execute(
        "INSERT INTO auth_keys (id, name, key_hash, hint, user_id, rpm, created_at)"
        " VALUES ('key_old', 'old', $1, 'h', 'usr_d', 7, 1)",
        hash_key("tgk-old"),
    )
    store = PgAuthStore(pool)
    await store.migrate()
    await store.migrate()
    versions = await pool.fetch("SELECT version FROM schema_migrations WHERE component = 'auth'")
    assert sorted(r["version"] for r in versions) == [1, 2]
    info = await store.verify(hash_key("tgk-old"))
    assert info is not None and info.rpm == 7 and info.role == "member"
    users = {u.id: u for u in await store.list_users()}
    assert users["usr_a"].role == "admin" and users["usr_d"].status == "active"


async def test_users_teams_keys_on_postgres(pool: Any) -> None:
    bus = InProcessBus()
    seen: list[str] = []
    bus.subscribe("auth.v1.", lambda s, p: seen.append(s.removeprefix("auth.v1.")))
    auth = AuthService(PgAuthStore(pool), bus, admin_email="admin@localhost")
    await auth.start("tga-pg-admin")
    user = await auth.create_user(email="u@x.io", limits=Limits(tpm=500))
    with pytest.raises(BadRequest):
        await auth.create_user(email="u@x.io")
    team = await auth.create_team(name="ml", limits=Limits(budget_usd=3, budget_period="day"))
    with pytest.raises(BadRequest):
        await auth.create_team(name="ml")
    with pytest.raises(BadRequest, match="not a member"):
        await auth.create_key(name="k", user_id=user.id, team_id=team.id)
    await auth.add_member(team.id, user.id)
    rec, secret = await auth.create_key(
        name="k", user_id=user.id, team_id=team.id, models=("gpt-*",), limits=Limits(rpm=4)
    )
    info = await auth.verify(hash_key(secret))
    assert info is not None and info.models == ("gpt-*",)
    assert [(s.kind, s.id) for s in info.scopes] == [
        ("key", rec.id),
        ("user", user.id),
        ("team", team.id),
    ]
    assert info.scopes[2].limits == Limits(budget_usd=3.0, budget_period="day")
    changed = await auth.update_key(rec.id, {"budget_usd": 1.0, "models": ()})
    assert changed.limits.budget_usd == 1.0 and changed.models == ()
    assert (await auth.update_team(team.id, {"name": "ml2"})).name == "ml2"
    rotated, new_secret = await auth.rotate_key(rec.id)
    assert rotated.limits.rpm == 4 and await auth.verify(hash_key(secret)) is None
    await auth.disable_user(user.id)
    assert (await auth.verify(hash_key(new_secret))).disabled  # type: ignore[union-attr]
    assert (await auth.get_team(team.id)).members == (user.id,)
    await auth.remove_member(team.id, user.id)
    assert (await auth.get_key(rec.id)).team_id is None
    assert (await auth.get_user(user.id)).teams == ()
    await auth.delete_user(user.id)
    gone = await auth.verify(hash_key(new_secret))
    assert gone is not None and gone.revoked and gone.user_id is None
    await auth.delete_team(team.id)
    assert await auth.list_teams() == []
    assert seen == [
        "user.created",
        "team.created",
        "team.member_added",
        "key.created",
        "key.updated",
        "team.updated",
        "key.rotated",
        "user.disabled",
        "key.updated",
        "team.member_removed",
        "key.revoked",
        "user.deleted",
        "team.deleted",
    ]


def _ev(i: int, ts: float, key: str, user: str, team: str | None, cost: float) -> UsageEvent:
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


async def test_ledger_team_column_and_spend_on_postgres(pool: Any) -> None:
    assert await migrate(pool, "ledger", LEDGER_MIGRATIONS[:1]) == [1]
    store = PgLedgerStore(pool)
    await store.migrate()  # adds team_id to the partitioned table
    ledger = LedgerService(store, None)
    now = time.time()
    day = period_start("day", now)
    await store.insert_batch(
        [
            _ev(1, now, "k1", "u1", "t1", 1.0),
            _ev(2, now, "k2", "u2", "t1", 2.0),
            _ev(3, now, "k3", "u2", None, 4.0),
            _ev(4, day - 60, "k1", "u1", "t1", 8.0),  # yesterday
        ]
    )
    by_team = {r["group"]: r["cost_usd"] for r in await ledger.usage(group_by="team")}
    assert by_team == {"": 4.0, "t1": 11.0}
    mine = await ledger.usage(UsageFilter(user_id="u1"))
    assert mine[0]["requests"] == 2 and mine[0]["cost_usd"] == 9.0
    assert await ledger.spend_since("team", "t1", day) == 3.0
    assert await ledger.spend_since("user", "u2", 0.0) == 6.0
    spend = await ledger.spend_by_scope({"day": day, "total": 0.0})
    assert spend[("key", "k1", "day")] == 1.0 and spend[("key", "k1", "total")] == 9.0
    assert spend[("team", "t1", "day")] == 3.0 and spend[("user", "u2", "day")] == 6.0
    assert len(spend) == 12  # 3 keys, 2 users, 1 team, in 2 periods
