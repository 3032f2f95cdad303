"""Stream relays: pass upstream SSE through to the client event by event while
metering it (time to first token, usage, in-stream errors). The usage chunk the
gateway asked for on the client's behalf is stripped again here."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, Protocol

import orjson

from tokgateway.common.errors import GatewayError, UpstreamError, stream_error_event
from tokgateway.common.sse import (
    DONE,
    EventRuns,
    SSEDecoder,
    SSEEvent,
    encode_data,
    encode_event,
)
from tokgateway.router.context import RequestContext, count_content
from tokgateway.router.usage import Usage, from_anthropic, from_openai

_USAGE_SET = re.compile(rb'"usage"\s*:\s*[^n\s]')


def _openai_special(buf: bytes, end: int) -> int:
    """Where the first event the OpenAI relay must look into starts to show,
    or -1: tool calls (repaired), a usage that is not null (metered, perhaps
    stripped), errors, the end marker. Everything else passes as it came."""
    first = end
    for marker in (b'"tool_calls"', b'"error"', b"[DONE]"):
        i = buf.find(marker, 0, first)
        if i >= 0:
            first = i
    usage = _USAGE_SET.search(buf, 0, first)
    if usage is not None:
        first = usage.start()
    return first if first < end else -1


def _anthropic_special(buf: bytes, end: int) -> int:
    """The same for Anthropic: message_start/_delta/_stop (usage and the end),
    errors, and events without an ``event:`` line (the relay names them)."""
    if buf.startswith(b"data"):
        return 0
    first = end
    for marker in (b"message_", b'"error"', b"\n\ndata"):
        i = buf.find(marker, 0, first)
        if i >= 0:
            first = i
    return first if first < end else -1


def _every_event(buf: bytes, end: int) -> int:
    """For relays that look into every event."""
    return 0


class _OpenAIFilter:
    """Per-stream state of the OpenAI relay: strips the usage chunk the client
    did not ask for, and repairs tool-call deltas of servers that repeat ``id``,
    ``type`` and ``function.name`` in every delta (the SDK helpers concatenate
    them) or send a legacy ``function_call`` beside ``tool_calls``."""

    def __init__(self, ctx: RequestContext, strip_usage: bool) -> None:
        self.ctx = ctx
        self.strip_usage = strip_usage
        self.started_calls: set[tuple[int, int]] = set()

    def event(self, data: bytes) -> bytes | None:
        ctx = self.ctx
        if data == b"[DONE]":
            ctx.upstream_complete = True
            return DONE
        if not data:
            return None
        count_content(data, ctx)
        if b'"error"' in data[:20]:
            self._error(data)
        tools = b'"tool_calls"' in data
        if not tools and _USAGE_SET.search(data) is None:
            return encode_data(data)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return encode_data(data)
        if not isinstance(obj, dict):
            return encode_data(data)
        changed = self._repair_tool_calls(obj) if tools else False
        if obj.get("usage") is not None:
            usage = from_openai(obj.get("usage"))
            if usage is not None:
                ctx.usage = usage
            if self.strip_usage:
                if not obj.get("choices"):
                    return None  # the usage-only chunk the client did not ask for
                obj.pop("usage", None)
                changed = True
        return encode_data(orjson.dumps(obj)) if changed else encode_data(data)

    def _error(self, data: bytes) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(obj, dict) and obj.get("error"):
            err = obj["error"]
            self.ctx.in_stream_error = str(err.get("message") if isinstance(err, dict) else err)

    def _repair_tool_calls(self, obj: dict[str, Any]) -> bool:
        changed = False
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict) or not isinstance(delta.get("tool_calls"), list):
                continue
            if "function_call" in delta:
                del delta["function_call"]
                changed = True
            for pos, call in enumerate(delta["tool_calls"]):
                if not isinstance(call, dict):
                    continue
                if not isinstance(call.get("index"), int):
                    call["index"] = pos
                    changed = True
                key = (int(choice.get("index") or 0), call["index"])
                if key not in self.started_calls:
                    self.started_calls.add(key)
                    continue
                for field_name in ("id", "type"):
                    if field_name in call:
                        del call[field_name]
                        changed = True
                fn = call.get("function")
                if isinstance(fn, dict) and "name" in fn:
                    del fn["name"]
                    changed = True
        return changed


async def _pass_through(
    chunks: AsyncIterator[bytes],
    ctx: RequestContext,
    special: Callable[[bytes, int], int],
    convert: Callable[[SSEEvent], bytes | None],
) -> AsyncGenerator[bytes, None]:
    """One write per upstream read: runs of ordinary events as they came, the
    events ``special`` points at decoded and passed through ``convert`` (None
    drops one)."""
    decoder = SSEDecoder()
    runs = EventRuns(special)
    try:
        async for raw in chunks:
            if ctx.first_chunk is None:
                ctx.first_chunk = time.perf_counter()
            plain, coded = runs.split(raw)
            batch = []
            if plain:
                ctx.hold(plain)
                batch.append(plain)
            for ev in decoder.feed(coded) if coded else ():
                out = convert(ev)
                if out is not None:
                    batch.append(out)
            if batch:
                yield b"".join(batch)
        tail = [convert(ev) for ev in decoder.feed(runs.rest()) + decoder.flush()]
        rest = b"".join([out for out in tail if out is not None])
        if rest:
            yield rest
    finally:
        ctx.finish_counting()  # however the stream ended: its end time and its text


async def relay_openai(
    chunks: AsyncIterator[bytes], ctx: RequestContext, *, strip_usage: bool
) -> AsyncGenerator[bytes, None]:
    """OpenAI chat/completions SSE. Ends with ``[DONE]`` even when the upstream
    closed without one."""
    filt = _OpenAIFilter(ctx, strip_usage)
    done_sent = False

    def convert(ev: SSEEvent) -> bytes | None:
        nonlocal done_sent
        out = filt.event(ev.data)
        done_sent = done_sent or out is DONE
        return out

    try:
        async with aclosing(_pass_through(chunks, ctx, _openai_special, convert)) as pieces:
            async for piece in pieces:
                yield piece
    except UpstreamError as err:
        ctx.error = err
        yield stream_error_event(err, "openai")
    ctx.upstream_done = time.perf_counter()
    if not done_sent:
        ctx.upstream_complete = ctx.error is None
        yield DONE


async def relay_anthropic(
    chunks: AsyncIterator[bytes], ctx: RequestContext
) -> AsyncGenerator[bytes, None]:
    """Anthropic Messages SSE; every event keeps its ``event:`` line."""

    def convert(ev: SSEEvent) -> bytes:
        return _anthropic_event(ev.event, ev.data, ctx)

    try:
        async with aclosing(_pass_through(chunks, ctx, _anthropic_special, convert)) as pieces:
            async for piece in pieces:
                yield piece
    except UpstreamError as err:
        ctx.error = err
        yield stream_error_event(err, "anthropic")
    ctx.upstream_done = time.perf_counter()


def _anthropic_event(name: str | None, data: bytes, ctx: RequestContext) -> bytes:
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
                ctx.usage = from_anthropic(msg.get("usage"), ctx.usage)
            elif kind == "message_delta":
                ctx.usage = from_anthropic(obj.get("usage"), ctx.usage)
            else:
                err = obj.get("error") or {}
                ctx.in_stream_error = str(err.get("message", "upstream error"))
    elif kind == "content_block_delta":
        count_content(data, ctx)
    elif kind == "message_stop":
        ctx.upstream_complete = True
    return encode_event(kind, data)


class StreamTranslator(Protocol):
    """Turns the upstream's events into the client's API, one event at a time."""

    def feed(self, event: SSEEvent) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    def fail(self, err: GatewayError) -> list[bytes]:
        """Instead of :meth:`finish` when the upstream broke off: the error
        and whatever else ends a failed stream in the client's API."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def final_response(self) -> dict[str, Any] | None:
        """The whole Responses object once a Responses stream has finished."""


