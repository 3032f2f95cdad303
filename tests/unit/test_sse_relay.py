from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from tokgateway.common.errors import UpstreamUnavailable
from tokgateway.common.sse import EventRuns, SSEDecoder
from tokgateway.router.context import RequestContext
from tokgateway.router.relay import relay_anthropic, relay_openai


def test_decoder_handles_split_events_and_line_ends() -> None:
    dec = SSEDecoder()
    events = dec.feed(b'data: {"a"')
    assert events == []
    events = dec.feed(b": 1}\r\n\r\n: comment\n\nevent: x\rdata:y\r")
    events += dec.feed(b"\ndata: z\n\n")
    assert [(e.event, e.data) for e in events] == [(None, b'{"a": 1}'), ("x", b"y\nz")]


async def _gen(parts: list[bytes]) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def _chunk(content: str | None, usage: dict[str, int] | None = None, choices: bool = True) -> bytes:
    obj: dict[str, object] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
    }
    if choices:
        obj["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _collect(gen: AsyncIterator[bytes]) -> list[bytes]:
    return [x async for x in gen]


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def test_openai_relay_strips_usage_chunk_and_meters() -> None:
    meter = RequestContext()
    parts = [
        _chunk("he"),
        _chunk("llo")[:10],
        _chunk("llo")[10:],
        _chunk(None, USAGE, False),
        b"data: [DONE]\n\n",
    ]
    out = await _collect(relay_openai(_gen(parts), meter, strip_usage=True))
    assert out[-1] == b"data: [DONE]\n\n"
    assert len(out) == 3 and all(b"usage" not in o for o in out)
    assert meter.usage is not None and meter.usage.completion_tokens == 2
    assert meter.first_chunk is not None


async def test_openai_relay_keeps_usage_when_asked_and_adds_missing_done() -> None:
    meter = RequestContext()
    out = await _collect(
        relay_openai(_gen([_chunk("x"), _chunk(None, USAGE, False)]), meter, strip_usage=False)
    )
    assert b'"usage"' in out[1] and out[-1] == b"data: [DONE]\n\n"


async def test_openai_relay_removes_usage_from_content_chunk_when_stripping() -> None:
    meter = RequestContext()
    out = await _collect(relay_openai(_gen([_chunk("x", USAGE)]), meter, strip_usage=True))
    assert b"usage" not in out[0] and b'"x"' in out[0]
    assert meter.usage is not None and meter.usage.prompt_tokens == 3


async def test_upstream_failure_mid_stream_becomes_error_event() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield _chunk("x")
        raise UpstreamUnavailable("provider went away")

    meter = RequestContext()
    out = await _collect(relay_openai(broken(), meter, strip_usage=True))
    assert orjson.loads(out[1][6:])["error"]["message"] == "provider went away"
    meter2 = RequestContext()
    out2 = await _collect(relay_anthropic(broken(), meter2))
    assert out2[-1].startswith(b"event: error\ndata: ")
    assert meter.error is not None and meter2.error is not None


async def test_anthropic_relay_cumulative_usage_and_event_names() -> None:
    start = {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 10,
                "output_tokens": 1,
                "cache_read_input_tokens": 4,
                "cache_creation_input_tokens": 2,
            }
        },
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 7},
    }
    parts = [
        b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n",
        b"data: " + orjson.dumps(delta) + b"\n\n",
    ]  # event line missing upstream
    meter = RequestContext()
    out = await _collect(relay_anthropic(_gen(parts), meter))
    assert out[1].startswith(b"event: message_delta\n")
    u = meter.usage
    assert u is not None
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens, u.completion_tokens) == (
        16,
        4,
        2,
        7,
    )


async def test_estimate_counts_content_with_spaced_json() -> None:
    spaced = b'data: {"choices": [{"index": 0, "delta": {"content": "Answer \\"here\\""}}]}\n\n'
    meter = RequestContext()
    await _collect(relay_openai(_gen([spaced, spaced]), meter, strip_usage=True))
    meter.count_held()  # what settle does when no usage came
    assert meter.content_chunks == 2
    assert meter.content_chars == 2 * len(b'Answer \\"here\\"')
    assert meter.upstream_complete  # closed cleanly without [DONE]


def _tool_delta(args: str, repeat: bool, legacy: bool = False) -> bytes:
    call: dict[str, object] = {
        "index": 0,
        "id": "call_x",
        "type": "function",
        "function": {"name": "get_weather", "arguments": args},
    }
    delta: dict[str, object] = {"tool_calls": [call]}
    if legacy:
        delta["function_call"] = {"name": "get_weather", "arguments": args}
    obj = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def test_repeated_tool_call_fields_are_sent_once() -> None:
    parts = [
        _tool_delta('{"ci', True, legacy=True),
        _tool_delta('ty": "Paris"}', True, True),
        b"data: [DONE]\n\n",
    ]
    meter = RequestContext()
    out = await _collect(relay_openai(_gen(parts), meter, strip_usage=True))
    first = orjson.loads(out[0][6:])["choices"][0]["delta"]
    second = orjson.loads(out[1][6:])["choices"][0]["delta"]
    assert "function_call" not in first and "function_call" not in second
    assert first["tool_calls"][0]["id"] == "call_x"
    assert first["tool_calls"][0]["function"]["name"] == "get_weather"
    assert second["tool_calls"][0] == {"index": 0, "function": {"arguments": 'ty": "Paris"}'}}
    assert meter.upstream_complete


