"""Stream relays: pass upstream SSE through to the client event by event while
metering it (time to first token, usage, in-stream errors). The usage chunk the
gateway asked for on the client's behalf is stripped again here."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from tokgateway.common.errors import ApiFormat, GatewayError, UpstreamError, stream_error_event
from tokgateway.common.sse import (
    DONE,
    EventRuns,
    SSEDecoder,
    SSEEvent,
    encode_data,
    encode_event,
)
from tokgateway.router.usage import Usage, from_anthropic, from_openai

HOLD_LIMIT = 256 * 1024


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
    upstream_complete: bool = False  # the upstream finished its answer
    held: list[bytes] = field(default_factory=list)  # relayed, not yet counted
    held_size: int = 0

    def hold(self, data: bytes) -> None:
        """Keep relayed events to count their text only if the upstream ends
        up reporting no usage (most do, so the counting is mostly skipped);
        past ``HOLD_LIMIT`` bytes they are counted at once and let go."""
        self.held.append(data)
        self.held_size += len(data)
        if self.held_size > HOLD_LIMIT:
            self.count_held()

    def count_held(self) -> None:
        for data in self.held:
            count_content(data, self)
        self.held = []
        self.held_size = 0

    def upstream_ms(self) -> float | None:
        if self.upstream_started is None:
            return None
        end = self.upstream_done or time.perf_counter()
        return (end - self.upstream_started) * 1000.0


# The strings a streamed answer is made of, whitespace after the colon or not.
_CONTENT = re.compile(
    rb'"(?:content|text|arguments|partial_json|thinking|refusal|delta)"\s*:\s*"((?:[^"\\]|\\.)*)"'
)


def count_content(data: bytes, meter: Meter) -> None:
    """Meter the generated text of one or more events, for when the upstream
    reports no usage: every non-empty text field counts as one chunk."""
    for match in _CONTENT.finditer(data):
        size = match.end(1) - match.start(1)
        if size:
            meter.content_chunks += 1
            meter.content_chars += size


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

    def __init__(self, meter: Meter, strip_usage: bool) -> None:
        self.meter = meter
        self.strip_usage = strip_usage
        self.started_calls: set[tuple[int, int]] = set()

    def event(self, data: bytes) -> bytes | None:
        meter = self.meter
        if data == b"[DONE]":
            meter.upstream_complete = True
            return DONE
        if not data:
            return None
        count_content(data, meter)
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
                meter.usage = usage
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
            self.meter.in_stream_error = str(err.get("message") if isinstance(err, dict) else err)

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
    meter: Meter,
    special: Callable[[bytes, int], int],
    convert: Callable[[SSEEvent], bytes | None],
) -> AsyncGenerator[bytes, None]:
    """One write per upstream read: runs of ordinary events as they came, the
    events ``special`` points at decoded and passed through ``convert`` (None
    drops one)."""
    decoder = SSEDecoder()
    runs = EventRuns(special)
    async for raw in chunks:
        if meter.first_chunk is None:
            meter.first_chunk = time.perf_counter()
        plain, coded = runs.split(raw)
        batch = []
        if plain:
            meter.hold(plain)
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


async def relay_openai(
    chunks: AsyncIterator[bytes], meter: Meter, *, strip_usage: bool
) -> AsyncGenerator[bytes, None]:
    """OpenAI chat/completions SSE. Ends with ``[DONE]`` even when the upstream
    closed without one."""
    filt = _OpenAIFilter(meter, strip_usage)
    done_sent = False

    def convert(ev: SSEEvent) -> bytes | None:
        nonlocal done_sent
        out = filt.event(ev.data)
        done_sent = done_sent or out is DONE
        return out

    try:
        async with aclosing(_pass_through(chunks, meter, _openai_special, convert)) as pieces:
            async for piece in pieces:
                yield piece
    except UpstreamError as err:
        meter.error = err
        yield stream_error_event(err, "openai")
    meter.upstream_done = time.perf_counter()
    if not done_sent:
        meter.upstream_complete = meter.error is None
        yield DONE


async def relay_anthropic(
    chunks: AsyncIterator[bytes], meter: Meter
) -> AsyncGenerator[bytes, None]:
    """Anthropic Messages SSE; every event keeps its ``event:`` line."""

    def convert(ev: SSEEvent) -> bytes:
        return _anthropic_event(ev.event, ev.data, meter)

    try:
        async with aclosing(_pass_through(chunks, meter, _anthropic_special, convert)) as pieces:
            async for piece in pieces:
                yield piece
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
        count_content(data, meter)
    elif kind == "message_stop":
        meter.upstream_complete = True
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

    def convert(ev: SSEEvent) -> bytes:
        if ev.data == b"[DONE]" or ev.event == "message_stop":
            meter.upstream_complete = True
        elif ev.data:
            count_content(ev.data, meter)
        return b"".join(translator.feed(ev))

    try:
        async with aclosing(_pass_through(chunks, meter, _every_event, convert)) as pieces:
            async for piece in pieces:
                yield piece
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
                    meter.upstream_complete = True
                if name in ("response.failed", "error"):
                    meter.in_stream_error = str(obj.get("message") or name)
        elif ev.data and b"delta" in ev.data[:60]:
            count_content(ev.data, meter)
        return encode_event(name, ev.data) if name else encode_data(ev.data)

    try:
        async with aclosing(_pass_through(chunks, meter, _every_event, one)) as pieces:
            async for piece in pieces:
                yield piece
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
