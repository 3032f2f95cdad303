"""One runner per translator kind: fixture input + options in, the value the
golden file stores out (streams: decoded ``[event, data]`` pairs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.unit.translate.helpers import CREATED, counter_ids, decode, fixed_clock
from tokgateway.router import translate as t


def encoded(kind: str, opts: dict[str, Any], data: Any) -> list[bytes]:
    """The raw bytes a stream translator emits for a fixture."""
    ids = counter_ids()
    out: list[bytes] = []
    if kind == "chat_to_messages_stream":
        s1 = t.ChatToMessagesStream(
            opts.get("model", "m"), input_tokens=opts.get("input_tokens", 0), ids=ids
        )
        for chunk in data:
            out += s1.feed(chunk)
        return out + s1.finish()
    if kind == "messages_to_chat_stream":
        s2 = t.MessagesToChatStream(opts["model"], opts["include_usage"], ids=ids, created=CREATED)
        for name, payload in data:
            out += s2.feed(name, payload)
        return out + s2.finish()
    if kind == "chat_to_responses_stream":
        s3 = t.ChatToResponsesStream(data["request"], ids=ids, clock=fixed_clock)
        for chunk in data["chunks"]:
            out += s3.feed(chunk)
        return out + s3.finish()
    if kind == "gemini_to_chat_stream":
        from tokgateway.router.translate import gemini

        s4 = gemini.GeminiToChatStream(
            opts.get("model", "m"), opts.get("include_usage", True), ids=ids, created=CREATED
        )
        for chunk in data:
            out += s4.feed(chunk)
        return out + s4.finish()
    raise KeyError(kind)


def _plain(kind: str) -> Callable[[dict[str, Any], Any], Any]:
    def run(opts: dict[str, Any], data: Any) -> Any:
        ids = counter_ids()
        if kind == "messages_request_to_chat":
            return t.messages_request_to_chat(data)
        if kind == "chat_response_to_message":
            return t.chat_response_to_message(data, model=opts.get("model"), ids=ids)
        if kind == "chat_request_to_messages":
            return t.chat_request_to_messages(data)
        if kind == "message_to_chat_response":
            return t.message_to_chat_response(
                data, model=opts.get("model"), ids=ids, created=CREATED
            )
        if kind == "responses_request_to_chat":
            return t.responses_request_to_chat(data["body"], data["history"])
        if kind == "chat_response_to_response":
            return t.chat_response_to_response(
                data["chat"], data["request"], ids=ids, created_at=CREATED
            )
        from tokgateway.router.translate import gemini

        if kind == "chat_request_to_gemini":
            return gemini.chat_request_to_gemini(data)
        if kind == "gemini_response_to_chat":
            return gemini.gemini_response_to_chat(
                data, opts.get("model", "m"), ids=ids, created=CREATED
            )
        raise KeyError(kind)

    return run


def run(fixture: dict[str, Any]) -> Any:
    kind = fixture["kind"]
    opts = fixture.get("options") or {}
    if kind.endswith("_stream"):
        return decode(encoded(kind, opts, fixture["input"]))
    return _plain(kind)(opts, fixture["input"])
