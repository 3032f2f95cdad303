"""An ASGI response for relayed streams that notices a client disconnect at
once, even while waiting on the upstream, and always closes the generator (and
so the upstream request) in ``finally``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive, Scope, Send


class StreamResponse:
    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        status: int = 200,
        headers: Mapping[str, str],
        media_type: str = "text/event-stream",
    ) -> None:
        self.body = body
        self.status = status
        raw = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The body is pumped in this task; a watcher task cancels it when the
        # client disconnects (one extra task per stream, not two).
        task = asyncio.current_task()
        assert task is not None
        gone = done = False

        def on_disconnect(watcher: asyncio.Future[None]) -> None:
            nonlocal gone
            if done or watcher.cancelled() or watcher.exception() is not None:
                return
            gone = True
            task.cancel()

        watcher = asyncio.ensure_future(self._watch(receive))
        watcher.add_done_callback(on_disconnect)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()  # our own cancellation: the client went away
        except OSError:
            pass  # the client's socket broke mid-write
        finally:
            done = True
            if not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, send: Send) -> None:
        # The status line waits for the first piece of the body, so both leave
        # together: one wake-up of the client instead of two.
        body = aiter(self.body)
        first = await anext(body, None)
        await send(
            {"type": "http.response.start", "status": self.status, "headers": self.raw_headers}
        )
        if first is not None:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
