"""The JSON log lines: one object a line, nothing meant for a terminal."""

from __future__ import annotations

import logging

import orjson

from tokgateway.common.logs import JsonFormatter


def test_uvicorn_color_message_is_not_logged() -> None:
    # uvicorn logs like this: the plain message plus an ANSI-coloured copy
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (42,), None
    )
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    record.request_id = "r1"  # other extras are kept
    text = JsonFormatter().format(record)
    line = orjson.loads(text)
    assert line["msg"] == "Started server process [42]"
    assert line["request_id"] == "r1"
    assert "color_message" not in line
    assert "\\u001b" not in text and "\x1b" not in text