async def relay_translated(
    chunks: AsyncIterator[bytes], ctx: RequestContext, translator: StreamTranslator
) -> AsyncGenerator[bytes, None]:
    """Upstream SSE in one API, client SSE in another, event by event. A
    stream the upstream broke off ends as a failed stream of the client's API
    does (chat: an error chunk and ``[DONE]``; Messages: ``event: error``;
    Responses: ``error`` and ``response.failed``)."""

    def convert(ev: SSEEvent) -> bytes:
        if ev.data == b"[DONE]" or ev.event == "message_stop":
            ctx.upstream_complete = True
        elif ev.data:
            count_content(ev.data, ctx)
        return b"".join(translator.feed(ev))

    try:
        async with aclosing(_pass_through(chunks, ctx, _every_event, convert)) as pieces:
            async for piece in pieces:
                yield piece
    except UpstreamError as err:
        ctx.error = err
        ctx.usage = translator.usage
        ctx.upstream_done = time.perf_counter()
        failed = b"".join(translator.fail(err))
        if failed:
            yield failed
        return
    ctx.upstream_done = time.perf_counter()
    for out in translator.finish():
        yield out
    ctx.usage = translator.usage
    ctx.final_response = translator.final_response
    if translator.error:
        ctx.in_stream_error = translator.error


async def relay_responses(
    chunks: AsyncIterator[bytes], ctx: RequestContext
) -> AsyncGenerator[bytes, None]:
    """OpenAI Responses SSE passed through; usage read from the final event."""

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
                    ctx.usage = from_openai(response.get("usage")) or ctx.usage
                    ctx.upstream_complete = True
                if name in ("response.failed", "error"):
                    ctx.in_stream_error = str(obj.get("message") or name)
        elif ev.data and b"delta" in ev.data[:60]:
            count_content(ev.data, ctx)
        return encode_event(name, ev.data) if name else encode_data(ev.data)

    try:
        async with aclosing(_pass_through(chunks, ctx, _every_event, one)) as pieces:
            async for piece in pieces:
                yield piece
    except UpstreamError as err:
        ctx.error = err
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
    ctx.upstream_done = time.perf_counter()
