"""Server-sent events: an incremental decoder and encoders, pure functions
without I/O. Handles LF, CRLF and CR line ends and events split across reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes

    def json(self) -> object:
        return orjson.loads(self.data)


class SSEDecoder:
    """Feed raw bytes, get whole events. Comments (``:`` lines) are dropped."""

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk
        if b"\r" in buf:
            # A lone trailing CR may be the first half of CRLF: keep it.
            tail = b""
            if buf.endswith(b"\r"):
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        out: list[SSEEvent] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            self._line(line, out)
        self._buf = buf[start:]
        return out

    def flush(self) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data or self._event is not None:
                out.append(SSEEvent(self._event, b"\n".join(self._data)))
            self._event = None
            self._data = []
            return
        if line[:1] == b":":
            return
        field, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")


class EventRuns:
    """Cuts a stream's reads at event boundaries: a leading run of whole events
    that can be passed on byte for byte, then the whole events from the first
    one ``special(buf, end)`` points into (it returns an index into
    ``buf[:end]`` or -1), which must be decoded. Bytes after the last boundary
    wait for the next read. A stream with CR line ends is handed over to
    decoding whole, from the read where the first CR shows up."""

    def __init__(self, special: Callable[[bytes, int], int]) -> None:
        self._special = special
        self._pending = b""
        self.plain = True

    def split(self, raw: bytes) -> tuple[bytes, bytes]:
        """(pass-through bytes, bytes to decode) for one read."""
        if not self.plain:
            return b"", raw
        buf = self._pending + raw if self._pending else raw
        if b"\r" in buf:
            self.plain = False
            self._pending = b""
            return b"", buf
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._pending = buf
            return b"", b""
        end += 2
        self._pending = buf[end:]
        at = self._special(buf, end)
        if at < 0:
            return buf[:end], b""
        cut = buf.rfind(b"\n\n", 0, at + 1)
        cut = cut + 2 if cut >= 0 else 0
        return buf[:cut], buf[cut:end]

    def rest(self) -> bytes:
        """What is left after the last boundary, once the stream has ended."""
        rest, self._pending = self._pending, b""
        return rest


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def encode_event(name: str, payload: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def encode_json(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"
