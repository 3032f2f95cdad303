"""Google Gemini (kind ``gemini``) through its native API, presented to the
router as an OpenAI Chat / Embeddings upstream: OpenAI bodies go in, Gemini
``generateContent`` / ``streamGenerateContent?alt=sse`` / ``batchEmbedContents``
go out, and answers, streams and errors come back in OpenAI shape. The format
work is in :mod:`tokgateway.router.translate.gemini`; this module only does I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tokgateway.common.errors import BadRequest
from tokgateway.common.settings import ProviderConfig
from tokgateway.common.sse import SSEDecoder, SSEEvent
from tokgateway.router.providers.base import UpstreamCall, UpstreamResponse
from tokgateway.router.providers.client import HTTPClient
from tokgateway.router.providers.http import HttpProvider
from tokgateway.router.translate import gemini

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream"}


@dataclass(slots=True)
class _GeminiCall(UpstreamCall):
    """An upstream call whose URL was already worked out from the model."""

    url: str = ""


class GeminiProvider(HttpProvider):
    api_format = "openai"
    endpoints = frozenset({"chat", "embeddings"})

    def __init__(self, config: ProviderConfig, client: HTTPClient, read_timeout: float) -> None:
        super().__init__(config, client, read_timeout)
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        if self.config.api_key:
            return {"x-goog-api-key": self.config.api_key}
        return {}

    def url(self, call: UpstreamCall) -> str:
        if isinstance(call, _GeminiCall):
            return call.url
        raise BadRequest(f"Provider {self.name!r} does not serve {call.endpoint}.")

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        model = call.body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required.", param="model")
        path = f"{self.base_url}/{gemini.model_path(model)}"
        if call.endpoint == "embeddings":
            body = gemini.embeddings_request_to_gemini(call.body, model)
            resp = await super().send(
                _GeminiCall(
                    "embeddings", body, False, call.headers, url=f"{path}:batchEmbedContents"
                )
            )
            return _translate_body(
                resp, lambda data: gemini.gemini_embeddings_to_openai(data, call.body, model)
            )
        if call.endpoint != "chat":
            raise BadRequest(f"Provider {self.name!r} does not serve {call.endpoint}.")
        body = gemini.chat_request_to_gemini(call.body)
        action = ":streamGenerateContent?alt=sse" if call.stream else ":generateContent"
        resp = await super().send(
            _GeminiCall("chat", body, call.stream, call.headers, url=path + action)
        )
        if resp.chunks is None:
            return _translate_body(resp, lambda data: gemini.gemini_response_to_chat(data, model))
        opts = call.body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        translator = gemini.GeminiToChatStream(model, include_usage)
        return UpstreamResponse(
            resp.status,
            _headers(resp, _SSE),
            chunks=_chat_stream(resp.chunks, translator),
            close=resp.close,
        )


def _headers(resp: UpstreamResponse, kind: dict[str, str]) -> dict[str, str]:
    headers = {k: v for k, v in resp.headers.items() if k not in ("content-length", "content-type")}
    headers.update(kind)
    return headers


def _translate_body(
    resp: UpstreamResponse, convert: Callable[[dict[str, Any]], dict[str, Any]]
) -> UpstreamResponse:
    raw = resp.body or b""
    if resp.status >= 300:
        return UpstreamResponse(
            resp.status, _headers(resp, _JSON), body=gemini.gemini_error_to_openai(raw)
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UpstreamResponse(resp.status, resp.headers, body=raw)
    if not isinstance(data, dict):
        return UpstreamResponse(resp.status, resp.headers, body=raw)
    return UpstreamResponse(resp.status, _headers(resp, _JSON), body=orjson.dumps(convert(data)))


async def _chat_stream(
    chunks: AsyncIterator[bytes], translator: gemini.GeminiToChatStream
) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    try:
        async for raw in chunks:
            out = _events(decoder.feed(raw), translator)
            if out:
                yield out
        out = _events(decoder.flush(), translator) + b"".join(translator.finish())
        yield out
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def _events(events: list[SSEEvent], translator: gemini.GeminiToChatStream) -> bytes:
    out: list[bytes] = []
    for ev in events:
        if not ev.data.strip():
            continue
        try:
            data = ev.json()
        except orjson.JSONDecodeError:
            data = {"error": {"message": "Gemini sent an event that is not JSON.", "status": ""}}
        out += translator.feed(data)
    return b"".join(out)
