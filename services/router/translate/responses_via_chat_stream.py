"""The OpenAI Responses API served by an OpenAI Chat upstream, streamed:
``chat.completion.chunk`` objects in, encoded Responses events out.

Sequence: ``response.created``, ``response.in_progress``, then per output
item ``response.output_item.added`` ... ``response.output_item.done``
(a message item with ``content_part.added`` / ``output_text.delta`` /
``output_text.done`` / ``content_part.done``; a function call item with
``function_call_arguments.delta`` / ``.done``), then ``response.completed``
(``response.incomplete`` when the output was cut short, as the API does).
Every event carries ``sequence_number``; item ids stay the same from added to
done to the final response."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tokgateway.router.translate._common import (
    JSON,
    IdFactory,
    chat_usage,
    new_id,
    obj,
    reasoning_tokens,
    sse_event,
)
from tokgateway.router.translate.responses_via_chat import (
    finish_status,
    function_call_item,
    message_item,
    response_shell,
    response_usage,
)
from tokgateway.router.usage import Usage

_ERROR_CODES = {
    "rate_limit": "rate_limit_exceeded",
    "invalid_request": "invalid_prompt",
}


class ChatToResponsesStream:
    """Feed each decoded chunk with :meth:`feed` and call :meth:`finish` once
    at the end of the upstream stream; both return encoded events. After
    :meth:`finish`, :attr:`response` is the final Response object (the same one
    the ``response.completed`` event carried), ready to be stored for
    ``previous_response_id``. An in-stream ``{"error": ...}`` chunk becomes an
    ``error`` event followed by ``response.failed``."""

    def __init__(
        self,
        request_body: JSON,
        *,
        ids: IdFactory = new_id,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._request = request_body
        self._ids = ids
        self._clock = clock
        self.response_id = ids("resp_")
        self.created_at = int(clock())
        self._seq = 0
        self._started = False
        self._done = False
        self._output: list[JSON] = []  # finished items, by output_index
        self._item: JSON | None = None  # the open item (message or function_call)
        self._part: str | None = None  # "output_text" or "refusal" while a part is open
        self._part_text: list[str] = []
        self._calls: dict[int, JSON] = {}  # OpenAI tool index -> its item
        self._pending: dict[int, JSON] = {}
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._reasoning = 0
        self.response: JSON | None = None
        self.error: JSON | None = None

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def feed(self, chunk: JSON) -> list[bytes]:
        if self._done:
            return []
        out: list[bytes] = []
        self._start(out)
        error = chunk.get("error")
        if error:
            self._fail(error, out)
            return out
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = chat_usage(usage)
            self._reasoning = reasoning_tokens(usage)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if isinstance(choice.get("finish_reason"), str):
                self._finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        out: list[bytes] = []
        self._start(out)
        for idx in sorted(self._pending):
            self._open_call(idx, out)
        self._close_item(out)
        status, incomplete = finish_status(self._finish_reason)
        response = self._snapshot(status)
        response["completed_at"] = int(self._clock()) if status == "completed" else None
        response["incomplete_details"] = incomplete
        response["usage"] = response_usage(self._usage, self._reasoning)
        self.response = response
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(kind, {"response": response}))
        self._done = True
        return out

    def fail(self, error: JSON) -> list[bytes]:
        """The end of a stream the upstream broke off (the gateway's own
        OpenAI error object): an ``error`` event and ``response.failed``, as
        the Responses API ends a stream that failed. Nothing when it already
        ended."""
        if self._done:
            return []
        out: list[bytes] = []
        self._start(out)
        self._fail(error, out)
        return out

    def _snapshot(self, status: str) -> JSON:
        response = response_shell(
            self._request, response_id=self.response_id, created_at=self.created_at, status=status
        )
        response["output"] = list(self._output)
        return response

    def _event(self, kind: str, fields: JSON) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse_event(kind, payload)

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        response = self._snapshot("in_progress")
        out.append(self._event("response.created", {"response": response}))
        out.append(self._event("response.in_progress", {"response": response}))

    def _fail(self, error: Any, out: list[bytes]) -> None:
        err = error if isinstance(error, dict) else {"message": str(error)}
        message = str(err.get("message") or "upstream error")
        raw = f"{err.get('type') or ''} {err.get('code') or ''}"
        code = next((v for k, v in _ERROR_CODES.items() if k in raw), "server_error")
        self.error = {"code": code, "message": message}
        out.append(self._event("error", {"code": code, "message": message, "param": None}))
        response = self._snapshot("failed")
        response["error"] = self.error
        self.response = response
        out.append(self._event("response.failed", {"response": response}))
        self._done = True

    def _delta(self, delta: JSON, out: list[bytes]) -> None:
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text("output_text", content, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._text("refusal", refusal, out)
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                idx = call.get("index")
                self._call_delta(idx if isinstance(idx, int) else position, call, out)

    # message items

    def _text(self, part: str, text: str, out: list[bytes]) -> None:
        item = self._item
        if item is None or item["type"] != "message":
            self._close_item(out)
            item = message_item(self._ids("msg_"), "", "", status="in_progress")
            item["content"] = []
            self._open_item(item, out)
        if self._part != part:
            self._close_part(out)
            self._part = part
            self._part_text = []
            body: JSON = (
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                if part == "output_text"
                else {"type": "refusal", "refusal": ""}
            )
            out.append(self._event("response.content_part.added", self._part_ref(part=body)))
        self._part_text.append(text)
        if part == "output_text":
            fields = self._part_ref(delta=text, logprobs=[])
            out.append(self._event("response.output_text.delta", fields))
        else:
            out.append(self._event("response.refusal.delta", self._part_ref(delta=text)))

    def _part_ref(self, **fields: Any) -> JSON:
        assert self._item is not None
        return {
            "item_id": self._item["id"],
            "output_index": len(self._output),
            "content_index": len(self._item["content"]),
            **fields,
        }

    def _close_part(self, out: list[bytes]) -> None:
        if self._part is None or self._item is None:
            return
        text = "".join(self._part_text)
        if self._part == "output_text":
            body: JSON = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            done = self._part_ref(text=text, logprobs=[])
            out.append(self._event("response.output_text.done", done))
        else:
            body = {"type": "refusal", "refusal": text}
            out.append(self._event("response.refusal.done", self._part_ref(refusal=text)))
        out.append(self._event("response.content_part.done", self._part_ref(part=body)))
        self._item["content"].append(body)
        self._part = None

    # function call items

    def _call_delta(self, idx: int, call: JSON, out: list[bytes]) -> None:
        function = obj(call.get("function"))
        args = function.get("arguments")
        if idx not in self._calls:
            pending = self._pending.setdefault(idx, {"id": None, "name": "", "args": []})
            if isinstance(call.get("id"), str) and call["id"] and not pending["id"]:
                pending["id"] = call["id"]
            if isinstance(function.get("name"), str) and function["name"]:
                pending["name"] = function["name"]
            if isinstance(args, str) and args:
                pending["args"].append(args)
            if pending["name"]:
                self._open_call(idx, out)
            return
        if self._item is not self._calls[idx]:
            return  # this call's item was already closed
        if isinstance(args, str) and args:
            self._arguments(args, out)

    def _open_call(self, idx: int, out: list[bytes]) -> None:
        pending = self._pending.pop(idx)
        self._close_item(out)
        item = function_call_item(
            self._ids("fc_"),
            pending["id"] or self._ids("call_"),
            pending["name"],
            "",
            status="in_progress",
        )
        self._calls[idx] = item
        self._open_item(item, out)
        for fragment in pending["args"]:
            self._arguments(fragment, out)

    def _arguments(self, fragment: str, out: list[bytes]) -> None:
        assert self._item is not None
        self._item["arguments"] += fragment
        fields = {"item_id": self._item["id"], "output_index": len(self._output), "delta": fragment}
        out.append(self._event("response.function_call_arguments.delta", fields))

    # items

    def _open_item(self, item: JSON, out: list[bytes]) -> None:
        self._item = item
        added = dict(item, content=[]) if item["type"] == "message" else dict(item)
        fields = {"output_index": len(self._output), "item": added}
        out.append(self._event("response.output_item.added", fields))

    def _close_item(self, out: list[bytes]) -> None:
        item = self._item
        if item is None:
            return
        index = len(self._output)
        if item["type"] == "message":
            self._close_part(out)
            done = dict(item, status="completed", content=list(item["content"]))
        else:
            fields = {
                "item_id": item["id"],
                "output_index": index,
                "name": item["name"],
                "arguments": item["arguments"],
            }
            out.append(self._event("response.function_call_arguments.done", fields))
            done = dict(item, status="completed")
        out.append(self._event("response.output_item.done", {"output_index": index, "item": done}))
        self._output.append(done)
        self._item = None
