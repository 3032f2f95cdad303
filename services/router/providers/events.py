"""A cheap watch over an upstream event stream as it passes, before the relay
parses it: no single event larger than the limit (a stream of zeros or one
endless line is cut off, not buffered), and at least one ``data:`` line that is
a JSON object, so a 200 that streams an HTML page or nothing at all ends in an
error event instead of a bare ``[DONE]``.

Once the first valid event was seen, the check costs two ``rfind`` per chunk."""

from __future__ import annotations

import orjson


class EventCheck:
    def __init__(self, max_event: int) -> None:
        self.max_event = max_event
        self.valid = False
        self._since_boundary = 0  # bytes since the last blank line
        self._head = bytearray()  # the stream so far, until one event was valid

    def feed(self, chunk: bytes) -> None:
        """Raises ``ValueError`` (its text says why) when the stream is broken."""
        if self._since_boundary + len(chunk) > self.max_event:
            self._measure(chunk)  # rare: only when an event could be too large
        else:
            cut = max(chunk.rfind(b"\n\n"), chunk.rfind(b"\n\r\n"))
            if cut < 0:
                self._since_boundary += len(chunk)
            else:
                self._since_boundary = len(chunk) - cut - 2
        if self.valid:
            return
        self._head += chunk
        end = self._head.rfind(b"\n")
        if end < 0:
            return
        for line in bytes(self._head[:end]).splitlines():
            if _valid_data_line(line):
                self.valid = True
                self._head = bytearray()
                return
        del self._head[: end + 1]

    def _measure(self, chunk: bytes) -> None:
        """Every event of the chunk, the first continuing the one before it."""
        start = 0
        while True:
            cut = _boundary(chunk, start)
            end = len(chunk) if cut < 0 else cut
            if self._since_boundary + end - start > self.max_event:
                raise ValueError(f"an event is larger than {self.max_event} bytes")
            if cut < 0:
                self._since_boundary += end - start
                return
            self._since_boundary = 0
            start = cut + 2

    def finish(self) -> None:
        if not self.valid and self._head and _valid_data_line(bytes(self._head).strip()):
            self.valid = True
        if not self.valid:
            raise ValueError("the stream ended without one valid event")


def _boundary(chunk: bytes, start: int) -> int:
    """Where the next blank line (``\\n\\n`` or ``\\n\\r\\n``) starts, or -1."""
    a = chunk.find(b"\n\n", start)
    b = chunk.find(b"\n\r\n", start)
    if a < 0 or (0 <= b < a):
        return b
    return a


def _valid_data_line(line: bytes) -> bool:
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if payload[:1] != b"{":
        return False
    try:
        return isinstance(orjson.loads(payload), dict)
    except orjson.JSONDecodeError:
        return False
