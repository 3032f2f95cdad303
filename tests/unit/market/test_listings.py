"""Listings: signing, publishing rules, verification of what peers send,
subscriptions; on the in-memory store and the SQLite file."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from tokgateway.common.crypto import CredentialBox
from tokgateway.common.errors import BadRequest, Forbidden, NotFound
from tokgateway.common.pricing import PriceTable
from tokgateway.common.settings import Settings, load_settings
from tokgateway.common.signing import SigningKey, registry_id, verify
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.registry.market import MarketService, check_listing, effective_price
from tokgateway.registry.market_access import MarketAccess
from tokgateway.registry.market_store import MemoryMarketStore, SQLiteMarketStore


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(tmp_path / "none", {"GATEWAY_PORT": "18999", **env})


async def _market(tmp_path: Path, store: Any = None, **env: str) -> MarketService:
    settings = _settings(tmp_path, GATEWAY_ENABLE_PROVIDER="true", **env)
    market = MarketService(settings, store or MemoryMarketStore(), CredentialBox("k" * 32))
    await market.start()
    return market


def test_signature_covers_every_byte_and_ids_come_from_keys() -> None:
    key = SigningKey.generate()
    doc = {"b": [1, 2.5, "x"], "a": {"z": None}}
    sig = key.sign(doc)
    assert verify(key.public_key, {"a": {"z": None}, "b": [1, 2.5, "x"]}, sig)  # key order
    assert not verify(key.public_key, {**doc, "a": {"z": 0}}, sig)
    assert not verify(SigningKey.generate().public_key, doc, sig)
    assert not verify(key.public_key, doc, "not-a-signature")
    again = SigningKey.from_private(key.private_text())
    assert again.public_key == key.public_key and again.sign(doc) == sig
    assert key.registry_id == registry_id(key.public_key).lower()
    assert key.registry_id.startswith("reg_") and len(key.registry_id) == 20
    assert key.private_text() not in repr(key)


async def test_publish_is_refused_unless_the_gateway_is_a_provider(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    market = MarketService(settings, MemoryMarketStore(), CredentialBox("k" * 32))
    await market.start()
    with pytest.raises(Forbidden, match="GATEWAY_ENABLE_PROVIDER"):
        await market.publish({"models": ["echo"], "price_in": 1, "price_out": 2}, None)


async def test_publish_signs_prices_and_defaults(tmp_path: Path) -> None:
    market = await _market(
        tmp_path,
        GATEWAY_PUBLISH_NAME="Acme GPUs",
        GATEWAY_MODEL_FAMILY="gpt-4o-mini, mine",
        GATEWAY_EMAIL="ops@acme.test",
    )
    prices = PriceTable.default()
    with pytest.raises(BadRequest, match="No price for 'mine'"):
        await market.publish({}, prices)  # never listed at 0
    rec = await market.publish({"models": ["gpt-4o-mini"]}, prices)
    shipped = prices.lookup("gpt-4o-mini")
    assert shipped is not None
    assert rec["models"][0]["input"] == shipped.input and rec["name"] == "Acme GPUs"
    assert rec["publisher"]["email"] == "ops@acme.test"
    assert rec["endpoint"] == "http://127.0.0.1:18999/v1" and rec["local"]
    own = await market.publish({"models": [{"name": "mine", "input": 0.5, "output": 1}]}, prices)
    assert own["models"][0]["output"] == 1.0
    [entry] = [e for _, e in await market.entries() if e["listing"]["id"] == own["id"]]
    assert check_listing(entry, now=time.time()) is None
    assert [r["id"] for r in await market.listings(model="mine")] == [own["id"]]
    cheapest_first = sorted([rec, own], key=lambda r: effective_price(r["models"][0]))
    assert [r["id"] for r in await market.listings(sort="price")] == [
        r["id"] for r in cheapest_first
    ]
    with pytest.raises(BadRequest):
        await market.listings(sort="random")
    await market.unpublish(own["id"])
    assert [r["id"] for r in await market.listings()] == [rec["id"]]
    with pytest.raises(NotFound):
        await market.unpublish(own["id"])


async def test_the_signing_key_is_kept_sealed_in_the_store(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    first = await _market(tmp_path, SQLiteMarketStore(SQLiteDB(db)))
    rid = first.registry_id
    await first.close()
    raw = db.read_bytes()
    second = await _market(tmp_path, SQLiteMarketStore(SQLiteDB(db)))
    assert second.registry_id == rid  # the same identity after a restart
    assert second.key.private_text().encode() not in raw
    await second.close()


async def test_check_listing_refuses_tampering_and_impostors(tmp_path: Path) -> None:
    market = await _market(tmp_path)
    rec = await market.publish({"models": ["m"], "price_in": 1, "price_out": 2}, None)
    [(_, entry)] = await market.entries()
    now = time.time()
    assert check_listing(entry, pinned={market.registry_id: market.key.public_key}, now=now) is None
    tampered = copy.deepcopy(entry)
    tampered["listing"]["models"][0]["input"] = 0.01
    assert check_listing(tampered, now=now) == "bad signature"
    other = SigningKey.generate()
    impostor = copy.deepcopy(entry)
    impostor["listing"]["publisher"]["public_key"] = other.public_key
    impostor["signature"] = other.sign(impostor["listing"])
    assert check_listing(impostor, now=now) == "publisher id does not match its key"
    assert check_listing(entry, pinned={market.registry_id: other.public_key}, now=now) == (
        "publisher key differs from the pinned one"
    )
    assert check_listing(entry, now=rec["expires_at"] + 1) == "expired"
    assert check_listing({"listing": "x"}, now=now) == "malformed entry"


def test_effective_price_of_a_typical_request() -> None:
    model = {"input": 1.0, "output": 4.0, "cached": None}
    assert effective_price(model) == pytest.approx((2000 * 1 + 500 * 4) / 1e6)
    assert effective_price(model, {"input": 1000, "output": 0, "cached": 500}) == 0.001


class Minter:
    def __init__(self) -> None:
        self.minted: list[dict[str, Any]] = []
        self.revoked: list[str] = []

    async def mint(
        self, *, name: str, models: tuple[str, ...], rpm: int | None, budget_usd: float | None
    ) -> tuple[str, str]:
        self.minted.append({"name": name, "models": models, "rpm": rpm, "budget": budget_usd})
        return f"key_{len(self.minted)}", f"tgw-secret-{len(self.minted)}"

    async def revoke(self, key_id: str) -> None:
        self.revoked.append(key_id)


async def test_subscription_waits_for_approval_and_hands_the_key_over_once(
    tmp_path: Path,
) -> None:
    market = await _market(tmp_path, GATEWAY_MARKET_AUTO_APPROVE="false")
    minter = Minter()
    access = MarketAccess(market.settings, market, registry=None, minter=minter)  # type: ignore[arg-type]
    rec = await market.publish({"models": ["m"], "price_in": 1, "price_out": 2}, None)
    ask = {"listing_id": rec["id"], "claim": "c" * 32, "consumer": {"email": "c@x.test"}}
    status, answer = await access.subscribe(ask)
    assert status == 202 and answer["status"] == "pending" and "key" not in answer
    assert minter.minted == []
    with pytest.raises(BadRequest):
        await access.subscribe({**ask, "claim": "short"})
    approved = await access.approve(answer["id"])
    assert approved["status"] == "active" and "key_sealed" not in approved
    assert minter.minted[0]["models"] == ("m",)
    status, answer = await access.subscribe(ask)
    assert status == 200 and answer["key"] == "tgw-secret-1"
    await access.delivered(answer["id"])
    status, again = await access.subscribe(ask)
    assert status == 200 and "key" not in again  # shown once
    other_claim = await access.subscribe({**ask, "claim": "d" * 32})
    assert other_claim[0] == 202  # someone else's claim is a new, pending request
    await market.unpublish(rec["id"])
    assert await access.revoke_listing(rec["id"]) == 1 and minter.revoked == ["key_1"]
    with pytest.raises(NotFound):
        await access.subscribe(ask)
    await access.close()
