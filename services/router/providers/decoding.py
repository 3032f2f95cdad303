"""Content codings of upstream answers, decoded incrementally and bounded.

Every decoder hands out at most about ``limit`` bytes per call and keeps the
rest of its input, so a small compressed body that inflates to gigabytes is
seen piece by piece and can be refused as soon as it passes the size limit.
``gzip`` and ``deflate`` use zlib's ``max_length``; ``br`` uses the ``brotli``
package's ``output_buffer_limit`` (1.2+). ``zstd`` (the ``zstandard``
package) has no output bound on its incremental decoder, so the bound comes
from the format: a zstd block holds at most 128 KiB of output and takes at
least 4 bytes of input (a 3-byte header and an RLE byte), so the decoder is
fed :data:`ZSTD_STEP` bytes at a time, each step giving at most about 1 MiB,
and stops feeding once ``limit`` is reached; the rest of its input waits.
Each coding is offered in Accept-Encoding only when its decoder is installed."""

from __future__ import annotations

import zlib
from typing import Protocol

try:
    import brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - a dependency; absent only in odd installs
    brotli = None
try:
    import zstandard
except ImportError:  # pragma: no cover - a dependency; absent only in odd installs
    zstandard = None  # type: ignore[assignment]

ZSTD_STEP = 32  # input bytes per zstd step: at most 8 whole blocks, 1 MiB, of output


class DecodeError(Exception):
    pass


class Decoder(Protocol):
    def decode(self, data: bytes, limit: int) -> bytes:
        """Some output for ``data`` (which may be empty): about ``limit`` bytes at most."""

    def pending(self) -> bool:
        """Whether output is waiting for ``decode(b"", limit)`` before more input."""

    def finish(self) -> bytes:
        """What is left at the end of the body (small: the input is consumed)."""


class _Zlib:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=47)  # gzip or zlib, by header

    def decode(self, data: bytes, limit: int) -> bytes:
        try:
            return self._d.decompress(self._d.unconsumed_tail + data, max(1, limit))
        except zlib.error:
            raise DecodeError("the upstream sent a body that does not decompress") from None

    def pending(self) -> bool:
        return bool(self._d.unconsumed_tail)

    def finish(self) -> bytes:
        try:
            return self._d.flush()
        except zlib.error:
            raise DecodeError("the upstream sent a body that does not decompress") from None


class _Brotli:
    def __init__(self) -> None:
        assert brotli is not None
        self._d = brotli.Decompressor()
        self._input = b""

    def decode(self, data: bytes, limit: int) -> bytes:
        self._input += data
        try:
            if self._d.can_accept_more_data():
                data, self._input = self._input, b""
                out: bytes = self._d.process(data, output_buffer_limit=max(1, limit))
            else:
                out = self._d.process(b"", output_buffer_limit=max(1, limit))
        except brotli.error:
            raise DecodeError("the upstream sent a body that does not decompress") from None
        return out

    def pending(self) -> bool:
        return bool(self._input) or not self._d.can_accept_more_data()

    def finish(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        assert zstandard is not None
        self._d = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        self._input = memoryview(b"")

    def decode(self, data: bytes, limit: int) -> bytes:
        if data:
            self._input = memoryview(bytes(self._input) + data)
        out: list[bytes] = []
        size = 0
        pos = 0
        view = self._input
        try:
            while pos < len(view) and size < max(1, limit):
                piece = self._d.decompress(view[pos : pos + ZSTD_STEP])
                pos += ZSTD_STEP
                if piece:
                    out.append(piece)
                    size += len(piece)
        except zstandard.ZstdError:
            raise DecodeError("the upstream sent a body that does not decompress") from None
        self._input = view[pos:]
        return b"".join(out)

    def pending(self) -> bool:
        return len(self._input) > 0

    def finish(self) -> bytes:
        return b""


def accept_encoding() -> str:
    """The codings the gateway asks for: only those it can decode, bounded."""
    codings = ["gzip", "deflate"]
    if brotli is not None:
        codings.append("br")
    if zstandard is not None:
        codings.append("zstd")
    return ", ".join(codings)


def decoder_for(coding: str) -> Decoder | None:
    """A decoder for a ``content-encoding`` value; None for identity; ``DecodeError``
    for a coding the gateway did not ask for."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip", "deflate"):
        return _Zlib()
    if coding == "br" and brotli is not None:
        return _Brotli()
    if coding == "zstd" and zstandard is not None:
        return _Zstd()
    raise DecodeError("the upstream answered in a content coding the gateway cannot read")
