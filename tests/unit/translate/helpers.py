"""Shared pieces of the translation tests: deterministic ids, SSE decoding of
translator output, golden fixture loading, and a replay server that lets the
official SDKs parse translated bytes without a gateway."""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tokgateway.common.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
CREATED = 1_700_000_000


def counter_ids() -> Callable[[str], str]:
    """Ids that depend only on the order they are asked for."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}{next(counter):03d}"


def fixed_clock() -> float:
    return float(CREATED)


def decode(chunks: list[bytes]) -> list[list[Any]]:
    """Encoded SSE output as ``[event name, data]`` pairs (data parsed as JSON
    unless it is ``[DONE]``). Also checks the framing is well formed."""
    raw = b"".join(chunks)
    for chunk in chunks:
        assert chunk.endswith(b"\n\n"), chunk
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.flush()
    out: list[list[Any]] = []
    for ev in events:
        data: Any = ev.data.decode() if ev.data == b"[DONE]" else orjson.loads(ev.data)
        out.append([ev.event, data])
    return out


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def fixture_names(prefix: str) -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob(f"{prefix}*.json"))


def check_golden(name: str, actual: Any) -> None:
    """Compare with the fixture's ``expected``; ``GOLDEN_UPDATE=1`` rewrites it."""
    path = FIXTURES / f"{name}.json"
    data = json.loads(path.read_text())
    if UPDATE:
        data["expected"] = actual
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    assert actual == data["expected"]


class _Replay:
    def __init__(self) -> None:
        self.body = b""
        self.content_type = "text/event-stream"
        self.status = 200
        self.requests: list[dict[str, Any]] = []


@contextmanager
def replay_server() -> Iterator[tuple[str, _Replay]]:
    """A local HTTP server (port 0, own thread) answering every POST with the
    bytes set on the returned object: ``(base url, replay)``."""
    state = _Replay()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            state.requests.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(state.status)
            self.send_header("content-type", state.content_type)
            self.send_header("content-length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
