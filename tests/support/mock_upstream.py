"""A mock LLM provider speaking the OpenAI and Anthropic wire formats, for
tests (the real providers cannot be reached from here). Behaviour is chosen by
the model name, and every request it saw is recorded for assertions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

REPLY = "Hello from the mock upstream"


class StreamBroken(Exception):
    """Raised in a stream of a ``-midbreak`` model: uvicorn drops the
    connection without ending the chunked body, as a provider that dies does."""


FOREVER_TEXT = "forever " * 512  # 4 KiB of content per streamed event
# what a provider sends besides the body (chat answers and every stream)
UPSTREAM_HEADERS = {"x-request-id": "req_mock_ok", "x-ratelimit-remaining-tokens": "9999"}


@dataclass
class Recorder:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    streams_started: int = 0
    streams_cancelled: int = 0
    streams_finished: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers
    )


def _openai_error(
    status: int, message: str, kind: str, extra: dict[str, str] | None = None
) -> Response:
    headers = {"retry-after": "1"} if status == 429 else None
    if extra:
        headers = {**(headers or {}), **extra}
    return _json(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status, headers
    )


def _behaviour(model: str) -> Response | None:
    if model.endswith("-html"):  # a captive portal or a misrouted base_url: 200, not JSON
        return Response(b"<html><body>Please log in</body></html>", media_type="text/html")
    if model.endswith("-nostream"):  # an event stream with no event in it
        return Response(b"data: [DONE]\n\n", media_type="text/event-stream")
    if model.endswith("-ratelimited"):
        headers = {
            "x-ratelimit-remaining-requests": "41",
            "x-ratelimit-reset-requests": "2s",
            "x-request-id": "req_mock_123",
        }
        return _openai_error(429, "upstream says slow down", "rate_limit_error", headers)
    if model.endswith("-429"):
        return _openai_error(429, "upstream says slow down", "rate_limit_error")
    if model.endswith("-500"):
        return _openai_error(500, "upstream exploded", "server_error")
    if model.endswith("-400"):
        return _openai_error(400, "upstream rejects this input", "invalid_request_error")
    return None


class MockUpstream:
    def __init__(self) -> None:
        self.rec = Recorder()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
        # what GET /v1/models reports; tests change it to see the refresh
        self.model_ids = ["llama3.1:8b", "llama3.2:3b", "qwen2.5:7b", "mock-model"]
        self.models_served = 0

    async def models(self, request: Request) -> Response:
        with self.rec.lock:
            self.models_served += 1
            self.rec.headers.append(dict(request.headers))
        data = [{"id": m, "object": "model", "owned_by": "mock"} for m in self.model_ids]
        return _json({"object": "list", "data": data})

    async def _record(self, request: Request) -> dict[str, Any]:
        body = orjson.loads(await request.body())
        with self.rec.lock:
            self.rec.requests.append(body)
            self.rec.headers.append(dict(request.headers))
        return dict(body)

    def _stream(self, gen: AsyncIterator[bytes]) -> StreamingResponse:
        rec = self.rec

        async def wrapped() -> AsyncIterator[bytes]:
            rec.streams_started += 1
            done = False
            try:
                async for piece in gen:
                    yield piece
                done = True
            finally:
                if done:
                    rec.streams_finished += 1
                else:
                    rec.streams_cancelled += 1

        return StreamingResponse(
            wrapped(), media_type="text/event-stream", headers=UPSTREAM_HEADERS
        )

    async def chat(self, request: Request) -> Response:
        body = await self._record(request)
        model = str(body.get("model"))
        failed = _behaviour(model)
        if failed is not None:
            return failed
        if model.endswith("-wait") and not body.get("stream"):
            await asyncio.sleep(10.0)  # a slow answer the client may not wait for
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 3},
        }
        tools = body.get("tools")
        created = int(time.time())
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": REPLY}
            finish = "stop"
            if tools:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": tools[0]["function"]["name"],
                                "arguments": '{"city": "Paris"}',
                            },
                        }
                    ],
                }
                finish = "tool_calls"
            return _json(
                {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
                headers=UPSTREAM_HEADERS,
            )
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        slow = model.endswith("-slow")
        fail_mid = model.endswith("-midfail")

        async def gen() -> AsyncIterator[bytes]:
            def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
                c = {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return b"data: " + orjson.dumps(c) + b"\n\n"

            yield chunk({"role": "assistant", "content": ""}, None)
            if tools:
                name = tools[0]["function"]["name"]
                repeat = model.endswith("-llamacpp")  # repeats id and name in every delta
                for i, frag in enumerate(['{"ci', 'ty": "Pa', 'ris"}']):
                    call: dict[str, Any] = {"index": 0, "function": {"arguments": frag}}
                    if i == 0 or repeat:
                        call.update({"id": "call_1", "type": "function"})
                        call["function"]["name"] = name
                    yield chunk({"tool_calls": [call]}, None)
                yield chunk({}, "tool_calls")
                if include:
                    yield (
                        b"data: "
                        + orjson.dumps(
                            {
                                "id": "chatcmpl-mock",
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": model,
                                "choices": [],
                                "usage": usage,
                            }
                        )
                        + b"\n\n"
                    )
                yield b"data: [DONE]\n\n"
                return
            if model.endswith("-forever"):  # an upstream that never stops talking
                while True:
                    yield chunk({"content": FOREVER_TEXT}, None)
                    await asyncio.sleep(0)
            words = REPLY.split(" ")
            for i, word in enumerate(words * (50 if slow else 1)):
                if slow:
                    await asyncio.sleep(0.05)
                if i == 2 and model.endswith("-midbreak"):
                    await asyncio.sleep(0.1)  # the first words reach the client before
                    raise StreamBroken(model)
                if fail_mid and i == 2:
                    err = {"error": {"message": "upstream broke", "type": "server_error"}}
                    yield b"data: " + orjson.dumps(err) + b"\n\n"
                    return
                yield chunk({"content": (" " if i else "") + word}, None)
            yield chunk({}, "stop")
            if include:
                yield (
                    b"data: "
                    + orjson.dumps(
                        {
                            "id": "chatcmpl-mock",
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + b"\n\n"
                )
            yield b"data: [DONE]\n\n"

        return self._stream(gen())

    async def completions(self, request: Request) -> Response:
        body = await self._record(request)
        model = str(body.get("model"))
        failed = _behaviour(model)
        if failed is not None:
            return failed
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        if not body.get("stream"):
            return _json(
                {
                    "id": "cmpl-mock",
                    "object": "text_completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {"index": 0, "text": REPLY, "logprobs": None, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )
        include = bool((body.get("stream_options") or {}).get("include_usage"))

        async def gen() -> AsyncIterator[bytes]:
            for word in REPLY.split(" "):
                yield (
                    b"data: "
                    + orjson.dumps(
                        {
                            "id": "cmpl-mock",
                            "object": "text_completion",
                            "created": 1,
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "text": word + " ",
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                    + b"\n\n"
                )
            if include:
                yield (
                    b"data: "
                    + orjson.dumps(
                        {
                            "id": "cmpl-mock",
                            "object": "text_completion",
                            "created": 1,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + b"\n\n"
                )
            yield b"data: [DONE]\n\n"

        return self._stream(gen())

    async def embeddings(self, request: Request) -> Response:
        import base64
        import struct

        body = await self._record(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, _ in enumerate(inputs):
            vec = [0.25 * (i + 1), -0.5, 0.125, 1.0]
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack("<4f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return _json(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 6, "total_tokens": 6},
            }
        )

    async def messages(self, request: Request) -> Response:
        body = await self._record(request)
        model = str(body.get("model"))
        if model.endswith("-529"):
            return _json(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                529,
            )
        usage = {
            "input_tokens": 20,
            "output_tokens": 9,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 4 if model.endswith("-cachewrite") else 0,
        }
        tools = body.get("tools")
        if not body.get("stream"):
            content: list[dict[str, Any]] = [{"type": "text", "text": REPLY}]
            stop = "end_turn"
            if tools:
                content = [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": tools[0]["name"],
                        "input": {"city": "Paris"},
                    }
                ]
                stop = "tool_use"
            return _json(
                {
                    "id": "msg_mock",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )

        async def gen() -> AsyncIterator[bytes]:
            def ev(name: str, data: dict[str, Any]) -> bytes:
                return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

            yield ev(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_mock",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            )
            if tools:
                yield ev(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": tools[0]["name"],
                            "input": {},
                        },
                    },
                )
                for frag in ["", '{"city": ', '"Paris"}']:
                    yield ev(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "input_json_delta", "partial_json": frag},
                        },
                    )
                yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
                yield ev(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                        "usage": {"output_tokens": 9},
                    },
                )
                yield ev("message_stop", {"type": "message_stop"})
                return
            yield ev(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield ev("ping", {"type": "ping"})
            while model.endswith("-forever"):  # an upstream that never stops talking
                yield ev(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": FOREVER_TEXT},
                    },
                )
                await asyncio.sleep(0)
            for i, word in enumerate(REPLY.split(" ")):
                if i == 2 and model.endswith("-midbreak"):
                    await asyncio.sleep(0.1)  # the first words reach the client before
                    raise StreamBroken(model)
                yield ev(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": (" " if i else "") + word},
                    },
                )
            yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield ev(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 9},
                },
            )
            yield ev("message_stop", {"type": "message_stop"})

        return self._stream(gen())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Run an ASGI app with uvicorn in a background thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="error",
        access_log=False,
        lifespan="off",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("mock upstream did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
