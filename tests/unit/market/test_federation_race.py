"""A poll that is fetching while its peer is removed writes nothing back:
neither the peer nor its listings return."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson

from tokgateway.common.crypto import CredentialBox
from tokgateway.common.settings import load_settings
from tokgateway.common.signing import SigningKey
from tokgateway.registry.federation import Federation
from tokgateway.registry.market import MarketService
from tokgateway.registry.market_store import LISTING, PEER, MemoryMarketStore


async def test_remove_during_a_poll_is_final(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"GATEWAY_ENABLE_PROVIDER": "true"})
    box = CredentialBox("r" * 32)
    upstream = MarketService(settings, MemoryMarketStore(), box)
    await upstream.start()
    await upstream.publish({"models": ["m"], "price_in": 1, "price_out": 2}, None)
    feed, etag = await upstream.feed()
    release = asyncio.Event()
    slow = False

    async def handler(request: httpx.Request) -> httpx.Response:
        if slow:
            await release.wait()
        return httpx.Response(200, content=feed, headers={"etag": etag + str(slow)})

    here = MarketService(settings, MemoryMarketStore(), box)
    here._key = SigningKey.generate()  # another registry than the upstream one
    peers = Federation(here, httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    url = "http://peer.test"
    added = await peers.add(url)
    assert added["listings"] == 1
    slow = True
    polling = asyncio.create_task(peers.poll_all())
    await asyncio.sleep(0.05)  # the poll is waiting for the peer's answer
    removing = asyncio.create_task(peers.remove(url))
    await asyncio.sleep(0.05)
    release.set()
    await polling
    assert (await removing)["deleted"] is True
    assert await here.store.get(PEER, url) is None
    assert await here.store.list(LISTING) == []
    assert await peers.list() == []
    assert orjson.loads(feed)["listings"]  # the peer still publishes: nothing was lost there
    await peers.close()
