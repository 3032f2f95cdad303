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
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(self._watch(receive))
        gone = False
        try:
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                # The client went away while the stream was still running.
                gone = True
                pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                if not gone:
                    raise
            except OSError:
                gone = True
        finally:
            for task in (pump, watcher):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status, "headers": self.raw_headers}
        )
        async for chunk in self.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
