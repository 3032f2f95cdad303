"""The HTTP/1.1 server protocol with the limits a public port needs.

uvicorn's httptools protocol keeps a connection that never sends a byte, a
request head that trickles in one header a minute (slowloris) and a body that
never ends, and it lets httptools grow a header without bound (its buffer is
concatenated per packet, so a 100 MB header stalls the event loop). This
subclass adds, at the cost of a counter per packet:

* an idle timeout from the moment a connection opens (uvicorn arms its
  keep-alive timer only after a first response);
* a header timeout: the request head must be complete this long after its
  first byte, whatever trickles in meanwhile;
* a body timeout: the body must be complete this long after the head;
* a size cap on the request head and a cap on its header count: 431;
* a connection cap: past it, a new connection closes the idle ones first
  (a thousand idle sockets never lock out a client) and is refused only when
  every connection is busy;
* protocol-level 400s (bad framing) in the API's own error shape;
* a ``ClientGone`` in each request's scope (one per connection), fired
  when the connection is lost before the response completed (no watcher
  task per request);
* responses written by ``http_cycle.GuardedCycle`` (one check of the whole
  header block instead of two regular expressions per header);
* a ``ShutdownState`` in the lifespan state that says when a graceful stop
  began and when its drain time ran out.

A timed-out head or body closes the connection; the application then sees
``http.disconnect`` for the request in flight (recorded as 499)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from tokgateway.common.http import HEADER_LINES
from tokgateway.common.lifecycle import CLIENT_GONE, SHUTDOWN_STATE, ClientGone, ShutdownState
from tokgateway.http_cycle import GuardedCycle

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    408: "timeout_error",
    431: "invalid_request_error",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection limits (seconds, bytes, counts). ``max_connections`` is
    also capped by the process's file limit at start."""

    idle_timeout: float = 75.0
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    max_connections: int = 10000
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    drain_seconds: float = 30.0


# which deadline runs: none, idle (a new connection), head, body
_NO_TIMER, _IDLE, _HEAD, _BODY = 0, 1, 2, 3


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: too many header fields."""


def _target(head: bytes) -> bytes:
    """The request target of a head the parser has not seen (yet)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return parts[1] if len(parts) >= 2 else b""


def error_body(status: int, message: str, path: bytes) -> bytes:
    """The wire error for a request we could not parse: Anthropic's shape under
    /v1/messages, OpenAI's under the other /v1 paths, plain text elsewhere."""
    if path.startswith(b"/v1/messages"):
        kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if path.startswith(b"/v1/"):
        code = "request_timeout" if status == 408 else None
        return orjson.dumps(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": code,
                }
            }
        )
    return message.encode("utf-8", "replace")


PROTOCOL = "tokgateway.http_guard:GuardedProtocol"


class GuardedConfig(Config):
    """uvicorn's config plus the limits; it travels to ``--workers`` children
    (pickled), so the limits are an attribute, not a closure."""

    def __init__(self, app: Any, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, http=PROTOCOL, **kwargs)
        self.limits = limits


class GuardedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = getattr(config, "limits", None)
        self._limits = limits if isinstance(limits, Limits) else Limits()
        self._head_bytes = 0  # of the request head being received
        self._gone = ClientGone()  # one per connection: it is lost once
        # what GuardedCycle can do beyond ASGI (the same for every request)
        self._extensions: dict[str, Any] = {HEADER_LINES: {}}
        self._deadline: asyncio.TimerHandle | None = None
        self._timer = _NO_TIMER
        self._head_start = b""
        self._active = time.monotonic()
        state = app_state.get(SHUTDOWN_STATE)
        if not isinstance(state, ShutdownState):
            state = app_state[SHUTDOWN_STATE] = ShutdownState()
        self._shutdown = state

    # -- timers -----------------------------------------------------------------
    def _arm(self, kind: int, seconds: float, status: int | None) -> None:
        self._disarm()
        if seconds > 0:
            self._deadline = self.loop.call_later(seconds, self._expire, status)
            self._timer = kind

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._timer = _NO_TIMER

    def _expire(self, status: int | None) -> None:
        self._deadline = None
        self._timer = _NO_TIMER
        if self.transport.is_closing():
            return
        if status is not None and (self.cycle is None or self.cycle.response_complete):
            self._reject(status, "The request head was not sent in time.")
            return
        self.transport.close()

    def _in_head(self) -> bool:
        """Between requests or inside a request head (not in a body)."""
        cycle = self.cycle
        return cycle is None or not cycle.more_body

    def _idle(self) -> bool:
        return (
            self._head_bytes == 0
            and self._in_head()
            and (self.cycle is None or self.cycle.response_complete)
        )

    # -- connection -------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self._limits.max_connections
        if len(self.connections) > cap and not self._make_room(cap):
            self.transport.close()
            return
        self._arm(_IDLE, self._limits.idle_timeout, None)

    def _make_room(self, cap: int) -> bool:
        """Past the cap: close the longest-idle connections, down to 90 % of
        the cap so the scan runs once per many new connections. False when
        every other connection is busy."""
        idle = sorted(
            (
                c
                for c in self.connections
                if c is not self and isinstance(c, GuardedProtocol) and c._idle()
            ),
            key=lambda c: c._active,
        )
        excess = len(self.connections) - max(1, cap * 9 // 10)
        for other in idle[: max(0, excess)]:
            other.transport.close()
            self.connections.discard(other)
        return len(self.connections) <= cap

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._gone.fire()  # the request waiting on its upstream stops now
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        keep_alive = self.timeout_keep_alive_task
        if keep_alive is not None:  # uvicorn's keep-alive timer: a request came
            keep_alive.cancel()
            self.timeout_keep_alive_task = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body:  # in a request head
            if self._head_bytes == 0:
                self._head_start = data[:512]
                self._active = time.monotonic()
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes and not self._head_done(data):
                self._reject(431, "The request head (request line and headers) is too large.")
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._reject(431, "The request has too many header fields.")
            else:
                self._reject(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self._reject(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # The deadline follows the phase the parser is in after this packet; a
        # request that arrives whole in one packet arms none.
        cycle = self.cycle
        if cycle is not None and cycle.more_body:
            if self._timer != _BODY:
                self._arm(_BODY, self._limits.body_timeout, None)
        elif self._head_bytes:
            if self._timer != _HEAD:
                self._arm(_HEAD, self._limits.header_timeout, 408)
        elif self._timer != _NO_TIMER:
            self._disarm()

    def _head_done(self, data: bytes) -> bool:
        """Whether the head ends in this packet within the limit (a body may
        follow in the same packet)."""
        end = data.find(b"\r\n\r\n")
        return end >= 0 and self._head_bytes - len(data) + end + 4 <= self._limits.max_header_bytes

    # -- parser callbacks ---------------------------------------------------------
    def on_headers_complete(self) -> None:
        # The head's size is capped while it arrives, so the count of its
        # header fields is bounded too; past the limit it is refused here.
        if len(self.headers) > self._limits.max_headers:
            raise _HeadTooLarge
        self._head_bytes = 0
        scope = self.scope
        scope[CLIENT_GONE] = self._gone  # type: ignore[literal-required]
        scope["extensions"] = self._extensions
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and type(cycle) is RequestResponseCycle:
            # its task has not run yet: it will send through the leaner writer
            cycle.__class__ = GuardedCycle

    def shutdown(self) -> None:
        """uvicorn's graceful stop reached this connection: the first one
        starts the drain clock; when it runs out the server cancels what is
        left, and ``cut`` says so to whoever records those requests."""
        if not self._shutdown.draining:
            drain = self._limits.drain_seconds
            self._shutdown.begin(drain)
            self.loop.call_later(max(0.0, drain), self._shutdown.mark_cut)
        super().shutdown()

    # -- errors -------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._reject(400, msg)

    def _reject(self, status: int, message: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        path = getattr(self, "url", b"") or _target(self._head_start)
        body = error_body(status, message, path)
        json = body.startswith(b"{")
        ctype = b"application/json" if json else b"text/plain; charset=utf-8"
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: " + ctype + b"\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"x-gateway-error: client\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(head))
        self.transport.close()
