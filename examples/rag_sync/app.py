"""The RAG sync receiver: a Standard Webhooks endpoint that keeps identities
in Milvus in step with the gateway, and a retrieval endpoint that answers
only with documents the caller's gateway key may see.

    RAG_HOOK_SECRET=whsec_... python -m examples.rag_sync.app \\
        --gateway http://127.0.0.1:8081 --milvus ./rag.db --port 8090

Who may read what: every identity reads ``public``; a user reads
``user:<id>``, a team's members ``team:<id>``, plus any names listed in a
user's or team's ``metadata.rag_collections``. A key reads what its user and
team read. Revoked or expired keys, disabled or deleted users and deleted
teams are removed from Milvus; the caller's key is also checked against the
gateway on every query, so a revocation is honoured even before its event
arrives."""

from __future__ import annotations

import argparse
import logging
import os
from collections import OrderedDict
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from examples.rag_sync.store import PUBLIC, Identity, RagStore

log = logging.getLogger("rag_sync")
SEEN_IDS = 10_000  # event ids remembered for dedupe (deliveries are at-least-once)
GONE_KEY = ("revoked", "expired")
GONE_USER = ("disabled", "deleted")


def key_hint(key: str) -> str:
    """The gateway's hint of a key (first 8 and last 4 characters), as its key events carry it."""
    return f"{key[:8]}…{key[-4:]}"


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": {"message": message, "type": "rag_sync_error"}}, status)


