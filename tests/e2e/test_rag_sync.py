"""examples/rag_sync for real: the gateway (a process) sends key events to the
receiver, which keeps identities in Milvus Lite (in-process) and answers
searches only with documents the caller's gateway key may see."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from examples.rag_sync.app import RagSync
from examples.rag_sync.store import RagStore
from tests.e2e.conftest import gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import MockUpstream, free_port, serve_in_thread
from tokgateway.common.webhooks import new_secret

pytestmark = pytest.mark.e2e
SECRET = new_secret()
ADMIN = "rag-admin-token"


def wait(pred: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def search(rag: str, key: str, query: str) -> httpx.Response:
    return httpx.post(
        rag + "/search", json={"query": query, "k": 10}, headers={"authorization": f"Bearer {key}"}
    )


def send_event(rag: str, type_: str, data: dict[str, Any]) -> None:
    """An event as the gateway signs it (the user/team events of the governance API)."""
    event = {"v": 1, "id": f"evt_{time.time_ns()}", "type": type_, "ts": time.time(), "data": data}
    body = orjson.dumps(event).decode()
    now = datetime.now(UTC)
    headers = {
        "webhook-id": event["id"],
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(event["id"], now, body),
    }
    assert httpx.post(rag + "/hooks", content=body, headers=headers).status_code == 204


def test_identities_follow_the_gateway_and_searches_follow_the_key(
    mock: tuple[MockUpstream, str], tmp_path: Path
) -> None:
    port = free_port()
    hook = f"""
[hook.rag]
kind = webhook
events = user.*, team.*, key.*
url = http://127.0.0.1:{port}/hooks
secret_env = RAG_HOOK_SECRET
"""
    gw = GatewayProcess(
        tmp_path / "gw", gateway_config(mock[1], hook), env={"RAG_HOOK_SECRET": SECRET}
    )
    store = RagStore(str(tmp_path / "rag.db"))
    sync = RagSync(store, secret=SECRET, gateway_url=gw.url, admin_token=ADMIN)
    with serve_in_thread(sync.app(), port) as rag:
        gw.start()
        try:
            alice = gw.create_key("alice-agent", "--user", "alice@example.com")
            bob = gw.create_key("bob-agent", "--user", "bob@example.com")
            wait(lambda: store.get(alice["id"]) is not None and store.get(bob["id"]) is not None)
            identity = store.get(alice["id"])
            assert identity is not None and identity.kind == "key"
            assert identity.user_id == alice["user_id"] and identity.hint == alice["hint"]

            docs = {
                "handbook": ("public", "gateway handbook: how budget keys rotate"),
                "alice-notes": (f"user:{alice['user_id']}", "alice budget notes for the quarter"),
                "bob-notes": (f"user:{bob['user_id']}", "bob budget notes and salary"),
                "finance": ("finance", "finance budget forecast for the board"),
                "team-plan": ("team:team_ops", "ops team budget plan"),
            }
            for doc_id, (collection, text) in docs.items():
                resp = httpx.post(
                    rag + "/documents",
                    json={"id": doc_id, "collection": collection, "text": text},
                    headers={"authorization": f"Bearer {ADMIN}"},
                )
                assert resp.status_code == 201

            resp = search(rag, alice["key"], "budget notes")
            assert resp.status_code == 200, resp.text
            assert {h["id"] for h in resp.json()["data"]} == {"handbook", "alice-notes"}
            assert resp.json()["data"][0]["id"] == "alice-notes"  # the closest one first
            assert {h["id"] for h in search(rag, bob["key"], "budget").json()["data"]} == {
                "handbook",
                "bob-notes",
            }
            assert search(rag, "tgk-not-a-key-at-all-000000", "budget").status_code == 401

            gw.cli("keys", "revoke", alice["id"])
            wait(lambda: store.get(alice["id"]) is None)  # gone from Milvus
            assert search(rag, alice["key"], "budget").status_code == 401
            assert search(rag, bob["key"], "budget").status_code == 200

            # The user and team events (governance API) extend what a key reads
            user_id = bob["user_id"]
            grants = {"rag_collections": ["finance"]}
            send_event(rag, "user.created", {"id": user_id, "email": "bob@x", "metadata": grants})
            send_event(rag, "team.created", {"id": "team_ops", "name": "ops"})
            send_event(rag, "team.member_added", {"team_id": "team_ops", "user_id": user_id})
            seen = {h["id"] for h in search(rag, bob["key"], "budget").json()["data"]}
            assert seen == {"handbook", "bob-notes", "finance", "team-plan"}
            send_event(rag, "team.member_removed", {"team_id": "team_ops", "user_id": user_id})
            seen = {h["id"] for h in search(rag, bob["key"], "budget").json()["data"]}
            assert seen == {"handbook", "bob-notes", "finance"}
            send_event(rag, "user.disabled", {"id": user_id})
            assert store.get(user_id) is None and store.get(bob["id"]) is None
            assert search(rag, bob["key"], "budget").status_code == 403
        finally:
            gw.stop()
            store.close()
