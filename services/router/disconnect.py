"""Noticing a client that leaves while the gateway waits for the upstream:
the waiting task is cancelled, and with it the upstream call, so a request
nobody waits for is neither finished nor billed.

Under the gateway's own server protocol the connection says so itself
(``ClientGone`` in the scope, fired from ``connection_lost``); under any other
ASGI server a watcher task reads ``receive`` for ``http.disconnect``."""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Scope

from tokgateway.common.lifecycle import CLIENT_GONE, ClientGone


class ClientWatch:
    """Cancel the current task when the client disconnects, until ``stop``,
    which says whether the client went away (and then takes back the
    cancellation it caused)."""

    __slots__ = ("_gone", "_signal", "_stopped", "_task", "_watcher")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._gone = False
        self._stopped = False
        self._watcher: asyncio.Future[None] | None = None
        signal = scope.get(CLIENT_GONE)
        self._signal: ClientGone | None = signal if isinstance(signal, ClientGone) else None
        if self._signal is not None:
            if self._signal.gone:  # it left already: the next await is cancelled
                self._signal.cancelled = True
                task.cancel()
            else:
                self._signal.task = task
            return
        self._watcher = asyncio.ensure_future(_disconnected(receive))
        self._watcher.add_done_callback(self._on_done)

    def _on_done(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled() or watcher.exception() is not None:
            return
        self._gone = True
        self._task.cancel()

    def stop(self) -> bool:
        """Whether the client went away; idempotent."""
        if self._stopped:
            return self._gone
        self._stopped = True
        signal = self._signal
        if signal is not None:
            signal.task = None
            if signal.cancelled:
                signal.cancelled = False
                self._task.uncancel()
            self._gone = signal.gone
            return self._gone
        watcher = self._watcher
        assert watcher is not None
        watcher.remove_done_callback(self._on_done)
        if not watcher.done():
            watcher.cancel()
        if self._gone:
            self._task.uncancel()
        return self._gone


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
