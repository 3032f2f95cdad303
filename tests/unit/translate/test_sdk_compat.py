"""The official SDKs parse what the translators emit. A local server replays
the translated bytes; no gateway is involved, so a failure here is a wire
format problem of the translator alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.unit.translate.helpers import load, replay_server
from tests.unit.translate.runners import encoded, run


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    with replay_server() as pair:
        yield pair


def _anthropic(base: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=base, api_key="k", max_retries=0, _strict_response_validation=True
    )


def _openai(base: str, strict: bool = True) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=base + "/v1", api_key="k", max_retries=0, _strict_response_validation=strict
    )


def _replay_stream(state: Any, name: str) -> dict[str, Any]:
    fixture = load(name)
    state.body = b"".join(encoded(fixture["kind"], fixture["options"], fixture["input"]))
    state.content_type = "text/event-stream"
    return fixture


def _stream_kw() -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


# Anthropic clients on a chat upstream


def test_anthropic_stream_text(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "chat_to_messages_stream__text")
    with _anthropic(base).messages.stream(**_stream_kw()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello"
    assert final.content[0].type == "text" and final.content[0].text == "Hello"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 10
    assert final.usage.cache_read_input_tokens == 10
    assert final.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("name", "calls"),
    [
        (
            "chat_to_messages_stream__tools",
            [
                ("call_w1", "get_weather", {"city": "Paris"}),
                ("call_w2", "get_weather", {"city": "Rome", "unit": "c"}),
            ],
        ),
        ("chat_to_messages_stream__llamacpp", [("call_ll1", "get_weather", {"city": "Oslo"})]),
        ("chat_to_messages_stream__late_name", [("call_n1", "lookup", {"q": 1})]),
    ],
)
def test_anthropic_stream_tool_use(
    server: tuple[str, Any], name: str, calls: list[tuple[str, str, Any]]
) -> None:
    base, state = server
    _replay_stream(state, name)
    with _anthropic(base).messages.stream(**_stream_kw()) as stream:
        final = stream.get_final_message()
    tools = [b for b in final.content if b.type == "tool_use"]
    assert [(t.id, t.name, t.input) for t in tools] == calls
    assert final.stop_reason == "tool_use"


def test_anthropic_stream_thinking(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "chat_to_messages_stream__reasoning")
    with _anthropic(base).messages.stream(**_stream_kw()) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].type == "thinking" and final.content[0].thinking == "Thinking."


def test_anthropic_stream_error(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "chat_to_messages_stream__error")
    client = _anthropic(base)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(**_stream_kw()) as stream,
    ):
        stream.get_final_message()
    assert info.value.type == "overloaded_error"
    assert "The server had an error" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "chat_response_to_message__text",
        "chat_response_to_message__tools",
        "chat_response_to_message__length",
    ],
)
def test_anthropic_create(server: tuple[str, Any], name: str) -> None:
    base, state = server
    state.body = orjson.dumps(run(load(name)))
    state.content_type = "application/json"
    message = _anthropic(base).messages.create(
        model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.type == "message"
    assert message.id.startswith("msg_")
    if name.endswith("tools"):
        blocks = [b for b in message.content if b.type == "tool_use"]
        assert [b.input for b in blocks] == [{"city": "Paris"}, {"_raw_arguments": "{city: Rome"}]


# OpenAI chat clients on an Anthropic upstream


def test_openai_stream_text(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "messages_to_chat_stream__text")
    client = _openai(base)
    kw: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with client.chat.completions.stream(**kw, stream_options={"include_usage": True}) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "Hello world"
    assert final.choices[0].message.content == "Hello world"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.prompt_tokens == 30
    assert final.usage.completion_tokens == 3


def test_openai_stream_tool_calls(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "messages_to_chat_stream__tools")
    client = _openai(base)
    with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_a", "get_weather", '{"city": "Paris"}'),
        ("toolu_b", "get_weather", '{"city": "Rome"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_raw_stream_chunks_strict(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "messages_to_chat_stream__tools")
    chunks = list(
        _openai(base).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_stream_error(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "messages_to_chat_stream__error")
    stream = _openai(base).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.message == "Overloaded"


@pytest.mark.parametrize(
    "name",
    [
        "message_to_chat_response__text",
        "message_to_chat_response__tools",
        "message_to_chat_response__max_tokens",
    ],
)
def test_openai_create(server: tuple[str, Any], name: str) -> None:
    base, state = server
    state.body = orjson.dumps(run(load(name)))
    state.content_type = "application/json"
    completion = _openai(base).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.object == "chat.completion"
    if name.endswith("tools"):
        call = (completion.choices[0].message.tool_calls or [])[0]
        assert call.function.arguments == '{"city":"Paris"}'  # type: ignore[union-attr]


# Responses clients on a chat upstream


def test_responses_stream_text(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "chat_to_responses_stream__text")
    with _openai(base).responses.stream(model="m", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Hello"
    assert final.output_text == "Hello"
    assert final.status == "completed"
    assert final.usage is not None and final.usage.input_tokens_details.cached_tokens == 10


def test_responses_stream_tools(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "chat_to_responses_stream__tools")
    with _openai(base).responses.stream(model="m", input="hi") as stream:
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_w1", "get_weather", '{"city": "Paris"}'),
        ("call_w2", "get_weather", '{"city": "Rome", "unit": "c"}'),
    ]
    assert final.output_text == "Let me check."


def test_responses_stream_error(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "chat_to_responses_stream__error")
    events = list(_openai(base).responses.create(model="m", input="hi", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]


@pytest.mark.parametrize(
    "name", ["chat_response_to_response__tools", "chat_response_to_response__length"]
)
def test_responses_create(server: tuple[str, Any], name: str) -> None:
    base, state = server
    state.body = orjson.dumps(run(load(name)))
    state.content_type = "application/json"
    response = _openai(base).responses.create(model="m", input="hi")
    if name.endswith("tools"):
        assert response.output_text == "Checking."
        assert response.usage is not None and response.usage.total_tokens == 52
    else:
        assert response.status == "incomplete"


# OpenAI chat clients on Gemini


def test_openai_stream_over_gemini(server: tuple[str, Any]) -> None:
    base, state = server
    _replay_stream(state, "gemini_to_chat_stream__tools")
    with _openai(base).chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Hello"
    calls = [(c.id, c.function.arguments) for c in message.tool_calls or []]  # type: ignore[union-attr]
    assert calls == [("call_001__ts_Sig-_w", '{"city":"Oslo"}'), ("call_002", '{"city":"Bergen"}')]
    assert final.usage is not None and final.usage.completion_tokens == 12


@pytest.mark.parametrize(
    "name",
    [
        "gemini_response_to_chat__tools",
        "gemini_response_to_chat__blocked",
        "gemini_response_to_chat__length",
    ],
)
def test_openai_create_over_gemini(server: tuple[str, Any], name: str) -> None:
    base, state = server
    state.body = orjson.dumps(run(load(name)))
    state.content_type = "application/json"
    completion = _openai(base).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].finish_reason in ("tool_calls", "content_filter", "length")
