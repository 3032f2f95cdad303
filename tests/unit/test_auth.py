from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tokgateway.auth.service import AuthService
from tokgateway.common.bus import InProcessBus
from tokgateway.common.errors import NotFound, Unauthenticated
from tokgateway.common.keys import hash_key
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.router.keycache import KeyCache


async def test_keys_hashed_verified_revoked_and_evicted(tmp_path: Path) -> None:
    bus = InProcessBus()
    events: list[tuple[str, bytes]] = []
    bus.subscribe("auth.v1.", lambda s, p: events.append((s, p)))
    auth = AuthService(SQLiteDB(tmp_path / "a.db"), bus, admin_email="a@b.c")
    generated = await auth.start(None)
    assert generated is not None and generated.startswith("tga-")
    assert await auth.start(None) is None  # only on first start

    rec, secret = await auth.create_key(name="agent", models=("gpt-*",), rpm=5)
    files = sorted(tmp_path.glob("a.db*"))  # the file and its WAL  # noqa: ASYNC240
    raw = b"".join(p.read_bytes() for p in files)
    assert secret.encode() not in raw and hash_key(secret).encode() in raw

    cache = KeyCache(auth, ttl=300)
    bus.subscribe("auth.v1.", cache.on_auth_event)
    info = await cache.authenticate(secret)
    assert info.id == rec.id and info.models == ("gpt-*",) and info.rpm == 5
    await auth.revoke(rec.id)
    assert events[-1][0] == "auth.v1.key.revoked"
    event = orjson.loads(events[-1][1])
    assert event["type"] == "key.revoked" and event["data"]["id"] == rec.id
    assert event["id"].startswith("evt_") and hash_key(secret) not in events[-1][1].decode()
    with pytest.raises(Unauthenticated, match="revoked"):
        await cache.authenticate(secret)
    with pytest.raises(NotFound):
        await auth.revoke("key_nope")
    with pytest.raises(Unauthenticated, match="Invalid"):
        await cache.authenticate("tgk-unknown")
    await auth.close()


async def test_env_admin_key_replaces_generated(tmp_path: Path) -> None:
    auth = AuthService(SQLiteDB(tmp_path / "a.db"), InProcessBus(), admin_email="a@b.c")
    first = await auth.start(None)
    assert first is not None
    assert await auth.start("tga-operator-chosen") is None
    assert (await auth.verify(hash_key(first))).revoked  # type: ignore[union-attr]
    fresh = await auth.verify(hash_key("tga-operator-chosen"))
    assert fresh is not None and fresh.is_admin and not fresh.revoked
    await auth.close()