async def test_stream_incomplete_when_upstream_breaks() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield _chunk("x")
        raise UpstreamUnavailable("gone")

    meter = RequestContext()
    await _collect(relay_openai(broken(), meter, strip_usage=True))
    assert not meter.upstream_complete


def test_usage_object_cut_from_a_large_body() -> None:
    from tokgateway.router.usage import usage_object

    body = {
        "object": "list",
        "data": [{"embedding": [0.5] * 2000, "usage": "not this"}],
        "usage": {
            "prompt_tokens": 6,
            "total_tokens": 6,
            "prompt_tokens_details": {"cached_tokens": 1},
        },
    }
    raw = orjson.dumps(body)
    assert usage_object(raw) == body["usage"]
    spaced = raw.replace(b'"usage":{', b'"usage" : {')
    assert usage_object(spaced) == body["usage"]
    assert usage_object(b'{"data": [1, 2]}') is None
    assert usage_object(b'{"usage": null}') is None


def _events(data: bytes) -> list[tuple[str | None, bytes]]:
    dec = SSEDecoder()
    return [(e.event, e.data) for e in dec.feed(data) + dec.flush()]


def _openai_stream(crlf: bool = False) -> bytes:
    """As OpenAI sends it with include_usage: ``"usage": null`` on every chunk,
    a keep-alive comment, a tool call, the usage chunk, the end marker."""
    parts = [b": keep-alive\n\n"]
    for word in ("Hel", "lo", " there"):
        parts.append(_chunk(word).replace(b'"choices"', b'"usage":null,"choices"'))
    call = {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function"}]}}
        ]
    }
    parts += [b"data: " + orjson.dumps(call) + b"\n\n", _chunk("!")]
    parts += [_chunk(None, USAGE, False), b"data: [DONE]\n\n"]
    raw = b"".join(parts)
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def _anthropic_stream() -> bytes:
    def ev(name: str, obj: dict[str, object]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    usage = {"input_tokens": 9, "output_tokens": 1}
    parts = [ev("message_start", {"type": "message_start", "message": {"usage": usage}})]
    parts.append(ev("content_block_start", {"type": "content_block_start", "index": 0}))
    parts.append(ev("ping", {"type": "ping"}))
    for word in ("Hel", "lo", " there"):
        delta = {"type": "text_delta", "text": word}
        parts.append(ev("content_block_delta", {"type": "content_block_delta", "delta": delta}))
    parts.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    parts.append(ev("message_delta", {"type": "message_delta", "usage": {"output_tokens": 4}}))
    parts.append(ev("message_stop", {"type": "message_stop"}))
    return b"".join(parts)


Events = list[tuple[str | None, bytes]]


async def _relay_splits(raw: bytes, relay: str) -> list[tuple[Events, RequestContext]]:
    """The relay's output events and meter for the stream read whole and cut
    at every position into two reads and into reads of 7 bytes."""
    cuts = [[raw]] + [[raw[:i], raw[i:]] for i in range(1, len(raw))]
    cuts.append([raw[i : i + 7] for i in range(0, len(raw), 7)])
    results = []
    for parts in cuts:
        meter = RequestContext()
        if relay == "openai":
            gen = relay_openai(_gen(parts), meter, strip_usage=True)
        else:
            gen = relay_anthropic(_gen(parts), meter)
        out = b"".join(await _collect(gen))
        results.append((_events(out), meter))
    return results


async def test_openai_relay_output_does_not_depend_on_how_reads_are_cut() -> None:
    for crlf in (False, True):
        results = await _relay_splits(_openai_stream(crlf), "openai")
        first_events, first_meter = results[0]
        assert first_events[-1] == (None, b"[DONE]")
        assert not any(b'"usage":{' in data for _, data in first_events)  # stripped
        assert sum(b'"id":"c1"' in data for _, data in first_events) == 1
        for events, meter in results:
            assert events == first_events
            assert meter.usage == first_meter.usage and meter.usage is not None
            meter.count_held()
            assert (meter.content_chunks, meter.content_chars) == (4, 12)
            assert meter.upstream_complete


async def test_anthropic_relay_output_does_not_depend_on_how_reads_are_cut() -> None:
    raw = _anthropic_stream()
    results = await _relay_splits(raw, "anthropic")
    assert results[0][0] == _events(raw)  # passed on unchanged, event names kept
    for events, meter in results:
        assert events == _events(raw)
        assert meter.usage is not None
        assert (meter.usage.prompt_tokens, meter.usage.completion_tokens) == (9, 4)
        meter.count_held()
        assert (meter.content_chunks, meter.content_chars) == (3, 11)
        assert meter.upstream_complete


def test_event_runs_pass_plain_events_and_decode_from_the_first_special() -> None:
    def special(buf: bytes, end: int) -> int:
        return buf.find(b"SPECIAL", 0, end)

    runs = EventRuns(special)
    assert runs.split(b"data: a\n\ndata: b") == (b"data: a\n\n", b"")
    assert runs.split(b"\n\ndata: SPECIAL\n\ndata: c\n\ndata: d") == (
        b"data: b\n\n",
        b"data: SPECIAL\n\ndata: c\n\n",
    )
    assert runs.rest() == b"data: d"
    runs = EventRuns(special)
    assert runs.split(b"data: a\r\n\r\n") == (b"", b"data: a\r\n\r\n")
    assert runs.split(b"data: b\n\n") == (b"", b"data: b\n\n")  # decoded from then on
