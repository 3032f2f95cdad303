"""Property tests (hypothesis) of every translation function.

* Requests: any body the gateway's validator lets through reaches the
  translator, which either translates it or refuses it with BadRequest: never
  another exception (that would be a 500).
* Upstream answers and stream events: any JSON an upstream sends is
  translated or refused with a GatewayError.
* Round trips where both directions exist keep the text, the roles, the stop
  reason and the token counts."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.translate.helpers import counter_ids
from tokgateway.common.errors import BadRequest, GatewayError
from tokgateway.router import translate as t
from tokgateway.router import validate
from tokgateway.router.translate import gemini as g

KEYS = [
    "model", "messages", "role", "content", "type", "text", "tool_calls", "id", "function",
    "name", "arguments", "tool_call_id", "tools", "tool_choice", "max_tokens",
    "max_completion_tokens", "max_output_tokens", "stream", "stream_options", "include_usage",
    "temperature", "top_p", "stop", "stop_sequences", "system", "image_url", "url", "source",
    "media_type", "data", "input", "tool_use_id", "is_error", "thinking", "budget_tokens",
    "reasoning_effort", "reasoning", "response_format", "json_schema", "schema", "choices",
    "message", "delta", "finish_reason", "index", "usage", "prompt_tokens", "completion_tokens",
    "total_tokens", "input_tokens", "output_tokens", "stop_reason", "candidates", "parts",
    "instructions", "previous_response_id", "output", "call_id", "refusal", "metadata", "user",
    "n", "parallel_tool_calls", "cache_control", "signature", "partial_json", "content_block",
    "embedding", "embeddings", "values", "error", "parameters", "input_schema", "detail",
    "prompt_tokens_details", "cached_tokens", "completion_tokens_details", "reasoning_tokens",
    "usageMetadata", "promptTokenCount", "candidatesTokenCount", "finishReason", "functionCall",
    "args", "inlineData", "mimeType", "cache_read_input_tokens", "encoding_format", "dimensions",
    "file", "file_id", "document", "image", "base64", "strict", "description", "format",
    "status", "code", "param", "logprobs", "store", "summary", "effort",
    "disable_parallel_tool_use",
]  # fmt: skip
TYPES = [
    "text", "image_url", "image", "tool_use", "tool_result", "function", "message",
    "function_call", "function_call_output", "input_text", "output_text", "input_image",
    "thinking", "redacted_thinking", "document", "base64", "url", "json_schema", "json_object",
    "auto", "any", "none", "tool", "required", "refusal", "file", "input_file",
    "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "text_delta", "input_json_delta", "thinking_delta",
    "signature_delta", "error", "ping",
]  # fmt: skip
ROLES = ["system", "developer", "user", "assistant", "tool", "function", "model"]
FINISH = ["stop", "length", "tool_calls", "content_filter", "function_call", "end_turn",
          "max_tokens", "tool_use", "stop_sequence", "STOP", "MAX_TOKENS", "SAFETY"]  # fmt: skip

leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(TYPES + ROLES + FINISH),
)
json_value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    ),
    max_leaves=30,
)
obj = st.dictionaries(st.sampled_from(KEYS), json_value, max_size=8)
PROPS = settings(
    max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _message(roles: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda role, content, extra: {**extra, "role": role, "content": content},
        st.sampled_from(roles),
        st.one_of(st.text(max_size=20), st.lists(obj, max_size=3), json_value),
        obj,
    )


def _body(roles: list[str], **fixed: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda extra, messages: {**extra, **fixed, "messages": messages},
        obj,
        st.lists(st.one_of(_message(roles), obj), min_size=1, max_size=4),
    )


def _refused_or_done(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except BadRequest:
        return None


def _valid(check: Any, body: dict[str, Any]) -> bool:
    try:
        check(body)
    except BadRequest:
        return False
    return True


# -- requests: valid for the gateway, then translated or refused -----------------
@PROPS
@given(_body(ROLES, model="m"))
def test_chat_request_to_messages(body: dict[str, Any]) -> None:
    if _valid(validate.check_chat, body):
        out = _refused_or_done(t.chat_request_to_messages, body)
        if out is not None:
            orjson.dumps(out)
            assert isinstance(t.stream_include_usage(body), bool)


@PROPS
@given(_body(ROLES, model="m"))
def test_chat_request_to_gemini(body: dict[str, Any]) -> None:
    if _valid(validate.check_chat, body):
        out = _refused_or_done(g.chat_request_to_gemini, body)
        if out is not None:
            orjson.dumps(out)


@PROPS
@given(_body(["user", "assistant"], model="m", max_tokens=5))
def test_messages_request_to_chat(body: dict[str, Any]) -> None:
    if _valid(validate.check_messages, body):
        out = _refused_or_done(t.messages_request_to_chat, body)
        if out is not None:
            orjson.dumps(out)


@PROPS
@given(
    st.builds(
        lambda extra, value: {**extra, "model": "m", "input": value},
        obj,
        st.one_of(st.text(max_size=20), st.lists(st.one_of(_message(ROLES), obj), max_size=4)),
    ),
    st.one_of(st.none(), st.lists(_message(["user", "assistant", "system"]), max_size=3)),
)
def test_responses_request_to_chat(body: dict[str, Any], history: list[Any] | None) -> None:
    if _valid(validate.check_responses, body):
        chat = _refused_or_done(t.responses_request_to_chat, body, history)
        if chat is not None:
            orjson.dumps(chat)


@PROPS
@given(obj, st.one_of(st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3)))
def test_embeddings_request_to_gemini(extra: dict[str, Any], value: Any) -> None:
    body = {**extra, "model": "m", "input": value}
    if _valid(validate.check_embeddings, body):
        out = _refused_or_done(g.embeddings_request_to_gemini, body, "m")
        if out is not None:
            orjson.dumps(out)


# -- upstream answers: anything is translated or refused as a gateway error ---------
def _gateway_error_or_done(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except GatewayError:
        return None


@PROPS
@given(obj)
def test_chat_response_to_message(body: dict[str, Any]) -> None:
    _gateway_error_or_done(t.chat_response_to_message, body, model="m", ids=counter_ids())


@PROPS
@given(obj)
def test_message_to_chat_response(body: dict[str, Any]) -> None:
    _gateway_error_or_done(t.message_to_chat_response, body, model="m", ids=counter_ids())


@PROPS
@given(obj, st.builds(lambda extra: {**extra, "model": "m", "input": "hi"}, obj))
def test_chat_response_to_response(body: dict[str, Any], request: dict[str, Any]) -> None:
    if not _valid(validate.check_responses, request):
        return
    out = _gateway_error_or_done(t.chat_response_to_response, body, request, ids=counter_ids())
    if out is not None:
        chat = _refused_or_done(t.responses_request_to_chat, request)
        if chat is not None:
            _gateway_error_or_done(t.conversation_after, request, chat, out)


@PROPS
@given(obj)
def test_gemini_response_to_chat(body: dict[str, Any]) -> None:
    _gateway_error_or_done(g.gemini_response_to_chat, body, "m", ids=counter_ids())


@PROPS
@given(obj, st.builds(lambda extra: {**extra, "model": "m", "input": "x"}, obj))
def test_gemini_embeddings_to_openai(body: dict[str, Any], request: dict[str, Any]) -> None:
    _gateway_error_or_done(g.gemini_embeddings_to_openai, body, request, "m")


@PROPS
@given(st.one_of(st.binary(max_size=50), json_value.map(orjson.dumps)))
def test_gemini_error_to_openai(raw: bytes) -> None:
    out = g.gemini_error_to_openai(raw)
    if out != raw:  # a Gemini error became OpenAI's shape; other bodies pass unchanged
        assert isinstance(orjson.loads(out)["error"]["message"], str)


@PROPS
@given(obj.map(lambda e: {"error": e}), st.booleans())
def test_gemini_error_becomes_openai_shape(body: dict[str, Any], wrapped: bool) -> None:
    raw = orjson.dumps([body] if wrapped else body)
    error = orjson.loads(g.gemini_error_to_openai(raw))["error"]
    assert isinstance(error["message"], str) and isinstance(error["type"], str)


# -- streams: any sequence of upstream events ---------------------------------------
def _feed_all(stream: Any, events: list[Any], *, named: bool = False) -> None:
    out: list[bytes] = []
    try:
        for event in events:
            out += stream.feed(event.get("type"), event) if named else stream.feed(event)
        out += stream.finish()
    except GatewayError:
        return
    assert all(isinstance(piece, bytes) for piece in out)


@PROPS
@given(st.lists(obj, max_size=6))
def test_chat_to_messages_stream(events: list[dict[str, Any]]) -> None:
    _feed_all(t.ChatToMessagesStream("m", ids=counter_ids()), events)


@PROPS
@given(st.lists(obj, max_size=6), st.booleans())
def test_messages_to_chat_stream(events: list[dict[str, Any]], usage: bool) -> None:
    _feed_all(t.MessagesToChatStream("m", usage, ids=counter_ids()), events, named=True)


@PROPS
@given(st.lists(obj, max_size=6))
def test_chat_to_responses_stream(events: list[dict[str, Any]]) -> None:
    _feed_all(t.ChatToResponsesStream({"model": "m", "input": "x"}, ids=counter_ids()), events)


@PROPS
@given(st.lists(obj, max_size=6), st.booleans())
def test_gemini_to_chat_stream(events: list[dict[str, Any]], usage: bool) -> None:
    _feed_all(g.GeminiToChatStream("m", usage, ids=counter_ids()), events)


# -- round trips ------------------------------------------------------------------
text = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s != "")
turns = st.lists(text, min_size=1, max_size=5)


@PROPS
@given(turns, st.integers(1, 4096), st.one_of(st.none(), text))
def test_messages_request_round_trip(texts: list[str], max_tokens: int, system: Any) -> None:
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": x} for i, x in enumerate(texts)]
    body: dict[str, Any] = {"model": "m", "max_tokens": max_tokens, "messages": messages}
    if system is not None:
        body["system"] = system
    back = t.chat_request_to_messages(t.messages_request_to_chat(body))
    assert back["max_tokens"] == max_tokens
    assert back.get("system") in (
        system,
        None if system is None else [{"type": "text", "text": system}],
    )
    assert [m["role"] for m in back["messages"]] == [m["role"] for m in messages]
    got = [
        m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
        for m in back["messages"]
    ]
    assert got == texts


@PROPS
@given(
    text,
    st.sampled_from(["stop", "length"]),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_chat_response_round_trip(content: str, finish: str, prompt: int, completion: int) -> None:
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    message = t.chat_response_to_message(chat, model="m", ids=counter_ids())
    back = t.message_to_chat_response(message, model="m", ids=counter_ids(), created=1)
    choice = back["choices"][0]
    assert choice["message"]["content"] == content
    assert choice["finish_reason"] == finish
    assert back["usage"]["prompt_tokens"] == prompt
    assert back["usage"]["completion_tokens"] == completion
