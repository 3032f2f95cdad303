"""Following peer registries: pull their public listings on a timer.

A peer is added by URL (and an optional bearer token its operator handed
out); its registry key is pinned at that moment. Every poll asks with
``If-None-Match`` (a 304 costs nothing), checks that the peer still holds the
pinned key, checks every listing's origin signature (market.check_listing),
and replaces what came from that peer with exactly what verified: a listing
unpublished, revoked or expired upstream disappears here at the next poll.
Refusals are logged with the reason. Credentials are never imported: the
feed carries none."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
import orjson

from tokgateway.common.errors import BadRequest, GatewayError, NotFound
from tokgateway.common.signing import registry_id
from tokgateway.registry.market import MarketService, check_listing
from tokgateway.registry.market_store import LISTING, PEER, Doc

log = logging.getLogger("tokgateway.market")

FEED_PATH = "/market/feed"
MAX_FEED_BYTES = 8 << 20


class PeerError(GatewayError):
    status = 502
    error_type = "api_error"
    error_class = "upstream"


class Federation:
    def __init__(self, market: MarketService, client: httpx.AsyncClient | None = None) -> None:
        self.market = market
        self.store = market.store
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._task: asyncio.Task[None] | None = None
        # one poll, add or remove at a time: a poll that was fetching while a
        # peer was removed must not write the peer (or its listings) back
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    def start_polling(self, interval: float) -> None:
        if self._task is None and interval > 0:
            self._task = asyncio.create_task(self._loop(interval), name="market-peers")

    async def _loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll_all()
            except Exception:
                log.exception("peer poll failed")

    # -- peers --------------------------------------------------------------------------
    async def _fetch(
        self, url: str, token: str, etag: str = ""
    ) -> tuple[int, dict[str, Any] | None, str, float]:
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if etag:
            headers["if-none-match"] = etag
        started = time.monotonic()
        try:
            resp = await self._client.get(url + FEED_PATH, headers=headers)
        except httpx.HTTPError as exc:
            raise PeerError(f"Cannot reach the peer at {url}: {type(exc).__name__}.") from None
        ms = round((time.monotonic() - started) * 1000, 1)
        if resp.status_code == 304:
            return 304, None, etag, ms
        if resp.status_code != 200:
            raise PeerError(f"The peer at {url} answered {resp.status_code}.")
        if len(resp.content) > MAX_FEED_BYTES:
            raise PeerError(f"The peer at {url} sent a feed over {MAX_FEED_BYTES} bytes.")
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise PeerError(f"The peer at {url} did not send JSON.") from None
        if not isinstance(body, dict) or not isinstance(body.get("registry"), dict):
            raise PeerError(f"The peer at {url} did not send a market feed.")
        return 200, body, resp.headers.get("etag", ""), ms

    async def add(self, url: str, token: str = "") -> Doc:
        async with self._lock:
            return await self._add(url, token)

    async def _add(self, url: str, token: str) -> Doc:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise BadRequest("'url' must be an http(s) URL.", param="url")
        _, body, _, _ = await self._fetch(url, token)
        assert body is not None
        reg = body["registry"]
        key = reg.get("public_key")
        if not isinstance(key, str) or registry_id(key) != reg.get("registry_id"):
            raise PeerError(f"The peer at {url} sent an identity whose id is not its key's.")
        if reg["registry_id"] == self.market.registry_id:
            raise BadRequest("That URL is this registry itself.", param="url")
        peer = {
            "url": url,
            "token_sealed": self.market.box.seal(token),
            "registry_id": reg["registry_id"],
            "public_key": key,
            "name": reg.get("name"),
            "added_at": time.time(),
            "etag": "",
        }
        await self.store.put(PEER, url, peer)
        log.info("peer added", extra={"peer": url, "registry_id": reg["registry_id"]})
        await self._poll(url)
        return self.public(await self.store.get(PEER, url) or peer)

    async def remove(self, url: str) -> Doc:
        url = url.rstrip("/")
        async with self._lock:
            if not await self.store.delete(PEER, url):
                raise NotFound(f"No peer {url!r}.", code="peer_not_found")
            await self.store.replace_via(LISTING, url, {})
        log.info("peer removed", extra={"peer": url})
        return {"url": url, "deleted": True}

    async def list(self) -> list[Doc]:
        return [self.public(doc) for _, _, doc in await self.store.list(PEER)]

    @staticmethod
    def public(peer: Doc) -> Doc:
        return {
            "id": peer["url"],
            "object": "market.peer",
            "url": peer["url"],
            "registry_id": peer["registry_id"],
            "public_key": peer["public_key"],
            "name": peer.get("name"),
            "has_token": bool(peer.get("token_sealed")),
            "added_at": peer.get("added_at"),
            "last_poll": peer.get("last_poll"),
            "last_status": peer.get("last_status"),
            "last_error": peer.get("last_error"),
            "listings": peer.get("listings", 0),
            "refused": peer.get("refused", 0),
            "latency_ms": peer.get("latency_ms"),
        }

    # -- polling ------------------------------------------------------------------------
    async def poll_all(self) -> None:
        async with self._lock:
            for url, _, _ in await self.store.list(PEER):
                await self._poll(url)
        await self._probe_gateways()

    async def poll(self, url: str) -> Doc:
        async with self._lock:
            return await self._poll(url)

    async def _save(self, url: str, peer: Doc) -> bool:
        """Write the peer back unless it was removed meanwhile (another
        worker process shares the store)."""
        if await self.store.get(PEER, url) is None:
            return False
        await self.store.put(PEER, url, peer)
        return True

    async def _poll(self, url: str) -> Doc:
        peer = await self.store.get(PEER, url)
        if peer is None:
            raise NotFound(f"No peer {url!r}.", code="peer_not_found")
        peer["last_poll"] = time.time()
        try:
            status, body, etag, ms = await self._fetch(
                url, self.market.box.open(peer.get("token_sealed", "")), peer.get("etag", "")
            )
        except PeerError as err:
            peer.update(last_status="error", last_error=err.message)
            log.warning("peer poll failed", extra={"peer": url, "error": err.message})
            await self._save(url, peer)
            return peer
        peer.update(latency_ms=ms, last_error=None)
        if status == 304:
            peer["last_status"] = "not modified"
            await self._save(url, peer)
            return peer
        assert body is not None
        if body["registry"].get("public_key") != peer["public_key"]:
            peer.update(last_status="error", last_error="the peer's key is not the pinned one")
            log.error("peer key changed: its listings are refused", extra={"peer": url})
            await self.store.replace_via(LISTING, url, {})
            await self._save(url, peer)
            return peer
        accepted, refused = self._verify(url, peer, body.get("listings"))
        if await self.store.get(PEER, url) is None:
            return peer  # removed while we fetched: import nothing
        await self.store.replace_via(LISTING, url, accepted)
        peer.update(
            etag=etag, last_status="ok", listings=len(accepted), refused=refused, fetched=ms
        )
        await self._save(url, peer)
        return peer

    def _verify(self, url: str, peer: Doc, raw: Any) -> tuple[dict[str, Doc], int]:
        now = time.time()
        pinned = {peer["registry_id"]: peer["public_key"]}
        accepted: dict[str, Doc] = {}
        refused = 0
        for entry in raw if isinstance(raw, list) else []:
            reason = (
                check_listing(entry, pinned=pinned, now=now)
                if isinstance(entry, dict)
                else ("malformed entry")
            )
            listing_id = entry.get("listing", {}).get("id") if isinstance(entry, dict) else None
            if reason is None and entry["listing"]["publisher"]["registry_id"] == (
                self.market.registry_id
            ):
                continue  # our own listing, relayed back: we have the original
            if reason is not None:
                refused += 1
                log.warning(
                    "listing refused",
                    extra={"peer": url, "listing_id": listing_id, "reason": reason},
                )
                continue
            accepted[entry["listing"]["id"]] = {
                "listing": entry["listing"],
                "signature": entry["signature"],
                "received_at": round(now, 3),
            }
        return accepted, refused

    async def _probe_gateways(self) -> None:
        """Latency and uptime of every listed gateway, as this registry sees it."""
        urls = {e["listing"]["market_url"] for _, e in await self.market.entries()}
        for url in urls:
            ok, total, last = self.market.health.get(url, (0, 0, None))
            started = time.monotonic()
            try:
                up = (await self._client.get(url + "/healthz", timeout=5.0)).status_code == 200
            except httpx.HTTPError:
                up = False
            ms = round((time.monotonic() - started) * 1000, 1) if up else last
            self.market.health[url] = (ok + int(up), total + 1, ms)
