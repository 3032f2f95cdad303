"""An ASGI response for relayed streams that notices a client disconnect at
once, even while waiting on the upstream, and always closes the generator (and
so the upstream request) in ``finally``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from starlette.types import Receive, Scope, Send

from tokgateway.router.disconnect import ClientWatch


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
        # The body is pumped in this task; a client that leaves cancels it.
        watch = ClientWatch(scope, receive)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not watch.stop():
                raise
        except OSError:
            pass  # the client's socket broke mid-write
        finally:
            watch.stop()
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
