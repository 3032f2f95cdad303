"""The mesh bus: the ``Bus`` protocol over NATS.

* ``usage.v1`` goes to JetStream (stream USAGE): stored, consumed by the
  ledger's durable consumer. Each event carries ``Nats-Msg-Id`` = its request id,
  so a retried publish inside the duplicate window is stored once.
  ``publish_nowait`` never blocks a response: events go to a bounded local
  buffer that a pump publishes, holding and retrying them while NATS is
  unreachable.
* ``auth.v1.*`` and ``registry.v1.*`` are plain NATS subjects (fan-out to every
  router at once); the EVENTS stream also keeps them for hooks that need replay.

Headers carry the trace context; subscribers continue it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from tokgateway.common.contracts import USAGE_SUBJECT, BusHandler
from tokgateway.common.tracing import Tracing, extract, inject

log = logging.getLogger("tokgateway.bus")

USAGE_STREAM = "USAGE"
EVENTS_STREAM = "EVENTS"
EVENT_SUBJECTS = ("auth.v1.>", "registry.v1.>")
DUPLICATE_WINDOW = 120.0  # seconds
PUBLISH_WINDOW = 256  # JetStream publishes in flight at once

ReconnectHook = Callable[[], Awaitable[None] | None]


def nats_subject(pattern: str) -> str:
    """Bus patterns ('auth.v1.' prefix, '>' wildcard, exact) as NATS subjects."""
    if pattern.endswith("."):
        return pattern + ">"
    return pattern


class NatsBus:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        buffer_limit: int = 100_000,
        publish_timeout: float = 2.0,
        tracing: Tracing | None = None,
        durable_subjects: frozenset[str] = frozenset({USAGE_SUBJECT}),
    ) -> None:
        self.url = url
        self.name = name
        self.buffer_limit = buffer_limit
        self.publish_timeout = publish_timeout
        self.tracing = tracing or Tracing(name)
        self.durable_subjects = durable_subjects
        self.nc: NatsClient = NatsClient()
        self._subs: list[tuple[str, BusHandler]] = []
        self._active: set[str] = set()
        self._buffer: deque[tuple[str, bytes, dict[str, str]]] = deque()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._drained = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connector: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._reconnect_hooks: list[ReconnectHook] = []
        self.published = 0
        self.dropped = 0
        self.publish_errors = 0
        self.reconnects = 0
        self.streams_ready = False

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background (retrying until NATS answers); returns at once."""
        if self._connector is None:
            self._connector = asyncio.create_task(self._connect_loop(), name="nats-connect")
            self._pump = asyncio.create_task(self._pump_loop(), name="nats-pump")

    async def wait_connected(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self.nc.is_connected

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def on_reconnect(self, hook: ReconnectHook) -> None:
        """Called after NATS comes back: events sent meanwhile may be missed, so
        listeners resynchronise (routers drop cached keys, reload routes)."""
        self._reconnect_hooks.append(hook)

    async def _connect_loop(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self.nc.connect(
                    servers=[self.url],
                    name=self.name,
                    connect_timeout=2,
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds; a float works
                    max_reconnect_attempts=-1,
                    ping_interval=5,
                    max_outstanding_pings=2,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                log.warning("NATS not reachable", extra={"url": self.url, "err": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                self.nc = NatsClient()
                continue
            break
        if self._closing:
            return
        await self._setup()
        self._connected.set()
        self._wake.set()
        log.info("NATS connected", extra={"url": self.url, "client": self.name})

    async def _setup(self) -> None:
        for pattern, _ in list(self._subs):
            await self._activate(pattern)
        delay = 0.2
        while not self._closing:
            try:
                await self.ensure_streams()
                return
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("JetStream not ready, retrying", extra={"err": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def ensure_streams(self) -> None:
        js = self.nc.jetstream(timeout=5)
        configs = (
            StreamConfig(
                name=USAGE_STREAM,
                subjects=[USAGE_SUBJECT],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW,
            ),
            StreamConfig(
                name=EVENTS_STREAM,
                subjects=list(EVENT_SUBJECTS),
                storage=StorageType.FILE,
                max_age=7 * 86400.0,
            ),
        )
        for cfg in configs:
            try:
                await js.add_stream(cfg)
            except nats.js.errors.BadRequestError:
                await js.update_stream(cfg)
        self.streams_ready = True

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        log.warning("NATS disconnected", extra={"client": self.name})

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        self._connected.set()
        self._wake.set()
        log.info("NATS reconnected", extra={"client": self.name})
        for hook in self._reconnect_hooks:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("reconnect hook failed")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error", extra={"err": str(exc)})

    async def close(self, grace: float = 10.0) -> None:
        """Publish what is buffered (within ``grace``), then drain and close."""
        if self._pump is not None and self._buffer and self.connected:
            self._drained.clear()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        if self._buffer:
            log.error("usage events not published at shutdown", extra={"lost": len(self._buffer)})
        self._closing = True
        self._wake.set()
        for task in (self._pump, self._connector):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.nc.is_connected:
            # Flush what the client still holds (acks, events), then close.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self.nc.flush(2)
        with contextlib.suppress(nats.errors.Error):
            await self.nc.close()

    # -- the Bus protocol -----------------------------------------------------------
    def subscribe(self, subject: str, handler: BusHandler) -> None:
        self._subs.append((subject, handler))
        if self._connected.is_set():
            self._spawn(self._activate(subject))

    async def _activate(self, pattern: str) -> None:
        if pattern in self._active:
            return
        self._active.add(pattern)
        await self.nc.subscribe(nats_subject(pattern), cb=self._dispatch)

    async def _dispatch(self, msg: Msg) -> None:
        from tokgateway.common.bus import subject_matches

        parent = extract(msg.headers)
        for pattern, handler in list(self._subs):
            if not subject_matches(pattern, msg.subject):
                continue
            with self.tracing.span(f"receive {msg.subject}", parent):
                try:
                    result = handler(msg.subject, msg.data)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("bus handler failed", extra={"subject": msg.subject})

    def publish_nowait(self, subject: str, payload: bytes) -> None:
        headers = inject()
        if subject in self.durable_subjects:
            if len(self._buffer) >= self.buffer_limit:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.error("event buffer full, dropping", extra={"dropped": self.dropped})
                return
            self._buffer.append((subject, payload, headers))
            self._wake.set()
            return
        self._spawn(self._publish_core(subject, payload, headers))

    async def publish(self, subject: str, payload: bytes) -> None:
        headers = inject()
        if subject in self.durable_subjects:
            await self._publish_js(subject, payload, headers)
        else:
            await self._publish_core(subject, payload, headers)

    async def _publish_core(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Best effort: while reconnecting the client holds the message in its
        pending buffer; listeners resynchronise on reconnect for what is lost."""
        if (
            not self.nc.is_connected
            and not self.nc.is_reconnecting
            and not await self.wait_connected(2.0)
        ):
            log.error("NATS unavailable; event not sent", extra={"subject": subject})
            return
        try:
            await self.nc.publish(subject, payload, headers=headers or None)
        except nats.errors.Error as exc:
            log.error("event not sent", extra={"subject": subject, "err": repr(exc)})

    async def publish_stored(
        self, subject: str, payload: bytes, msg_id: str, traceparent: str = ""
    ) -> None:
        """Publish to the stream that keeps ``subject`` and wait for its ack
        (raises while NATS is away, so the caller keeps the event and retries);
        ``msg_id`` makes a retried publish inside the duplicate window count once.
        Plain subscribers of the subject receive it as well. ``traceparent``
        (stored with the event) continues the trace of the call that emitted it."""
        trace = {"traceparent": traceparent} if traceparent else inject()
        hdrs = {**trace, "Nats-Msg-Id": msg_id}
        js = self.nc.jetstream(timeout=self.publish_timeout)
        await js.publish(subject, payload, headers=hdrs)

    async def _publish_js(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        hdrs = dict(headers)
        msg_id = _message_id(payload)
        if msg_id:
            hdrs["Nats-Msg-Id"] = msg_id
        js = self.nc.jetstream(timeout=self.publish_timeout)
        await js.publish(subject, payload, headers=hdrs)

    # -- the pump ---------------------------------------------------------------------
    async def _pump_loop(self) -> None:
        delay = 0.1
        while True:
            if not self._buffer or not self.connected:
                if not self._buffer:
                    self._drained.set()
                self._wake.clear()
                if self._buffer and not self.connected:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._connected.wait(), 1.0)
                    continue
                await self._wake.wait()
                continue
            batch = [self._buffer.popleft() for _ in range(min(PUBLISH_WINDOW, len(self._buffer)))]
            results = await asyncio.gather(
                *(self._publish_js(s, p, h) for s, p, h in batch), return_exceptions=True
            )
            failed = [
                item
                for item, res in zip(batch, results, strict=True)
                if isinstance(res, BaseException)
            ]
            self.published += len(batch) - len(failed)
            if not failed:
                delay = 0.1
                continue
            self.publish_errors += len(failed)
            self._buffer.extendleft(reversed(failed))
            first = next(r for r in results if isinstance(r, BaseException))
            log.warning(
                "usage publish failed; holding events",
                extra={"failed": len(failed), "buffered": len(self._buffer), "err": repr(first)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bus publish failed", exc_info=task.exception())

    # -- durable consumers ------------------------------------------------------------
    async def pull(
        self, subject: str, durable: str, *, ack_wait: float = 5.0, stream: str = USAGE_STREAM
    ) -> PullSource:
        js = self.nc.jetstream(timeout=5)
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait,
            max_ack_pending=50_000,
            filter_subject=subject,
        )
        psub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        return PullSource(psub)

    async def pending(self, durable: str) -> tuple[int, int]:
        """A durable consumer's backlog: messages not yet delivered to it and
        delivered but not acked (its lag behind the stream)."""
        info = await self.nc.jetstream(timeout=5).consumer_info(USAGE_STREAM, durable)
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)


class PullSource:
    """Batches from a durable JetStream pull consumer."""

    def __init__(self, psub: Any) -> None:
        self._psub = psub

    async def fetch(self, max_items: int, wait: float) -> list[Msg]:
        try:
            msgs: list[Msg] = await self._psub.fetch(batch=max_items, timeout=wait)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        return msgs


def _message_id(payload: bytes) -> str | None:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    rid = data.get("request_id") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) else None
