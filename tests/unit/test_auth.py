from __future__ import annotations

from pathlib import Path

import httpx
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


async def test_internal_key_mint_and_revoke_need_the_service_token(tmp_path: Path) -> None:
    """What the mesh registry's marketplace calls to mint a subscriber's key."""
    from starlette.applications import Starlette

    from tokgateway.auth.service import AuthInternalAPI

    auth = AuthService(SQLiteDB(tmp_path / "a.db"), InProcessBus(), admin_email="a@b.c")
    await auth.start(None)
    app = Starlette(routes=AuthInternalAPI(auth, "svc-token").routes())
    body = {"name": "market sub_1", "models": ["m1"], "limits": {"rpm": 7}}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        wrong = await client.post(
            "/internal/keys", json=body, headers={"authorization": "Bearer x"}
        )
        assert wrong.status_code == 401
        ok = {"authorization": "Bearer svc-token"}
        bad = await client.post("/internal/keys", json={"name": "n", "models": []}, headers=ok)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "models"
        minted = await client.post("/internal/keys", json=body, headers=ok)
        assert minted.status_code == 201
        key_id, secret = minted.json()["id"], minted.json()["key"]
        info = await auth.verify(hash_key(secret))
        assert info is not None and info.id == key_id
        assert info.models == ("m1",) and info.rpm == 7
        assert (await client.post(f"/internal/keys/{key_id}/revoke")).status_code == 401
        revoked = await client.post(f"/internal/keys/{key_id}/revoke", headers=ok)
        assert revoked.status_code == 200 and revoked.json()["id"] == key_id
        missing = await client.post("/internal/keys/key_nope/revoke", headers=ok)
        assert missing.status_code == 404
    info = await auth.verify(hash_key(secret))
    assert info is None or info.revoked
    await auth.close()
