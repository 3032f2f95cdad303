"""A webhook receiver for tests: verifies every delivery with the published
`standardwebhooks` library, records what it accepted, and can answer 500 for
a while or hold requests open (to kill a deliverer mid-delivery)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class HookReceiver:
    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.lock = threading.Lock()
        self.accepted: list[dict[str, Any]] = []  # every verified 2xx delivery, duplicates too
        self.headers: list[dict[str, str]] = []
        self.bad_signatures = 0
        self.refused = 0
        self.requests = 0  # every request that reached the receiver, counted on arrival
        self.fail_next = 0  # answer 500 to this many deliveries
        self.fail_until = 0.0  # ... and to every delivery before this monotonic time
        self.hold_s = 0.0  # sleep this long before answering
        self.status = 204
        self.server: ThreadingHTTPServer | None = None
        self.url = ""

    def ids(self) -> list[str]:
        with self.lock:
            return [e["id"] for e in self.accepted]

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Accepted events, first copy of each id only (receivers dedupe on it)."""
        seen: set[str] = set()
        out = []
        with self.lock:
            for e in self.accepted:
                if e["id"] not in seen and (type_ is None or e["type"] == type_):
                    seen.add(e["id"])
                    out.append(e)
        return out

    def wait_for(self, pred: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {self.ids()}")
            time.sleep(0.05)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests += 1
        if self.hold_s:
            time.sleep(self.hold_s)
        try:
            event = self.webhook.verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.bad_signatures += 1
            handler.send_response(401)
            handler.end_headers()
            return
        with self.lock:
            fail = self.fail_next > 0 or time.monotonic() < self.fail_until
            if self.fail_next > 0:
                self.fail_next -= 1
            if fail:
                self.refused += 1
            else:
                self.accepted.append(event)
                self.headers.append(headers)
        handler.send_response(500 if fail else self.status)
        handler.send_header("content-length", "0")
        handler.end_headers()

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[HookReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def event_json(raw: bytes) -> dict[str, Any]:
    data = orjson.loads(raw)
    assert isinstance(data, dict)
    return data
