"""A translated stream the upstream breaks off ends as a failed stream of the
client's own API: chat with an error chunk and ``[DONE]``, Messages with
``event: error``, Responses with ``error`` and ``response.failed``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from tokgateway.common.errors import UpstreamUnavailable
from tokgateway.common.sse import SSEDecoder
from tokgateway.router import bridge
from tokgateway.router.context import RequestContext

BROKE = "Provider 'up' broke off its stream: peer closed connection."


def _chat_chunk(text: str) -> bytes:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _ant(name: str, data: dict[str, object]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


ANTHROPIC_START = (
    _ant(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        },
    )
    + _ant(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    + _ant(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    )
)


async def _run(
    plan: bridge.Plan, first: bytes
) -> tuple[list[tuple[str | None, bytes]], RequestContext]:
    async def broken() -> AsyncIterator[bytes]:
        yield first
        raise UpstreamUnavailable(BROKE)

    ctx = RequestContext()
    ctx.model = "m"
    ctx.body = {"model": "m", "input": "x", "stream": True}
    raw = b"".join([piece async for piece in plan.relay(broken(), ctx)])
    assert raw.endswith(b"\n\n")
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.flush()
    return [(ev.event, ev.data) for ev in events], ctx


async def test_chat_client_on_messages_provider_gets_error_then_done() -> None:
    events, ctx = await _run(bridge.CHAT_VIA_MESSAGES, ANTHROPIC_START)
    assert events[-1] == (None, b"[DONE]")
    error = orjson.loads(events[-2][1])["error"]
    assert error == {"message": BROKE, "type": "upstream_unavailable", "param": None, "code": None}
    assert orjson.loads(events[-3][1])["choices"][0]["delta"] == {"content": "hi"}
    assert ctx.error is not None and not ctx.upstream_complete


async def test_messages_client_on_chat_provider_gets_error_event() -> None:
    events, ctx = await _run(bridge.MESSAGES_VIA_CHAT, _chat_chunk("hi"))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "error"
    assert "message_stop" not in names and "message_delta" not in names
    assert orjson.loads(events[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": BROKE},
    }
    assert ctx.error is not None


@pytest.mark.parametrize(
    ("plan", "first"),
    [
        (bridge.RESPONSES_VIA_CHAT, _chat_chunk("hi")),
        (bridge.RESPONSES_VIA_MESSAGES, ANTHROPIC_START),
    ],
    ids=["via-chat", "via-messages"],
)
async def test_responses_client_gets_error_and_response_failed(
    plan: bridge.Plan, first: bytes
) -> None:
    events, ctx = await _run(plan, first)
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in names
    assert names[-2:] == ["error", "response.failed"]
    assert all(name is not None for name in names)  # every event is named, none is chat-shaped
    error = orjson.loads(events[-2][1])
    assert error["type"] == "error" and error["message"] == BROKE
    assert error["code"] == "server_error"
    failed = orjson.loads(events[-1][1])
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": BROKE}
    numbers = [orjson.loads(data)["sequence_number"] for _, data in events]
    assert numbers == list(range(len(events)))
    assert ctx.error is not None and ctx.final_response is None
