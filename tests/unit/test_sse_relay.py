from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from tokgateway.common.errors import UpstreamUnavailable
from tokgateway.common.sse import SSEDecoder
from tokgateway.router.relay import Meter, relay_anthropic, relay_openai


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
    meter = Meter()
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
    meter = Meter()
    out = await _collect(
        relay_openai(_gen([_chunk("x"), _chunk(None, USAGE, False)]), meter, strip_usage=False)
    )
    assert b'"usage"' in out[1] and out[-1] == b"data: [DONE]\n\n"


async def test_openai_relay_removes_usage_from_content_chunk_when_stripping() -> None:
    meter = Meter()
    out = await _collect(relay_openai(_gen([_chunk("x", USAGE)]), meter, strip_usage=True))
    assert b"usage" not in out[0] and b'"x"' in out[0]
    assert meter.usage is not None and meter.usage.prompt_tokens == 3


async def test_upstream_failure_mid_stream_becomes_error_event() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield _chunk("x")
        raise UpstreamUnavailable("provider went away")

    meter = Meter()
    out = await _collect(relay_openai(broken(), meter, strip_usage=True))
    assert orjson.loads(out[1][6:])["error"]["message"] == "provider went away"
    meter2 = Meter()
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
    meter = Meter()
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
    meter = Meter()
    await _collect(relay_openai(_gen([spaced, spaced]), meter, strip_usage=True))
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
    meter = Meter()
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

    meter = Meter()
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
