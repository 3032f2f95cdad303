"""Structured JSON logging: one line per record, no secrets or prompts."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any

import orjson

_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


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
    JSON shape as every other log line. Written with one ``write`` to the file
    descriptor: the logging module's record machinery costs more than the whole
    rest of the line on a warm request."""

    def __init__(self, enabled: bool, fd: int = 2) -> None:
        self.enabled = enabled
        self.fd = fd
        self._log = logging.getLogger("tokgateway.access")

    def write(self, fields: dict[str, Any]) -> None:
        if not (self.enabled and self._log.isEnabledFor(logging.INFO)):
            return
        line = {
            "ts": round(time.time(), 6),
            "level": "info",
            "logger": "tokgateway.access",
            "msg": "request",
            **fields,
        }
        # a closed or full log pipe must not fail the request
        with contextlib.suppress(OSError):
            os.write(self.fd, orjson.dumps(line, default=str) + b"\n")


def now_ms() -> float:
    return time.perf_counter() * 1000.0
