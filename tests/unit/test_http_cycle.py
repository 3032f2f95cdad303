"""The gateway's response writer against uvicorn's: the same bytes on the wire
for the answers the gateway gives, and no header that could split a line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from tokgateway.common.http import HEADER_LINES, BytesResponse
from tokgateway.http_cycle import GuardedCycle


class Wire:
    """A transport that keeps what was written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data
        self.writes += 1

    def writelines(self, parts: Any) -> None:
        for part in parts:
            self.data += part
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def cycle(kind: type[RequestResponseCycle], *, method: str = "POST", keep_alive: bool = True):
    wire = Wire()
    done: list[bool] = []
    made = kind(
        scope={  # type: ignore[typeddict-item]
            "type": "http",
            "method": method,
            "path": "/v1/chat/completions",
            "query_string": b"",
            "http_version": "1.1",
            "client": ("127.0.0.1", 5000),
            "root_path": "",
        },
        transport=wire,  # type: ignore[arg-type]
        flow=FlowControl(wire),  # type: ignore[arg-type]
        logger=logging.getLogger("test.cycle"),
        access_logger=logging.getLogger("test.cycle.access"),
        access_log=False,
        default_headers=[(b"date", b"Thu, 03 Dec 2026 13:00:00 GMT"), (b"server", b"gw")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: done.append(True),
    )
    return made, wire, done


async def play(kind: type[RequestResponseCycle], messages: list[dict[str, Any]], **kw: Any):
    made, wire, done = cycle(kind, **kw)
    for message in messages:
        await made.send(message)  # type: ignore[arg-type]
    return bytes(wire.data), wire.closed, bool(done), made


JSON_ANSWER = [
    {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"X-Request-Id", b"req_1"),
            (b"x-ratelimit-remaining-requests", b"99"),
            (b"content-length", b"11"),
        ],
    },
    {"type": "http.response.body", "body": b'{"ok":true}'},
]
STREAM = [
    {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/event-stream"), (b"x-accel-buffering", b"no")],
    },
    {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True},
    {"type": "http.response.body", "body": b"", "more_body": True},
    {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False},
]
EMPTY_END = [
    {"type": "http.response.start", "status": 200, "headers": []},
    {"type": "http.response.body", "body": b"x", "more_body": True},
    {"type": "http.response.body", "body": b""},
]
CLOSE = [
    {
        "type": "http.response.start",
        "status": 503,
        "headers": [(b"connection", b"Keep-Alive, Close"), (b"content-length", b"0")],
    },
    {"type": "http.response.body", "body": b""},
]
TWICE = [  # names in any case, a length given twice: the first one counts
    {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"Content-Length", b"3"), (b"X-Trace", b"a"), (b"content-length", b"5")],
    },
    {"type": "http.response.body", "body": b"abc"},
]
BOTH_FRAMINGS = [
    {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"5"), (b"Transfer-Encoding", b"chunked")],
    },
    {"type": "http.response.body", "body": b"hello", "more_body": True},
    {"type": "http.response.body", "body": b""},
]
NO_CONTENT = [
    {"type": "http.response.start", "status": 204, "headers": []},
    {"type": "http.response.body", "body": b""},
]


@pytest.mark.parametrize(
    "messages",
    [JSON_ANSWER, STREAM, EMPTY_END, CLOSE, TWICE, BOTH_FRAMINGS, NO_CONTENT],
    ids=["json", "stream", "empty-end", "close", "twice", "both-framings", "no-content"],
)
@pytest.mark.parametrize("keep_alive", [True, False])
async def test_same_bytes_as_uvicorn(messages: list[dict[str, Any]], keep_alive: bool) -> None:
    ours = await play(GuardedCycle, messages, keep_alive=keep_alive)
    theirs = await play(RequestResponseCycle, messages, keep_alive=keep_alive)
    assert ours[:3] == theirs[:3]
    assert ours[3].response_complete and ours[3].keep_alive == theirs[3].keep_alive


async def test_head_request_sends_no_body() -> None:
    data, _, done, _ = await play(GuardedCycle, JSON_ANSWER, method="HEAD")
    assert data.endswith(b"content-length: 11\r\n\r\n") and done


@pytest.mark.parametrize(
    "name, value",
    [
        (b"x-a", b"1\r\nset-cookie: stolen=1"),  # a second header smuggled in a value
        (b"x-a", b"1\nx-b: 2"),
        (b"x-a", b"nul\x00byte"),
        (b"x-a", b"cr\ralone"),
        (b"x-a", b"crlf\r\n"),
        (b"x-a\r\nx-b", b"2"),
        (b"bad name", b"1"),
        (b"x-a:", b"1"),
        (b"", b"1"),
    ],
)
async def test_a_header_that_breaks_the_grammar_is_refused(name: bytes, value: bytes) -> None:
    made, wire, _ = cycle(GuardedCycle)
    start = {"type": "http.response.start", "status": 200, "headers": [(name, value)]}
    with pytest.raises(RuntimeError, match="Invalid HTTP header"):
        await made.send(start)  # type: ignore[arg-type]
    assert wire.data == b""  # nothing of the head went out