def _extra(data: dict[str, Any]) -> list[str]:
    meta = data.get("metadata")
    names = meta.get("rag_collections") if isinstance(meta, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []


class RagSync:
    def __init__(
        self, store: RagStore, *, secret: str, gateway_url: str, admin_token: str = ""
    ) -> None:
        self.store = store
        self.webhook = Webhook(secret)
        self.gateway_url = gateway_url.rstrip("/")
        self.admin_token = admin_token
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tombstones: dict[str, float] = {}
        self.applied = 0
        self.duplicates = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hooks", self.receive, methods=["POST"]),
                Route("/search", self.search, methods=["POST"]),
                Route("/documents", self.add_document, methods=["POST"]),
                Route("/healthz", lambda r: _json({"status": "ok"}), methods=["GET"]),
            ]
        )

    # -- the hook endpoint ------------------------------------------------------------
    async def receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            event = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            return _error("bad signature", 401)
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            return _error("not an event", 400)
        if event["id"] in self._seen:
            self.duplicates += 1
            return Response(status_code=204)
        await run_in_threadpool(self.apply, event)
        self._seen[event["id"]] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return Response(status_code=204)

    def apply(self, event: dict[str, Any]) -> None:
        """One lifecycle event -> identity records. Out-of-order deliveries
        (retries) never resurrect an identity: older events than what a record
        or its tombstone saw are ignored."""
        kind = str(event.get("type", ""))
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        ts = float(event.get("ts") or 0.0)
        obj, _, action = kind.partition(".")
        if obj == "key":
            self._key(action, data, ts)
        elif obj == "user":
            self._user(action, data, ts)
        elif obj == "team":
            self._team(action, data, ts)
        self.applied += 1

    def _stale(self, identity_id: str, ts: float) -> bool:
        if self._tombstones.get(identity_id, -1.0) >= ts:
            return True
        current = self.store.get(identity_id)
        return current is not None and current.ts > ts

    def _remove(self, ids: list[str], ts: float) -> None:
        for i in ids:
            self._tombstones[i] = max(ts, self._tombstones.get(i, 0.0))
        self.store.delete(ids)

    def _key(self, action: str, data: dict[str, Any], ts: float) -> None:
        key_id = str(data.get("id") or "")
        if not key_id:
            return
        if action in GONE_KEY or data.get("status") in GONE_KEY:
            self._remove([key_id], ts)
            return
        if self._stale(key_id, ts):
            return
        self.store.put(
            Identity(
                id=key_id,
                kind="key",
                name=str(data.get("name") or ""),
                user_id=str(data.get("user_id") or ""),
                team_id=str(data.get("team_id") or ""),
                hint=str(data.get("hint") or ""),
                ts=ts,
            )
        )

    def _user(self, action: str, data: dict[str, Any], ts: float) -> None:
        user_id = str(data.get("id") or "")
        if not user_id:
            return
        if action in GONE_USER or data.get("status") in GONE_USER or data.get("disabled"):
            keys = [k.id for k in self.store.find(kind="key", user_id=user_id)]
            self._remove([user_id, *keys], ts)
            return
        if self._stale(user_id, ts):
            return
        current = self.store.get(user_id)
        teams = list(current.teams) if current else []
        team_id = str(data.get("team_id") or "")
        if team_id and team_id not in teams:
            teams.append(team_id)
        self.store.put(
            Identity(
                id=user_id,
                kind="user",
                name=str(data.get("email") or data.get("name") or ""),
                team_id=team_id,
                teams=teams,
                collections=[PUBLIC, f"user:{user_id}", *_extra(data)],
                ts=ts,
            )
        )

    def _team(self, action: str, data: dict[str, Any], ts: float) -> None:
        if action.startswith("member_"):
            team_id = str(data.get("team_id") or data.get("id") or "")
            user = self.store.get(str(data.get("user_id") or ""))
            if not team_id or user is None:
                return
            teams = [t for t in user.teams if t != team_id]
            if action == "member_added":
                teams.append(team_id)
            user.teams = teams
            self.store.put(user)
            return
        team_id = str(data.get("id") or "")
        if not team_id:
            return
        if action == "deleted":
            self._remove([team_id], ts)
            return
        if self._stale(team_id, ts):
            return
        self.store.put(
            Identity(
                id=team_id,
                kind="team",
                name=str(data.get("name") or ""),
                collections=[f"team:{team_id}", *_extra(data)],
                ts=ts,
            )
        )

    def allowed(self, key: Identity) -> list[str]:
        names = {PUBLIC}
        teams = {key.team_id} if key.team_id else set()
        if key.user_id:
            names.add(f"user:{key.user_id}")
            user = self.store.get(key.user_id)
            if user is not None:
                names.update(user.collections)
                teams.update(user.teams)
        for team_id in teams:
            names.add(f"team:{team_id}")
            team = self.store.get(team_id)
            if team is not None:
                names.update(team.collections)
        return sorted(names)

    # -- retrieval --------------------------------------------------------------------
    async def search(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not key:
            return _error("send your gateway key: Authorization: Bearer <key>", 401)
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                check = await http.get(
                    self.gateway_url + "/v1/models", headers={"authorization": f"Bearer {key}"}
                )
        except httpx.HTTPError:
            return _error("the gateway cannot be reached to check the key", 503)
        if check.status_code in (401, 403):
            return _error("the gateway refused this key", 401)
        if check.status_code != 200:
            return _error(f"the gateway answered {check.status_code}", 503)
        matches = await run_in_threadpool(self.store.find, kind="key", hint=key_hint(key))
        if len(matches) != 1:
            return _error("this key has no identity in the RAG store", 403)
        try:
            body = orjson.loads(await request.body())
            query = str(body["query"])
            k = max(1, min(int(body.get("k", 5)), 50))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _error("body: {'query': '...', 'k': 5}", 400)
        collections = await run_in_threadpool(self.allowed, matches[0])
        hits = await run_in_threadpool(self.store.search, query, collections, k)
        return _json({"key_id": matches[0].id, "collections": collections, "data": hits})

    async def add_document(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not self.admin_token or token != self.admin_token:
            return _error("documents are added with RAG_ADMIN_TOKEN", 401)
        body = orjson.loads(await request.body())
        await run_in_threadpool(
            self.store.add_document, str(body["id"]), str(body["collection"]), str(body["text"])
        )
        return _json({"id": body["id"]}, 201)

    def close(self) -> None:
        self.store.close()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Sync gateway identities into Milvus")
    parser.add_argument("--gateway", default="http://127.0.0.1:8081")
    parser.add_argument("--milvus", default="./rag.db", help="Milvus Lite file or a Milvus URI")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    sync = RagSync(
        RagStore(args.milvus),
        secret=os.environ["RAG_HOOK_SECRET"],
        gateway_url=args.gateway,
        admin_token=os.environ.get("RAG_ADMIN_TOKEN", ""),
    )
    uvicorn.run(sync.app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
