"""The authenticate step: key hash -> KeyInfo, from a local cache first.

A miss asks the verifier (the auth service: a direct call all-in-one, HTTP in
the mesh). Lifecycle events of a key, its user or its team evict at once (a
revoked key, changed limits, a moved member); entries also expire after a TTL so
a missed event cannot keep a key alive forever."""

from __future__ import annotations

import asyncio
import time

from tokgateway.common.contracts import AUTH_SUBJECT_PREFIX, AuthEvent, KeyInfo, KeyVerifier
from tokgateway.common.errors import Unauthenticated, UpstreamUnavailable
from tokgateway.common.keys import hash_key

NEGATIVE_TTL = 2.0
MAX_ENTRIES = 100_000


class KeyCache:
    def __init__(self, verifier: KeyVerifier, ttl: float = 300.0) -> None:
        self._verifier = verifier
        self._ttl = ttl
        self._entries: dict[str, tuple[KeyInfo | None, float]] = {}
        self._inflight: dict[str, asyncio.Future[KeyInfo | None]] = {}

    async def authenticate(self, token: str | None) -> KeyInfo:
        if not token:
            raise Unauthenticated(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                code="missing_api_key",
            )
        key_hash = hash_key(token)
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is not None and entry[1] > now:
            info = entry[0]
        else:
            info = await self._lookup(key_hash, now)
        if info is None:
            raise Unauthenticated("Invalid API key.", code="invalid_api_key")
        if info.revoked:
            raise Unauthenticated("This API key has been revoked.", code="revoked_api_key")
        if info.expired():
            raise Unauthenticated("This API key has expired.", code="expired_api_key")
        if info.disabled:
            raise Unauthenticated("The user of this API key is disabled.", code="user_disabled")
        return info

    async def _lookup(self, key_hash: str, now: float) -> KeyInfo | None:
        pending = self._inflight.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[KeyInfo | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_hash] = fut
        try:
            try:
                info = await self._verifier.verify(key_hash)
            except Exception as exc:
                fut.set_exception(UpstreamUnavailable("The key service is unavailable."))
                fut.exception()  # mark retrieved
                raise UpstreamUnavailable("The key service is unavailable.") from exc
            fut.set_result(info)
        finally:
            self._inflight.pop(key_hash, None)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (info, now + (self._ttl if info is not None else NEGATIVE_TTL))
        return info

    def evict(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()

    def evict_where(self, field_name: str, value: str) -> None:
        """Forget every cached key whose ``field_name`` (id, user_id, team_id) is value."""
        self._entries = {
            h: e
            for h, e in self._entries.items()
            if e[0] is None or getattr(e[0], field_name) != value
        }

    def on_auth_event(self, subject: str, payload: bytes) -> None:
        try:
            event = AuthEvent.from_json(payload)
        except (ValueError, TypeError):
            self._entries.clear()
            return
        kind = subject.removeprefix(AUTH_SUBJECT_PREFIX) or event.type
        obj, _, action = kind.partition(".")
        data = event.data
        if kind == "key.created":
            # Forget refusals, so a key that was tried before it existed works now.
            self._entries = {h: e for h, e in self._entries.items() if e[0] is not None}
        elif obj == "key" and isinstance(data.get("id"), str):
            self.evict_where("id", data["id"])
        elif obj == "user" and isinstance(data.get("id"), str):
            self.evict_where("user_id", data["id"])
        elif obj == "team" and action.startswith("member") and isinstance(data.get("user_id"), str):
            self.evict_where("user_id", data["user_id"])
        elif obj == "team" and isinstance(data.get("id"), str):
            self.evict_where("team_id", data["id"])
        else:
            self._entries.clear()
