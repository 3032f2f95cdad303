"""Noticing a client that leaves while the upstream is still being asked
(before any response starts): the waiting task is cancelled, and with it the
upstream call, so a request nobody waits for is neither finished nor billed."""

from __future__ import annotations

import asyncio

from starlette.types import Receive


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ClientWatch:
    """Cancel the current task when the client disconnects, until ``stop``,
    which says whether the client went away (and then takes back the
    cancellation it caused)."""

    __slots__ = ("_gone", "_task", "_watcher")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._gone = False
        self._watcher = asyncio.ensure_future(_disconnected(receive))
        self._watcher.add_done_callback(self._on_done)

    def _on_done(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        self._gone = True
        self._task.cancel()

    def stop(self) -> bool:
        watcher = self._watcher
        watcher.remove_done_callback(self._on_done)
        if not watcher.done():
            watcher.cancel()
        if self._gone:
            self._task.uncancel()
        return self._gone
