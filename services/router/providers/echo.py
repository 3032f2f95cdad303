"""The built-in echo provider: answers every API by repeating the last user
input, with honest token counts, so a fresh gateway works with no provider key.
It speaks both wire formats natively, streaming included."""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tokgateway.common.sse import DONE, encode_event, encode_json
from tokgateway.router.providers.base import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.usage import estimate_tokens

EMBED_DIM = 16
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream"}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif isinstance(part.get("content"), str | list):
                    parts.append(_text_of(part["content"]))
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return ""


def _prompt_chars(body: dict[str, Any]) -> int:
    total = len(_text_of(body.get("system"))) if "system" in body else 0
    for msg in body.get("messages") or ():
        if isinstance(msg, dict):
            total += len(_text_of(msg.get("content"))) + 4
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        total += len(prompt)
    elif isinstance(prompt, list):
        total += sum(len(p) for p in prompt if isinstance(p, str))
    return total


def _reply(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt or "(empty prompt)"
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        return prompt[0] or "(empty prompt)"
    for msg in reversed(body.get("messages") or ()):
        if isinstance(msg, dict) and msg.get("role") == "user":
            text = _text_of(msg.get("content"))
            if text:
                return text
    return "(nothing to echo)"


def _limit(text: str, max_tokens: Any) -> tuple[str, bool]:
    if isinstance(max_tokens, int) and max_tokens > 0:
        words = text.split(" ")
        if len(words) > max_tokens:
            return " ".join(words[:max_tokens]), True
    return text, False


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    raw = [(b - 127.5) / 127.5 for b in digest[:EMBED_DIM]]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


class EchoProvider(Provider):
    api_format = "openai"
    endpoints = frozenset({"chat", "completions", "embeddings", "messages", "count_tokens"})

    def native_format(self, endpoint: str) -> str:
        return "anthropic" if endpoint in ("messages", "count_tokens") else "openai"

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        handler = {
            "chat": self._chat,
            "completions": self._completions,
            "embeddings": self._embeddings,
            "messages": self._messages,
            "count_tokens": self._count_tokens,
        }[call.endpoint]
        return handler(call)

    # -- OpenAI chat --------------------------------------------------------------
    def _chat(self, call: UpstreamCall) -> UpstreamResponse:
        body = call.body
        model = str(body.get("model", "echo"))
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        text, cut = _limit(_reply(body), max_tokens)
        finish = "length" if cut else "stop"
        prompt = estimate_tokens(_prompt_chars(body))
        completion = len(text.split(" "))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        rid = f"chatcmpl-echo{time.monotonic_ns():x}"
        created = int(time.time())
        if not call.stream:
            out = {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            }
            return UpstreamResponse(200, _JSON, body=orjson.dumps(out))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def chunks() -> AsyncIterator[bytes]:
            def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
                c: dict[str, Any] = {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                }
                if include_usage:
                    c["usage"] = None
                return encode_json(c)

            yield chunk({"role": "assistant", "content": ""}, None)
            for word in _words(text):
                yield chunk({"content": word}, None)
            yield chunk({}, finish)
            if include_usage:
                yield encode_json(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            yield DONE

        return UpstreamResponse(200, _SSE, chunks=chunks())

    # -- OpenAI legacy completions ---------------------------------------------------
    def _completions(self, call: UpstreamCall) -> UpstreamResponse:
        body = call.body
        model = str(body.get("model", "echo"))
        text, cut = _limit(_reply(body), body.get("max_tokens"))
        finish = "length" if cut else "stop"
        prompt = estimate_tokens(_prompt_chars(body))
        completion = len(text.split(" "))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        rid = f"cmpl-echo{time.monotonic_ns():x}"
        created = int(time.time())
        if not call.stream:
            out = {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            }
            return UpstreamResponse(200, _JSON, body=orjson.dumps(out))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def chunks() -> AsyncIterator[bytes]:
            words = _words(text)
            for i, word in enumerate(words):
                yield encode_json(
                    {
                        "id": rid,
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "text": word,
                                "logprobs": None,
                                "finish_reason": finish if i == len(words) - 1 else None,
                            }
                        ],
                    }
                )
            if include_usage:
                yield encode_json(
                    {
                        "id": rid,
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            yield DONE

        return UpstreamResponse(200, _SSE, chunks=chunks())

    # -- OpenAI embeddings -------------------------------------------------------------
    def _embeddings(self, call: UpstreamCall) -> UpstreamResponse:
        body = call.body
        raw = body.get("input")
        items: list[str]
        if isinstance(raw, str):
            items = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            items = [" ".join(map(str, raw))]
        elif isinstance(raw, list):
            items = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        else:
            items = []
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(items):
            vec = _vector(text)
            emb: Any = vec
            if b64:
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(estimate_tokens(len(t)) for t in items)
        out = {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "echo")),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return UpstreamResponse(200, _JSON, body=orjson.dumps(out))

    # -- Anthropic messages ------------------------------------------------------------
    def _messages(self, call: UpstreamCall) -> UpstreamResponse:
        body = call.body
        model = str(body.get("model", "echo"))
        text, cut = _limit(_reply(body), body.get("max_tokens"))
        stop = "max_tokens" if cut else "end_turn"
        prompt = estimate_tokens(_prompt_chars(body))
        completion = len(text.split(" "))
        mid = f"msg_echo{time.monotonic_ns():x}"
        if not call.stream:
            out = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text, "citations": None}],
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": prompt,
                    "output_tokens": completion,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            }
            return UpstreamResponse(200, _JSON, body=orjson.dumps(out))

        async def chunks() -> AsyncIterator[bytes]:
            start = {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": prompt,
                        "output_tokens": 1,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            }
            yield encode_event("message_start", orjson.dumps(start))
            yield encode_event(
                "content_block_start",
                orjson.dumps(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
            )
            yield encode_event("ping", b'{"type": "ping"}')
            for word in _words(text):
                yield encode_event(
                    "content_block_delta",
                    orjson.dumps(
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": word},
                        }
                    ),
                )
            yield encode_event("content_block_stop", b'{"type":"content_block_stop","index":0}')
            yield encode_event(
                "message_delta",
                orjson.dumps(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": completion},
                    }
                ),
            )
            yield encode_event("message_stop", b'{"type":"message_stop"}')

        return UpstreamResponse(200, _SSE, chunks=chunks())

    def _count_tokens(self, call: UpstreamCall) -> UpstreamResponse:
        count = estimate_tokens(_prompt_chars(call.body))
        return UpstreamResponse(200, _JSON, body=orjson.dumps({"input_tokens": count}))
