"""OpenAI Chat clients on an Anthropic Messages upstream, streamed: Anthropic
SSE events in (name + decoded data), encoded ``chat.completion.chunk`` events
out, ending with the optional usage chunk and ``data: [DONE]``."""

from __future__ import annotations

import time
from typing import Any

from tokgateway.common.sse import DONE
from tokgateway.router.translate._common import (
    ANTHROPIC_TO_CHAT_STOP,
    JSON,
    IdFactory,
    dump_arguments,
    int_field,
    new_id,
    sse_data,
)
from tokgateway.router.usage import Usage, from_anthropic


class MessagesToChatStream:
    """Feed every upstream event with :meth:`feed` and call :meth:`finish` once
    at the end of the upstream stream.

    Tool calls get an integer ``index`` (0, 1, ... in order of appearance);
    ``id``, ``type`` and ``function.name`` appear only in the first delta of a
    call and later deltas carry only ``function.arguments`` fragments, which is
    what the OpenAI SDK's stream helper needs to rebuild the call. When
    ``include_usage`` is set the other chunks carry ``"usage": null`` and
    :meth:`finish` sends one extra chunk with ``choices: []`` and the usage.
    An Anthropic ``error`` event becomes ``data: {"error": {...}}``."""

    def __init__(
        self,
        model: str,
        include_usage: bool,
        *,
        ids: IdFactory = new_id,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.chunk_id = ids("chatcmpl-")
        self._ids = ids
        self.created = int(time.time()) if created is None else created
        self._role_sent = False
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> tool call index
        self._usage: Usage | None = None
        self._thinking_tokens = 0
        self._stop: str | None = None
        self._finished = False  # the finish_reason chunk went out
        self._done = False
        self.error: JSON | None = None

    @property
    def usage(self) -> Usage | None:
        """The usage the upstream reported (None when it sent none)."""
        return self._usage

    @property
    def finish_reason(self) -> str | None:
        return self._stop

    def feed(self, event_name: str | None, data: JSON) -> list[bytes]:
        if self._done or self.error is not None:
            return []
        kind = data.get("type", event_name)
        out: list[bytes] = []
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._read_usage(message.get("usage"))
            self._role(out)
        elif kind == "content_block_start":
            self._block_start(data, out)
        elif kind == "content_block_delta":
            self._block_delta(data, out)
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._stop = ANTHROPIC_TO_CHAT_STOP.get(delta["stop_reason"], "stop")
            self._read_usage(data.get("usage"))
        elif kind == "message_stop":
            self._finish_chunk(out)
        elif kind == "error":
            error = data.get("error")
            err = error if isinstance(error, dict) else {}
            self.error = {
                "message": str(err.get("message") or "upstream error"),
                "type": str(err.get("type") or "api_error"),
                "code": err.get("type"),
                "param": None,
            }
            out.append(sse_data({"error": self.error}))
            self._finished = True
        return out

    def fail(self, error: JSON) -> list[bytes]:
        """The end of a stream the upstream broke off (the gateway's own
        OpenAI error object): the error chunk and ``data: [DONE]``, as an
        OpenAI stream ends on an error. Nothing when the stream already ended."""
        if self._done:
            return []
        self._done = True
        out: list[bytes] = []
        if self.error is None:
            self.error = error
            out.append(sse_data({"error": error}))
        out.append(DONE)
        return out

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        out: list[bytes] = []
        if self.error is None:
            self._finish_chunk(out)
            if self.include_usage:
                out.append(self._chunk([], usage=self._usage_body()))
        out.append(DONE)
        return out

    def _read_usage(self, raw: Any) -> None:
        if isinstance(raw, dict):
            self._usage = from_anthropic(raw, self._usage)
            details = raw.get("output_tokens_details")
            if isinstance(details, dict):
                self._thinking_tokens = int_field(details, "thinking_tokens")

    def _usage_body(self) -> JSON:
        usage = self._usage or Usage()
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self._thinking_tokens},
        }

    def _chunk(self, choices: list[JSON], *, usage: JSON | None = None) -> bytes:
        chunk: JSON = {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return sse_data(chunk)

    def _delta(self, delta: JSON, out: list[bytes], finish: str | None = None) -> None:
        self._role(out)
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        out.append(self._chunk([choice]))

    def _role(self, out: list[bytes]) -> None:
        if self._role_sent:
            return
        self._role_sent = True
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        out.append(self._chunk([choice]))

    def _block_start(self, data: JSON, out: list[bytes]) -> None:
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            return
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            self._delta({"content": block["text"]}, out)
        elif kind == "tool_use":
            position = len(self._tool_index)
            self._tool_index[index] = position
            call = {
                "index": position,
                "id": str(block.get("id") or self._ids("call_")),
                "type": "function",
                "function": {"name": str(block.get("name") or ""), "arguments": ""},
            }
            self._delta({"tool_calls": [call]}, out)
            initial = block.get("input")
            if isinstance(initial, dict) and initial:
                # Some proxies send the whole input up front and no deltas.
                self._arguments(position, dump_arguments(initial), out)

    def _block_delta(self, data: JSON, out: list[bytes]) -> None:
        delta = data.get("delta")
        index = data.get("index")
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            self._delta({"content": delta["text"]}, out)
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            if delta["thinking"]:
                self._delta({"reasoning_content": delta["thinking"]}, out)
        elif kind == "input_json_delta" and isinstance(index, int):
            fragment = delta.get("partial_json")
            position = self._tool_index.get(index)
            if position is not None and isinstance(fragment, str) and fragment:
                self._arguments(position, fragment, out)

    def _arguments(self, position: int, fragment: str, out: list[bytes]) -> None:
        self._delta({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}, out)

    def _finish_chunk(self, out: list[bytes]) -> None:
        if self._finished:
            return
        self._finished = True
        finish = self._stop or "stop"
        if self._tool_index and finish == "stop":
            finish = "tool_calls"
        self._stop = finish
        self._delta({}, out, finish)
