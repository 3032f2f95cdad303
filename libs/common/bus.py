"""The in-process bus of the all-in-one shape: direct calls, same subjects and
payloads as the NATS bus of the mesh."""

from __future__ import annotations

import asyncio
import inspect
import logging

from tokgateway.common.contracts import BusHandler

log = logging.getLogger("tokgateway.bus")


def subject_matches(pattern: str, subject: str) -> bool:
    if pattern.endswith(">"):
        return subject.startswith(pattern[:-1])
    if pattern.endswith("."):
        return subject.startswith(pattern)
    return subject == pattern


class InProcessBus:
    def __init__(self) -> None:
        self._subs: list[tuple[str, BusHandler]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, subject: str, handler: BusHandler) -> None:
        self._subs.append((subject, handler))

    def publish_nowait(self, subject: str, payload: bytes) -> None:
        for pattern, handler in self._subs:
            if not subject_matches(pattern, subject):
                continue
            try:
                result = handler(subject, payload)
            except Exception:
                log.exception("bus handler failed for %s", subject)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._done)

    async def publish(self, subject: str, payload: bytes) -> None:
        for pattern, handler in self._subs:
            if subject_matches(pattern, subject):
                result = handler(subject, payload)
                if inspect.isawaitable(result):
                    await result

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bus handler failed", exc_info=task.exception())

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
