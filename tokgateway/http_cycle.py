"""The response writer of the gateway's HTTP/1.1 protocol.

uvicorn's request/response cycle checks every response header with two
regular expressions and lower-cases it in a Python loop; a gateway answer
carries a dozen headers (ids, rate limits, overhead), so that loop was a
visible share of a request's time. ``GuardedCycle`` keeps uvicorn's cycle
(its ``receive``, its error handling, its state) and writes the head itself:
one pass that lower-cases the names (``translate``, which also marks any byte
a name may not hold) and spots the framing headers, one ``join``, and a few
scans of the whole block (no CR or LF but one pair per header, no NUL), so no
name or value can smuggle in a line of its own."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from tokgateway.common.http import HEADER_LINES

# RFC 9110: a header name is a token. Names go through _NAMES, which
# lower-cases them and turns any byte that is not a token character into NUL;
# the block of lines may then hold no NUL, and no CR or LF but the line ends.
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"


def _name_table() -> bytes:
    table = bytearray(256)  # NUL for every byte a name may not hold
    for c in _TOKEN:
        table[c] = c
    for c in range(ord("A"), ord("Z") + 1):
        table[c] = c + 32
    return bytes(table)


_NAMES = _name_table()
_JOIN_LIMIT = 64 * 1024  # a larger body is not copied to join its head
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
# Names the gateway sends on every answer, known to be lower-case tokens and
# not framing headers: they skip the translate.
_PLAIN = frozenset(
    (
        b"date",
        b"server",
        b"content-type",
        b"x-request-id",
        b"request-id",
        b"x-gateway-overhead-ms",
        b"x-accel-buffering",
        b"x-upstream-request-id",
        b"x-ratelimit-limit-requests",
        b"x-ratelimit-remaining-requests",
        b"x-ratelimit-reset-requests",
        b"x-ratelimit-limit-tokens",
        b"x-ratelimit-remaining-tokens",
        b"x-ratelimit-reset-tokens",
    )
)


class GuardedCycle(RequestResponseCycle):
    """uvicorn's cycle with a leaner ``send``; the protocol turns each new
    cycle into one before its task first runs. The head of an answer with a
    length waits for its first body message and leaves in the same write (one
    system call and one TCP segment less per answer); a chunked answer's head
    goes at once, so a stream's client sees it before the first event."""

    _head = b""  # the head of a fixed-length answer, not written yet

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self._start(message["status"], message.get("headers", ()), message.get(HEADER_LINES))
            return
        if self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, "
                "after response already completed."
            )
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        head = self._head
        if head:
            self._head = b""
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            if head:
                self.transport.write(head)
        elif self.chunked_encoding:
            if body:
                end = b"\r\n" if more_body else b"\r\n0\r\n\r\n"
                self.transport.write(b"".join((b"%x\r\n" % len(body), body, end)))
            elif not more_body:
                self.transport.write(b"0\r\n\r\n")
        else:
            size = len(body)
            if size > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= size
            if not head:
                self.transport.write(body)
            elif size <= _JOIN_LIMIT:
                self.transport.write(head + body)  # one write, one segment
            else:
                self.transport.writelines((head, body))
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _start(self, status: int, headers: Any, extra: tuple[bytes, int] | None) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        if self.access_log:
            scope = self.scope
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        lines: list[bytes] = []
        close = False
        for pairs in (self.default_headers, headers):
            for raw, value in pairs:
                if raw in _PLAIN:
                    lines += (raw, b": ", value, b"\r\n")
                    continue
                name = raw.translate(_NAMES)
                if name in _FRAMING:
                    close = self._framing(name, value) or close
                lines += (name, b": ", value, b"\r\n")
        count = len(lines) >> 2
        if extra is not None:
            # header lines the app wrote itself (HEADER_LINES): the same checks
            # as ours, against the count of lines it says it wrote
            lines.append(extra[0])
            count += extra[1]
        block = b"".join(lines)
        # exactly the CR and LF of the line ends, one pair per header (a value
        # that holds a line of its own is no header of the app's), no NUL (a
        # name's bad byte became one) and no empty name
        if (
            block.count(b"\n") != count
            or block.count(b"\r") != count
            or b"\x00" in block
            or block.startswith(b": ")
            or b"\n: " in block
        ):
            raise RuntimeError("Invalid HTTP header name or value.")
        tail = b"\r\n"
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            tail = b"transfer-encoding: chunked\r\n\r\n"
        if not self.keep_alive and not close:
            tail = b"connection: close\r\n" + tail
        head = b"".join((STATUS_LINE[status], block, tail))
        if self.chunked_encoding:
            self.transport.write(head)  # a stream's head goes at once
        else:
            self._head = head  # goes with the body, in the same write

    def _framing(self, name: bytes, value: bytes) -> bool:
        """Note what a framing header says; True for ``connection: close``."""
        if name == b"content-length":
            if self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
        elif name == b"transfer-encoding":
            if value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
        elif b"close" in [token.strip().lower() for token in value.split(b",")]:
            self.keep_alive = False
            return True
        return False
