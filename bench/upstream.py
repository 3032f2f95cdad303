"""A fake LLM upstream that costs next to nothing per request.

It speaks just enough HTTP/1.1 (Content-Length and chunked request bodies,
keep-alive, pipelining) on raw asyncio protocols, and answers from response
bytes built once at start-up, so in a benchmark the gateway in front of it is
always the bottleneck. The request body is only searched for ``"stream": true``
(plus ``include_usage`` and ``encoding_format: base64``); it is never parsed.

Endpoints: POST /v1/chat/completions (JSON or SSE), /v1/embeddings,
/v1/messages (JSON or Anthropic SSE), GET /healthz and /__stats. The same
endpoints under /paced/... stream their events ``--pace-ms`` apart, which lets
a time-to-first-byte probe tell relaying from buffering.

Run: ``python bench/upstream.py --port 0`` prints ``READY <port>`` when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import re
import signal
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson

CREATED = 1_700_000_000
CHUNKS = 20
EMBED_DIM = 1536
MAX_HEAD = 64 * 1024
STREAM_RE = re.compile(rb'"stream"\s*:\s*true')
USAGE_RE = re.compile(rb'"include_usage"\s*:\s*true')
BASE64_RE = re.compile(rb'"encoding_format"\s*:\s*"base64"')


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


def _head(status: str, content_type: str, length: int | None, extra: Sequence[str] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-type: {content_type}"]
    if length is None:
        lines += ["transfer-encoding: chunked", "cache-control: no-cache"]
    else:
        lines.append(f"content-length: {length}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


@dataclass(frozen=True)
class Reply:
    """One prebuilt answer: the full bytes, and the same answer as separate
    writes (head, then one chunk per SSE event) for paced streaming."""

    whole: bytes
    parts: tuple[bytes, ...]

    @classmethod
    def json(cls, body: bytes, status: str = "200 OK") -> Reply:
        whole = _head(status, "application/json", len(body)) + body
        return cls(whole, (whole,))

    @classmethod
    def sse(cls, events: Sequence[bytes]) -> Reply:
        head = _head("200 OK", "text/event-stream; charset=utf-8", None)
        parts = (head, *(_chunk(ev) for ev in events[:-1]), _chunk(events[-1]) + LAST_CHUNK)
        return cls(b"".join(parts), parts)


def _openai_usage() -> dict[str, int]:
    return {"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS}


def _openai_events(include_usage: bool) -> list[bytes]:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "gpt-4o-mini",
        "system_fingerprint": None,
    }
    extra = {"usage": None} if include_usage else {}
    events = []
    for i in range(CHUNKS):
        delta: dict[str, str] = {"content": f"tok{i} "}
        if i == 0:
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        events.append({**base, "choices": [choice], **extra})
    final = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    events.append({**base, "choices": [final], **extra})
    if include_usage:
        events.append({**base, "choices": [], "usage": _openai_usage()})
    out = [b"data: " + _json(ev) + b"\n\n" for ev in events]
    out.append(b"data: [DONE]\n\n")
    return out


def _anthropic_events() -> list[bytes]:
    message: dict[str, object] = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    events: list[tuple[str, object]] = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for i in range(CHUNKS):
        delta = {"type": "text_delta", "text": f"tok{i} "}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": CHUNKS},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [b"event: %s\ndata: %s\n\n" % (name.encode(), _json(data)) for name, data in events]


def _chat_json() -> bytes:
    text = "".join(f"tok{i} " for i in range(CHUNKS))
    return _json(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": "gpt-4o-mini",
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": CHUNKS,
                "total_tokens": 12 + CHUNKS,
            },
        }
    )


def _messages_json() -> bytes:
    text = "".join(f"tok{i} " for i in range(CHUNKS))
    return _json(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": CHUNKS},
        }
    )


def _embeddings(as_base64: bool) -> bytes:
    vector = [round(math.sin(i) * 0.05, 6) for i in range(EMBED_DIM)]
    embedding: object = vector
    if as_base64:
        embedding = base64.b64encode(struct.pack(f"<{EMBED_DIM}f", *vector)).decode()
    return _json(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )


@dataclass(frozen=True)
class Replies:
    chat: Reply
    chat_stream: Reply
    chat_stream_usage: Reply
    embeddings: Reply
    embeddings_b64: Reply
    messages: Reply
    messages_stream: Reply
    health: Reply
    not_found: Reply
    bad_request: Reply

    @classmethod
    def build(cls) -> Replies:
        error = {"error": {"message": "unknown path", "type": "invalid_request_error"}}
        bad = {"error": {"message": "malformed request", "type": "invalid_request_error"}}
        return cls(
            chat=Reply.json(_chat_json()),
            chat_stream=Reply.sse(_openai_events(include_usage=False)),
            chat_stream_usage=Reply.sse(_openai_events(include_usage=True)),
            embeddings=Reply.json(_embeddings(as_base64=False)),
            embeddings_b64=Reply.json(_embeddings(as_base64=True)),
            messages=Reply.json(_messages_json()),
            messages_stream=Reply.sse(_anthropic_events()),
            health=Reply.json(b'{"status":"ok"}'),
            not_found=Reply.json(_json(error), "404 Not Found"),
            bad_request=Reply.json(_json(bad), "400 Bad Request"),
        )

    def pick(self, method: bytes, path: bytes, body: bytes) -> Reply:
        if method == b"POST":
            if path == b"/v1/chat/completions":
                if STREAM_RE.search(body):
                    usage = USAGE_RE.search(body) is not None
                    return self.chat_stream_usage if usage else self.chat_stream
                return self.chat
            if path == b"/v1/messages":
                return self.messages_stream if STREAM_RE.search(body) else self.messages
            if path == b"/v1/embeddings":
                return self.embeddings_b64 if BASE64_RE.search(body) else self.embeddings
        elif method == b"GET" and path == b"/healthz":
            return self.health
        return self.not_found


@dataclass
class Stats:
    requests: int = 0
    connections: int = 0
    by_path: dict[str, int] = field(default_factory=dict)


class ProtocolError(Exception):
    pass


@dataclass
class Request:
    method: bytes
    path: bytes
    body: bytes
    close: bool


def parse_request(buf: bytearray) -> tuple[Request, int] | None:
    """One complete request from the front of ``buf`` and how many bytes it
    used, or None while it is incomplete. Raises ProtocolError on garbage."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise ProtocolError("request head too large")
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ProtocolError("bad request line")
    method, target, version = parts
    length = 0
    chunked = False
    close = version == b"HTTP/1.0"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError("bad header line")
        key = name.strip().lower()
        if key == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise ProtocolError("bad content-length") from None
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            token = value.strip().lower()
            if token == b"close":
                close = True
            elif token == b"keep-alive":
                close = False
    start = end + 4
    if chunked:
        decoded = _dechunk(buf, start)
        if decoded is None:
            return None
        body, used = decoded
    else:
        if len(buf) < start + length:
            return None
        body, used = bytes(buf[start : start + length]), start + length
    path = target.split(b"?", 1)[0]
    return Request(method, path, body, close), used


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    pieces: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError:
            raise ProtocolError("bad chunk size") from None
        pos = eol + 2
        if size == 0:
            # Trailers (rare) end with an empty line.
            trailer_end = buf.find(b"\r\n", pos)
            while trailer_end > pos:
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return b"".join(pieces), trailer_end + 2
        if len(buf) < pos + size + 2:
            return None
        pieces.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class UpstreamProtocol(asyncio.Protocol):
    """One client connection. Pipelined requests are answered in order; while a
    paced stream is being written, further input waits in the buffer."""

    def __init__(self, replies: Replies, stats: Stats, pace: float) -> None:
        self._replies = replies
        self._stats = stats
        self._pace = pace
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        transport = self._transport
        out: list[bytes] = []
        while transport is not None and self._buf:
            try:
                parsed = parse_request(self._buf)
            except ProtocolError:
                out.append(self._replies.bad_request.whole)
                transport.writelines(out)
                transport.close()
                return
            if parsed is None:
                break
            req, used = parsed
            del self._buf[:used]
            self._stats.requests += 1
            key = req.path.decode("latin-1")
            self._stats.by_path[key] = self._stats.by_path.get(key, 0) + 1
            paced = req.path.startswith(b"/paced/")
            if req.method == b"GET" and req.path == b"/__stats":
                out.append(Reply.json(_json(self._stats.__dict__)).whole)
            else:
                reply = self._replies.pick(
                    req.method, req.path[6:] if paced else req.path, req.body
                )
                if paced and len(reply.parts) > 1:
                    if out:
                        transport.writelines(out)
                    self._busy = True
                    self._task = asyncio.ensure_future(self._paced(reply, req.close))
                    return
                out.append(reply.whole)
            if req.close:
                transport.writelines(out)
                transport.close()
                return
        if out and transport is not None:
            transport.writelines(out)

    async def _paced(self, reply: Reply, close: bool) -> None:
        for i, part in enumerate(reply.parts):
            if self._transport is None:
                return
            if i > 1:
                await asyncio.sleep(self._pace)
            if self._transport is None:
                return
            self._transport.write(part)
        self._busy = False
        self._task = None
        if close and self._transport is not None:
            self._transport.close()
            return
        if self._buf:
            self._process()


async def serve(host: str, port: int, pace: float) -> None:
    loop = asyncio.get_running_loop()
    replies = Replies.build()
    stats = Stats()
    server = await loop.create_server(
        lambda: UpstreamProtocol(replies, stats, pace), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {bound}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pace-ms", type=float, default=2.0, help="gap between paced events")
    args = parser.parse_args(argv)
    coro = serve(args.host, args.port, args.pace_ms / 1000.0)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
