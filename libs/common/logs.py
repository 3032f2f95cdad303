"""Structured JSON logging: one line per record, no secrets or prompts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from typing import Any

import orjson

# ``color_message``: uvicorn's copy of the message with ANSI colour escapes,
# meant for a terminal; the JSON line already has the plain ``msg``.
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__.get("fields")
        if isinstance(fields, dict):
            data.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and key != "fields":
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def configure_logging(level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn.access",):
        logging.getLogger(name).disabled = True


class AccessLog:
    """The per-request line, built from the usage event's fields, in the same
    JSON shape as every other log line. Lines are gathered for up to
    ``FLUSH_EVERY`` seconds and written with one system call: the logging
    module's record machinery and a write per request cost more than the rest
    of a warm request's bookkeeping. A crash loses at most that window."""

    FLUSH_EVERY = 0.05

    def __init__(self, enabled: bool, fd: int = 2) -> None:
        self.enabled = enabled
        self.fd = fd
        self._log = logging.getLogger("tokgateway.access")
        self._pending: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: dict[str, Any]) -> None:
        """One line, whole: ts, level, logger and msg included by the caller."""
        if not (self.enabled and self._log.isEnabledFor(logging.INFO)):
            return
        self._pending.append(orjson.dumps(line, default=str))
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        data = b"\n".join(self._pending) + b"\n"
        self._pending = []
        # a closed or full log pipe must not fail requests
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(self.fd, data) :]


def now_ms() -> float:
    return time.perf_counter() * 1000.0
