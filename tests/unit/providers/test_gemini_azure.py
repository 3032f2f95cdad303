"""The Gemini and Azure adapters against a local aiohttp server that records
each request (URL, headers, body) and answers with canned upstream bytes."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from tokgateway.common.errors import BadRequest
from tokgateway.common.settings import ProviderConfig
from tokgateway.common.sse import SSEDecoder
from tokgateway.router.providers.azure import DEFAULT_API_VERSION, AzureOpenAIProvider
from tokgateway.router.providers.base import UpstreamCall, UpstreamResponse
from tokgateway.router.providers.client import HTTPClient
from tokgateway.router.providers.gemini import GeminiProvider


@dataclass
class Upstream:
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    parts: list[bytes] = field(default_factory=list)  # streamed in separate writes


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append(
            {
                "path": request.rel_url.raw_path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": orjson.loads(await request.read()),
            }
        )
        if state.parts:
            resp = web.StreamResponse(status=state.status)
            resp.content_type = state.content_type
            await resp.prepare(request)
            for part in state.parts:
                await resp.write(part)
            await resp.write_eof()
            return resp
        return web.Response(status=state.status, body=state.body, content_type=state.content_type)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[HTTPClient]:
    client = HTTPClient()
    try:
        yield client
    finally:
        await client.close()


async def _read(resp: UpstreamResponse) -> bytes:
    if resp.body is not None:
        return resp.body
    assert resp.chunks is not None
    return b"".join([c async for c in resp.chunks])


def _gemini(upstream: Upstream, session: HTTPClient) -> GeminiProvider:
    config = ProviderConfig(
        name="g", kind="gemini", base_url=upstream.url + "/v1beta", api_key="gk"
    )
    return GeminiProvider(config, session, 5.0)


CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "Hi"}]}


async def test_gemini_chat(upstream: Upstream, session: HTTPClient) -> None:
    upstream.body = orjson.dumps(
        {
            "candidates": [{"content": {"parts": [{"text": "Hello"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1},
            "responseId": "x1",
        }
    )
    resp = await _gemini(upstream, session).send(UpstreamCall("chat", dict(CHAT)))
    seen = upstream.seen[0]
    assert seen["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen["headers"]["x-goog-api-key"] == "gk"
    assert seen["body"] == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    body = orjson.loads(await _read(resp))
    assert resp.status == 200 and resp.headers["content-type"] == "application/json"
    assert body["choices"][0]["message"]["content"] == "Hello"
    assert body["usage"]["total_tokens"] == 3
    assert body["id"] == "chatcmpl-x1"


async def test_gemini_stream(upstream: Upstream, session: HTTPClient) -> None:
    first = {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "responseId": "s"}
    last = {
        "candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
        "responseId": "s",
    }
    raw = b"data: " + orjson.dumps(first) + b"\r\n\r\ndata: " + orjson.dumps(last) + b"\r\n\r\n"
    upstream.content_type = "text/event-stream"
    upstream.parts = [raw[:17], raw[17:60], raw[60:]]  # events split across reads
    call = UpstreamCall("chat", {**CHAT, "stream_options": {"include_usage": True}}, stream=True)
    resp = await _gemini(upstream, session).send(call)
    assert upstream.seen[0]["path"].endswith(":streamGenerateContent")
    assert upstream.seen[0]["query"] == {"alt": "sse"}
    assert resp.headers["content-type"] == "text/event-stream"
    data = await _read(resp)
    await resp.close()
    dec = SSEDecoder()
    events = [e.data for e in dec.feed(data) + dec.flush()]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 4


async def test_gemini_error_becomes_openai_shape(upstream: Upstream, session: HTTPClient) -> None:
    upstream.status = 400
    upstream.body = orjson.dumps(
        {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}
    )
    resp = await _gemini(upstream, session).send(UpstreamCall("chat", dict(CHAT), stream=True))
    assert resp.status == 400 and resp.chunks is None
    assert orjson.loads(await _read(resp)) == {
        "error": {
            "message": "API key not valid.",
            "type": "invalid_request_error",
            "param": None,
            "code": "INVALID_ARGUMENT",
        }
    }


async def test_gemini_embeddings(upstream: Upstream, session: HTTPClient) -> None:
    upstream.body = orjson.dumps({"embeddings": [{"values": [0.5, -1.0]}, {"values": [2.0, 0.0]}]})
    call = UpstreamCall(
        "embeddings",
        {"model": "text-embedding-004", "input": ["ab", "cdef"], "encoding_format": "base64"},
    )
    resp = await _gemini(upstream, session).send(call)
    seen = upstream.seen[0]
    assert seen["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert seen["body"]["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "cdef"}]},
    }
    body = orjson.loads(await _read(resp))
    vector = struct.unpack("<2f", base64.b64decode(body["data"][0]["embedding"]))
    assert vector == (0.5, -1.0)
    assert body["object"] == "list" and body["usage"]["prompt_tokens"] == 2


async def test_gemini_rejects_other_endpoints(session: HTTPClient) -> None:
    config = ProviderConfig(name="g", kind="gemini", base_url="")
    provider = GeminiProvider(config, session, 5.0)
    assert provider.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert not provider.supports("messages")
    with pytest.raises(BadRequest):
        await provider.send(UpstreamCall("completions", {"model": "x", "prompt": "a"}))


def _azure(
    upstream: Upstream, session: HTTPClient, base: str = "", **kw: Any
) -> AzureOpenAIProvider:
    config = ProviderConfig(name="az", kind="azure", base_url=upstream.url + base, api_key="ak")
    return AzureOpenAIProvider(config, session, 5.0, **kw)


async def test_azure_chat_and_embeddings(upstream: Upstream, session: HTTPClient) -> None:
    upstream.body = b'{"ok": true}'
    provider = _azure(upstream, session)
    await provider.send(UpstreamCall("chat", {"model": "gpt4o-prod", "messages": []}))
    await provider.send(UpstreamCall("embeddings", {"model": "emb/1", "input": "x"}))
    chat, emb = upstream.seen
    assert chat["path"] == "/openai/deployments/gpt4o-prod/chat/completions"
    assert chat["query"] == {"api-version": DEFAULT_API_VERSION}
    assert chat["headers"]["api-key"] == "ak" and "authorization" not in chat["headers"]
    assert emb["path"] == "/openai/deployments/emb%2F1/embeddings"
    assert provider.supports("embeddings") and not provider.supports("responses")


async def test_azure_version_from_base_url_and_v1(upstream: Upstream, session: HTTPClient) -> None:
    upstream.body = b"{}"
    preview = _azure(upstream, session, "/openai/?api-version=2025-01-01-preview")
    await preview.send(UpstreamCall("chat", {"model": "d", "messages": []}))
    assert upstream.seen[-1]["path"] == "/openai/deployments/d/chat/completions"
    assert upstream.seen[-1]["query"] == {"api-version": "2025-01-01-preview"}
    v1 = _azure(upstream, session, "/openai/v1")
    await v1.send(UpstreamCall("responses", {"model": "d", "input": "x"}))
    assert upstream.seen[-1]["path"] == "/openai/v1/responses" and upstream.seen[-1]["query"] == {}
    explicit = _azure(upstream, session, api_version="2024-06-01")
    assert explicit.api_version == "2024-06-01" and explicit.supports("chat")
