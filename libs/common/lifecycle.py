"""What a request needs to know about the server stopping under it.

The serving layer puts one ``ShutdownState`` into the ASGI lifespan state
(``scope["state"][SHUTDOWN_STATE]``, ``request.state.gateway_shutdown``), so a
request that is cut when the drain time ends can be recorded as what it is,
a shutdown (503), and not as a client that hung up (499)."""

from __future__ import annotations

import asyncio
import time

SHUTDOWN_STATE = "gateway_shutdown"


class ShutdownState:
    """``draining``: a graceful stop began, no new connections are taken.
    ``cut``: the drain time is over; what is still running is being cancelled
    by the server, not by its client."""

    __slots__ = ("cut", "drain_seconds", "draining", "since")

    def __init__(self) -> None:
        self.draining = False
        self.cut = False
        self.since: float | None = None
        self.drain_seconds: float | None = None

    def begin(self, drain_seconds: float) -> None:
        if not self.draining:
            self.draining = True
            self.since = time.monotonic()
            self.drain_seconds = drain_seconds

    def mark_cut(self) -> None:
        self.cut = True

    def __repr__(self) -> str:
        return f"ShutdownState(draining={self.draining}, cut={self.cut})"


CLIENT_GONE = "tokgateway.client_gone"  # scope key of a request's ``ClientGone``


class ClientGone:
    """Put into each request's scope by the server protocol, which calls
    ``fire`` when the connection is lost before the response completed: the
    task that armed it is cancelled at once, with no watcher task per request."""

    __slots__ = ("cancelled", "gone", "task")

    def __init__(self) -> None:
        self.gone = False
        self.cancelled = False
        self.task: asyncio.Task[object] | None = None

    def fire(self) -> None:
        self.gone = True
        task, self.task = self.task, None
        if task is not None and not task.done():
            self.cancelled = True
            task.cancel()
