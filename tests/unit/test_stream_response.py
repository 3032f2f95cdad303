"""StreamResponse as an ASGI app, driven with scripted receive/send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tokgateway.router.streaming import StreamResponse


class Body:
    """A body that yields ``pieces``, then waits for ``release`` (if given)."""

    def __init__(self, pieces: list[bytes], release: asyncio.Event | None = None) -> None:
        self.pieces = pieces
        self.release = release
        self.closed = False

    async def gen(self) -> AsyncIterator[bytes]:
        try:
            for piece in self.pieces:
                yield piece
            if self.release is not None:
                await self.release.wait()
        finally:
            self.closed = True


async def _run(body: Body, disconnect_after: float | None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after or 0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = StreamResponse(body.gen(), headers={"x-request-id": "r1"})
    task = asyncio.ensure_future(app({"type": "http"}, receive, send))
    await asyncio.wait_for(asyncio.shield(task), 5)
    # a disconnect is handled, not leaked: the task ends normally, uncancelled
    assert not task.cancelled() and task.cancelling() == 0
    return sent


async def test_whole_stream_status_line_leaves_with_the_first_piece() -> None:
    body = Body([b"data: 1\n\n", b"data: 2\n\n"])
    sent = await _run(body, disconnect_after=None)
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
        "http.response.body",
    ]
    assert (b"x-request-id", b"r1") in sent[0]["headers"]
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert sent[-1]["more_body"] is False
    assert body.closed


async def test_disconnect_while_waiting_for_the_first_piece() -> None:
    body = Body([], release=asyncio.Event())  # the upstream never sends anything
    sent = await _run(body, disconnect_after=0.05)
    assert sent == []  # nothing was started for a client that is gone
    assert body.closed  # and the upstream side was closed


async def test_disconnect_mid_stream_closes_the_body() -> None:
    body = Body([b"data: 1\n\n"], release=asyncio.Event())
    sent = await _run(body, disconnect_after=0.05)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert body.closed