async def test_a_header_that_is_no_pair_is_refused() -> None:
    made, wire, _ = cycle(GuardedCycle)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1", b"2")]}
    with pytest.raises(ValueError, match="unpack"):
        await made.send(start)  # type: ignore[arg-type]
    assert wire.data == b""


async def test_tabs_and_text_in_values_pass() -> None:
    made, wire, _ = cycle(GuardedCycle)
    headers = [(b"x-note", b'a\tb: c, d="e"'), (b"content-length", b"0")]
    await made.send({"type": "http.response.start", "status": 200, "headers": headers})
    await made.send({"type": "http.response.body", "body": b""})
    assert b'x-note: a\tb: c, d="e"\r\n' in wire.data


async def test_body_longer_or_shorter_than_its_length_is_an_error() -> None:
    made, _, _ = cycle(GuardedCycle)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    await made.send(start)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="longer"):
        await made.send({"type": "http.response.body", "body": b"abc"})  # type: ignore[arg-type]
    made, _, _ = cycle(GuardedCycle)
    await made.send(start)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="shorter"):
        await made.send({"type": "http.response.body", "body": b"a"})  # type: ignore[arg-type]


async def test_messages_out_of_order_are_errors() -> None:
    made, _, _ = cycle(GuardedCycle)
    with pytest.raises(RuntimeError, match=r"http\.response\.start"):
        await made.send({"type": "http.response.body", "body": b""})  # type: ignore[arg-type]
    data, *_ = await play(GuardedCycle, NO_CONTENT)
    made, _, _ = cycle(GuardedCycle)
    for message in NO_CONTENT:
        await made.send(message)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="after response already completed"):
        await made.send({"type": "http.response.body", "body": b""})  # type: ignore[arg-type]
    assert data.startswith(b"HTTP/1.1 204 No Content\r\n")


async def test_an_answer_with_a_length_leaves_in_one_write() -> None:
    made, wire, _ = cycle(GuardedCycle)
    await made.send(JSON_ANSWER[0])  # type: ignore[arg-type]
    assert wire.writes == 0  # the head waits for the body
    await made.send(JSON_ANSWER[1])  # type: ignore[arg-type]
    assert wire.writes == 1 and wire.data.endswith(b'\r\n\r\n{"ok":true}')


async def test_a_large_body_is_not_copied_to_join_its_head() -> None:
    made, wire, _ = cycle(GuardedCycle)
    body = b"x" * (1 << 20)
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"%d" % len(body))],
    }
    await made.send(start)  # type: ignore[arg-type]
    await made.send({"type": "http.response.body", "body": body})  # type: ignore[arg-type]
    assert wire.writes == 1 and bytes(wire.data).endswith(body)


async def test_a_stream_head_goes_before_the_first_event() -> None:
    made, wire, _ = cycle(GuardedCycle)
    await made.send(STREAM[0])  # type: ignore[arg-type]
    assert wire.writes == 1 and wire.data.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_header_lines_of_the_app_are_written_after_its_headers() -> None:
    made, wire, _ = cycle(GuardedCycle)
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"2")],
        HEADER_LINES: (b"x-a: 1\r\nx-b: 2\r\n", 2),
    }
    await made.send(start)  # type: ignore[arg-type]
    await made.send({"type": "http.response.body", "body": b"{}"})  # type: ignore[arg-type]
    assert b"content-length: 2\r\nx-a: 1\r\nx-b: 2\r\n\r\n{}" in wire.data


@pytest.mark.parametrize(
    "lines, count",
    [
        (b"x-a: 1\r\nset-cookie: s=1\r\n", 1),  # a line more than it says
        (b"x-a: 1", 1),  # no line end
        (b"x-a: 1\rx\r\n", 1),
        (b": 1\r\n", 1),
    ],
)
async def test_header_lines_that_break_the_grammar_are_refused(lines: bytes, count: int) -> None:
    made, wire, _ = cycle(GuardedCycle)
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [],
        HEADER_LINES: (lines, count),
    }
    with pytest.raises(RuntimeError, match="Invalid HTTP header"):
        await made.send(start)  # type: ignore[arg-type]
    assert wire.data == b""


class Sent:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def test_bytes_response_speaks_plain_asgi_to_other_servers() -> None:
    answer = BytesResponse(b"{}", 201, b"x-request-id: r1\r\nx-b: a: b\r\n", 2)
    plain, ours = Sent(), Sent()
    await answer({"type": "http"}, None, plain)  # type: ignore[arg-type]
    await answer({"type": "http", "extensions": {HEADER_LINES: {}}}, None, ours)  # type: ignore[arg-type]
    assert plain.messages[0]["headers"] == [
        (b"x-request-id", b"r1"),
        (b"x-b", b"a: b"),
        (b"content-length", b"2"),
    ]
    assert HEADER_LINES not in plain.messages[0]
    assert ours.messages[0]["headers"] == [(b"content-length", b"2")]
    assert ours.messages[0][HEADER_LINES] == (b"x-request-id: r1\r\nx-b: a: b\r\n", 2)
    assert plain.messages[1] == ours.messages[1] == {"type": "http.response.body", "body": b"{}"}
