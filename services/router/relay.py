"""Stream relays: pass upstream SSE through to the client event by event while
metering it (time to first token, usage, in-stream errors). The usage chunk the
gateway asked for on the client's behalf is stripped again here."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from tokgateway.common.errors import ApiFormat, GatewayError, UpstreamError, stream_error_event
from tokgateway.common.sse import DONE, SSEDecoder, SSEEvent, encode_data, encode_event
from tokgateway.router.usage import Usage, from_anthropic, from_openai


@dataclass(slots=True)
class Meter:
    """What one request measured; the settle step turns it into a usage event."""

    started: float = field(default_factory=time.perf_counter)
    upstream_started: float | None = None
    upstream_headers: float | None = None
    first_chunk: float | None = None
    upstream_done: float | None = None
    usage: Usage | None = None
    content_chunks: int = 0
    content_chars: int = 0
    error: GatewayError | None = None
    in_stream_error: str | None = None
    client_gone: bool = False

    def upstream_ms(self) -> float | None:
        if self.upstream_started is None:
            return None
        end = self.upstream_done or time.perf_counter()
        return (end - self.upstream_started) * 1000.0


def _usage_present(data: bytes) -> bool:
    i = data.find(b'"usage"')
    if i < 0:
        return False
    rest = data[i + 7 : i + 16].lstrip(b": ")
    return not rest.startswith(b"null")


async def relay_openai(
    chunks: AsyncIterator[bytes], meter: Meter, *, strip_usage: bool
) -> AsyncGenerator[bytes, None]:
    """OpenAI chat/completions SSE. Ends with ``[DONE]`` even when the upstream
    closed without one."""
    decoder = SSEDecoder()
    done_sent = False
    try:
        async for raw in chunks:
            if meter.first_chunk is None:
                meter.first_chunk = time.perf_counter()
            for ev in decoder.feed(raw):
                out = _openai_event(ev.data, meter, strip_usage)
                if out is None:
                    continue
                if out is DONE:
                    done_sent = True
                yield out
        for ev in decoder.flush():
            out = _openai_event(ev.data, meter, strip_usage)
            if out is not None:
                done_sent = done_sent or out is DONE
                yield out
    except UpstreamError as err:
        meter.error = err
        yield stream_error_event(err, "openai")
    meter.upstream_done = time.perf_counter()
    if not done_sent:
        yield DONE


def _openai_event(data: bytes, meter: Meter, strip_usage: bool) -> bytes | None:
    if data == b"[DONE]":
        return DONE
    if not data:
        return None
    if b'"content":"' in data or b'"text":"' in data or b'"arguments":"' in data:
        meter.content_chunks += 1
        meter.content_chars += len(data) // 4
    if data.startswith(b'{"error"') or b'"error":{' in data[:20]:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and obj.get("error"):
            err = obj["error"]
            meter.in_stream_error = str(err.get("message") if isinstance(err, dict) else err)
    if not _usage_present(data):
        return encode_data(data)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return encode_data(data)
    if not isinstance(obj, dict):
        return encode_data(data)
    usage = from_openai(obj.get("usage"))
    if usage is not None:
        meter.usage = usage
    if not strip_usage:
        return encode_data(data)
    if not obj.get("choices"):
        return None  # the usage-only chunk the client did not ask for
    obj.pop("usage", None)
    return encode_data(orjson.dumps(obj))


async def relay_anthropic(
    chunks: AsyncIterator[bytes], meter: Meter
) -> AsyncGenerator[bytes, None]:
    """Anthropic Messages SSE; every event keeps its ``event:`` line."""
    decoder = SSEDecoder()
    try:
        async for raw in chunks:
            if meter.first_chunk is None:
                meter.first_chunk = time.perf_counter()
            for ev in decoder.feed(raw):
                yield _anthropic_event(ev.event, ev.data, meter)
        for ev in decoder.flush():
            yield _anthropic_event(ev.event, ev.data, meter)
    except UpstreamError as err:
        meter.error = err
        yield stream_error_event(err, "anthropic")
    meter.upstream_done = time.perf_counter()


def _anthropic_event(name: str | None, data: bytes, meter: Meter) -> bytes:
    kind = name
    if kind is None:
        try:
            obj: Any = orjson.loads(data)
            kind = str(obj.get("type", "message")) if isinstance(obj, dict) else "message"
        except orjson.JSONDecodeError:
            kind = "message"
    if kind in ("message_start", "message_delta", "error"):
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            if kind == "message_start":
                msg = obj.get("message") or {}
                meter.usage = from_anthropic(msg.get("usage"), meter.usage)
            elif kind == "message_delta":
                meter.usage = from_anthropic(obj.get("usage"), meter.usage)
            else:
                err = obj.get("error") or {}
                meter.in_stream_error = str(err.get("message", "upstream error"))
    elif kind == "content_block_delta":
        meter.content_chunks += 1
        meter.content_chars += len(data) // 4
    return encode_event(kind, data)


class _Translator(Protocol):
    def feed(self, event: SSEEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    @property
    def usage(self) -> Usage | None: ...

    @property
    def error(self) -> str | None: ...


async def relay_translated(
    chunks: AsyncIterator[bytes], meter: Meter, translator: _Translator, client_fmt: ApiFormat
) -> AsyncGenerator[bytes, None]:
    """Upstream SSE in one API, client SSE in another, event by event."""
    decoder = SSEDecoder()
    try:
        async for raw in chunks:
            if meter.first_chunk is None:
                meter.first_chunk = time.perf_counter()
            for ev in decoder.feed(raw):
                if ev.data and ev.data != b"[DONE]":
                    meter.content_chunks += 1
                    meter.content_chars += len(ev.data) // 4
                for out in translator.feed(ev):
                    yield out
        for ev in decoder.flush():
            for out in translator.feed(ev):
                yield out
    except UpstreamError as err:
        meter.error = err
        meter.usage = translator.usage
        meter.upstream_done = time.perf_counter()
        yield stream_error_event(err, client_fmt)
        return
    meter.upstream_done = time.perf_counter()
    for out in translator.finish():
        yield out
    meter.usage = translator.usage
    if translator.error:
        meter.in_stream_error = translator.error


async def relay_responses(
    chunks: AsyncIterator[bytes], meter: Meter
) -> AsyncGenerator[bytes, None]:
    """OpenAI Responses SSE passed through; usage read from the final event."""
    decoder = SSEDecoder()

    def one(ev: SSEEvent) -> bytes:
        name = ev.event
        if name in ("response.completed", "response.incomplete", "response.failed", "error") or (
            name is None and b'"response.completed"' in ev.data[:40]
        ):
            try:
                obj: Any = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                name = name or str(obj.get("type"))
                response = obj.get("response")
                if isinstance(response, dict):
                    meter.usage = from_openai(response.get("usage")) or meter.usage
                if name in ("response.failed", "error"):
                    meter.in_stream_error = str(obj.get("message") or name)
        elif ev.data and b"delta" in ev.data[:60]:
            meter.content_chunks += 1
            meter.content_chars += len(ev.data) // 4
        return encode_event(name, ev.data) if name else encode_data(ev.data)

    try:
        async for raw in chunks:
            if meter.first_chunk is None:
                meter.first_chunk = time.perf_counter()
            for ev in decoder.feed(raw):
                yield one(ev)
        for ev in decoder.flush():
            yield one(ev)
    except UpstreamError as err:
        meter.error = err
        payload = orjson.dumps(
            {
                "type": "error",
                "code": "upstream_error",
                "message": err.message,
                "param": None,
                "sequence_number": 0,
            }
        )
        yield encode_event("error", payload)
    meter.upstream_done = time.perf_counter()
