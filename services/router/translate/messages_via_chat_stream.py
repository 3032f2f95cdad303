"""Anthropic Messages clients on an OpenAI Chat upstream, streamed: OpenAI
``chat.completion.chunk`` objects in, encoded Anthropic SSE events out.

The event order is the one the Anthropic SDK helpers demand: ``message_start``
first, then per content block ``content_block_start`` / ``content_block_delta``
... / ``content_block_stop``, then ``message_delta`` (stop reason and
cumulative usage) and ``message_stop``."""

from __future__ import annotations

from typing import Any, Literal

from tokgateway.router.translate._common import (
    CHAT_TO_ANTHROPIC_STOP,
    JSON,
    IdFactory,
    anthropic_usage,
    chat_usage,
    new_id,
    obj,
    openai_error_to_anthropic_type,
    reasoning_text,
    reasoning_tokens,
    sse_event,
    tool_use_id,
)
from tokgateway.router.usage import Usage, estimate_tokens

BlockKind = Literal["text", "thinking", "tool"]


class ChatToMessagesStream:
    """Feed each decoded chunk with :meth:`feed`, then call :meth:`finish` once
    when the upstream stream ends (after ``[DONE]`` or on close). Both return
    the encoded ``event: X\\ndata: {...}\\n\\n`` events to send, in order.

    Tool calls: each OpenAI tool-call ``index`` becomes its own ``tool_use``
    block; an id or name repeated in later deltas (llama.cpp) is ignored.
    Upstreams that interleave fragments of several calls are not supported:
    a fragment for a call whose block was already closed is dropped.
    An in-stream ``{"error": {...}}`` chunk becomes an ``event: error`` and
    ends the translation (``finish`` then returns nothing)."""

    def __init__(self, model: str, *, input_tokens: int = 0, ids: IdFactory = new_id) -> None:
        self.model = model
        self.message_id = ids("msg_")
        self._ids = ids
        self._input_tokens = input_tokens
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: tuple[BlockKind, int] | None = None  # (kind, OpenAI tool index or -1)
        self._open_index = -1
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool index -> block index
        self._tool_ids: dict[str, int] = {}  # upstream call id -> OpenAI tool index
        self._pending: dict[int, JSON] = {}  # tool calls seen before their name
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._thinking_tokens = 0
        self._chars = 0
        self._saw_tool = False
        self.stop_reason: str | None = None
        self.error: JSON | None = None

    @property
    def usage(self) -> Usage | None:
        """The usage the upstream reported (None when it sent none)."""
        return self._usage

    def feed(self, chunk: JSON) -> list[bytes]:
        if self._done:
            return []
        out: list[bytes] = []
        self._start(out)
        error = chunk.get("error")
        if error:
            self._error(error, out)
            return out
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = chat_usage(usage)
            self._thinking_tokens = reasoning_tokens(usage)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish_reason = reason
        return out

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        out: list[bytes] = []
        self._start(out)
        for idx in sorted(self._pending):
            self._open_tool(idx, out)
        self._close(out)
        stop = CHAT_TO_ANTHROPIC_STOP.get(self._finish_reason or "", "end_turn")
        if self._saw_tool and stop == "end_turn":
            stop = "tool_use"
        self.stop_reason = stop
        if self._usage is not None:
            usage = anthropic_usage(self._usage, self._thinking_tokens)
        else:
            usage = anthropic_usage(
                Usage(self._input_tokens, estimate_tokens(self._chars) if self._chars else 0)
            )
        out.append(
            sse_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        self._done = True
        return out

    def fail(self, error: JSON) -> list[bytes]:
        """The end of a stream the upstream broke off: ``event: error`` with
        the gateway's own Anthropic error object (``type``, ``message``), as
        an Anthropic stream ends on an error. Nothing when it already ended."""
        if self._done:
            return []
        out: list[bytes] = []
        self._start(out)
        self.error = error
        out.append(sse_event("error", {"type": "error", "error": error}))
        self._done = True
        return out

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        message: JSON = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(Usage(self._input_tokens, 0)),
        }
        out.append(sse_event("message_start", {"type": "message_start", "message": message}))

    def _error(self, error: Any, out: list[bytes]) -> None:
        if isinstance(error, dict):
            message = str(error.get("message") or "upstream error")
            kind = openai_error_to_anthropic_type(error)
        else:
            message, kind = str(error), "api_error"
        if kind == "api_error":
            # As for the gateway's own mid-stream failures: Anthropic clients
            # retry an overloaded_error.
            kind = "overloaded_error"
        self.error = {"type": kind, "message": message}
        out.append(sse_event("error", {"type": "error", "error": self.error}))
        self._done = True

    def _delta(self, delta: JSON, out: list[bytes]) -> None:
        thinking = reasoning_text(delta)
        if thinking:
            self._text_block("thinking", thinking, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text_block("text", content, out)
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                self._tool_delta(self._tool_index(call, position), call, out)

    def _text_block(self, kind: BlockKind, text: str, out: list[bytes]) -> None:
        if self._open is None or self._open[0] != kind:
            self._close(out)
            block: JSON = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            self._begin(kind, -1, block, out)
        self._chars += len(text)
        delta = (
            {"type": "text_delta", "text": text}
            if kind == "text"
            else {"type": "thinking_delta", "thinking": text}
        )
        out.append(self._block_event("content_block_delta", {"delta": delta}))

    def _tool_index(self, call: JSON, position: int) -> int:
        idx = call.get("index")
        call_id = call.get("id")
        if isinstance(idx, int) and not isinstance(idx, bool):
            if isinstance(call_id, str) and call_id:
                self._tool_ids.setdefault(call_id, idx)
            return idx
        # No index (a non-conforming upstream): match by id, else the open call.
        if isinstance(call_id, str) and call_id:
            if call_id not in self._tool_ids:
                known = set(self._tool_blocks) | set(self._pending)
                self._tool_ids[call_id] = max(known, default=-1) + 1
            return self._tool_ids[call_id]
        if self._open is not None and self._open[0] == "tool":
            return self._open[1]
        return position

    def _tool_delta(self, idx: int, call: JSON, out: list[bytes]) -> None:
        function = obj(call.get("function"))
        args = function.get("arguments")
        if idx not in self._tool_blocks:
            pending = self._pending.setdefault(idx, {"id": None, "name": "", "args": []})
            if isinstance(call.get("id"), str) and call["id"] and not pending["id"]:
                pending["id"] = call["id"]
            if isinstance(function.get("name"), str) and function["name"]:
                pending["name"] = function["name"]
            if isinstance(args, str) and args:
                pending["args"].append(args)
            if pending["name"]:
                self._open_tool(idx, out)
            return
        if self._open != ("tool", idx):
            return  # the block for this call was already closed
        if isinstance(args, str) and args:
            self._json_delta(args, out)

    def _open_tool(self, idx: int, out: list[bytes]) -> None:
        pending = self._pending.pop(idx)
        self._close(out)
        block = {
            "type": "tool_use",
            "id": tool_use_id(pending["id"], self._ids),
            "name": pending["name"],
            "input": {},
        }
        self._begin("tool", idx, block, out)
        self._tool_blocks[idx] = self._open_index
        self._saw_tool = True
        for fragment in pending["args"]:
            self._json_delta(fragment, out)

    def _json_delta(self, fragment: str, out: list[bytes]) -> None:
        self._chars += len(fragment)
        delta = {"type": "input_json_delta", "partial_json": fragment}
        out.append(self._block_event("content_block_delta", {"delta": delta}))

    def _begin(self, kind: BlockKind, key: int, block: JSON, out: list[bytes]) -> None:
        self._open = (kind, key)
        self._open_index = self._next_index
        self._next_index += 1
        out.append(self._block_event("content_block_start", {"content_block": block}))

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        out.append(self._block_event("content_block_stop", {}))
        self._open = None

    def _block_event(self, kind: str, fields: JSON) -> bytes:
        return sse_event(kind, {"type": kind, "index": self._open_index, **fields})
