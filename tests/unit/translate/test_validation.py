"""Input the translators must refuse, with a message that names the field,
and edge cases that golden files do not show well."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.translate.helpers import counter_ids, decode
from tokgateway.common.errors import BadRequest
from tokgateway.router import translate as t


def _anthropic(messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": messages, **extra}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_anthropic([{"role": "system", "content": "x"}]), "messages.0.role"),
        (
            _anthropic(
                [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}],
                    }
                ]
            ),
            "no earlier assistant message has a tool_use block",
        ),
        (_anthropic([{"role": "user", "content": 5}]), "messages.0.content: must be an array"),
        (_anthropic("nope"), "messages: must be an array"),  # type: ignore[arg-type]
        (
            _anthropic([{"role": "user", "content": [{"type": "audio"}]}]),
            "messages.0.content.0.type",
        ),
        (
            _anthropic(
                [{"role": "user", "content": "x"}],
                tools=[{"type": "web_search_20250305", "name": "web_search"}],
            ),
            "tools.0.type",
        ),
        (_anthropic([{"role": "user", "content": "x"}], max_tokens=0), "max_tokens"),
        (_anthropic([{"role": "user", "content": "x"}], temperature="hot"), "temperature"),
        (
            _anthropic([{"role": "user", "content": "x"}], tool_choice={"type": "some"}),
            "tool_choice",
        ),
        (_anthropic([{"role": "user", "content": "x"}], system=[{"type": "image"}]), "system.0"),
        (
            _anthropic(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            ),
            "image source",
        ),
        ({"model": 3, "messages": []}, "model"),
    ],
)
def test_messages_request_rejects(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        t.messages_request_to_chat(body)
    assert needle in info.value.message
    assert info.value.http_status == 400


def test_tool_result_must_follow_an_earlier_tool_use_not_a_later_one() -> None:
    body = _anthropic(
        [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
            },
        ]
    )
    with pytest.raises(BadRequest):
        t.messages_request_to_chat(body)


def _chat(messages: list[Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": messages, **extra}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_chat([{"role": "user", "content": "x"}], n=2), "n:"),
        (_chat([{"role": "tool", "tool_call_id": "c1", "content": "r"}]), "tool_call_id"),
        (_chat([{"role": "function", "name": "f", "content": "r"}]), "role"),
        (
            _chat([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
            "input_audio",
        ),
        (
            _chat([{"role": "user", "content": "x"}], tools=[{"type": "custom", "custom": {}}]),
            "tools[0].type",
        ),
        (
            _chat(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            ),
            "image_url.url",
        ),
        (
            _chat([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]),
            "file_data",
        ),
        (_chat([{"role": "user", "content": "x"}], reasoning_effort="huge"), "reasoning_effort"),
        (_chat([{"role": "user", "content": "x"}], stream="yes"), "stream"),
    ],
)
def test_chat_request_rejects(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        t.chat_request_to_messages(body)
    assert needle in info.value.message


def test_chat_request_thinking_keeps_room_for_the_answer() -> None:
    out = t.chat_request_to_messages(
        _chat(
            [{"role": "user", "content": "x"}], max_tokens=1000, reasoning_effort="low", top_p=0.5
        )
    )
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert out["max_tokens"] == 3048
    assert "top_p" not in out


def test_chat_request_parallel_false_without_choice() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = t.chat_request_to_messages(
        _chat([{"role": "user", "content": "x"}], tools=tools, parallel_tool_calls=False)
    )
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


def test_stream_include_usage() -> None:
    assert t.stream_include_usage({"stream_options": {"include_usage": True}})
    assert not t.stream_include_usage({"stream": True})


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
        (
            {
                "model": "m",
                "input": [{"type": "function_call_output", "call_id": "c", "output": ""}],
            },
            "no function call found",
        ),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "input": "x", "background": True}, "background"),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "role"),
        (
            {"model": "m", "input": [{"role": "system", "content": [{"type": "input_image"}]}]},
            "image_url",
        ),
        ({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ],
)
def test_responses_request_rejects(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        t.responses_request_to_chat(body)
    assert needle in info.value.message


def test_conversation_after_chains_previous_response() -> None:
    request = {"model": "m", "instructions": "Be brief.", "input": "Weather?"}
    chat = t.responses_request_to_chat(request)
    response = {
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{}"},
        ]
    }
    history = t.conversation_after(request, chat, response)
    assert history == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
    ]
    follow = {
        "model": "m",
        "instructions": "New rules.",
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
    }
    out = t.responses_request_to_chat(follow, history)
    assert out["messages"][0] == {"role": "system", "content": "New rules."}
    assert out["messages"][1:3] == history
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert "tool_calls" in history[1]  # the stored history is not modified


def test_chat_to_messages_stream_without_any_chunk_is_still_well_formed() -> None:
    s = t.ChatToMessagesStream("m", ids=counter_ids())
    names = [e[0] for e in decode(s.finish())]
    assert names == ["message_start", "message_delta", "message_stop"]
    assert s.finish() == [] and s.feed({"choices": []}) == []
    assert s.usage is None and s.stop_reason == "end_turn"


def test_chat_to_messages_stream_drops_fragments_of_a_closed_call() -> None:
    s = t.ChatToMessagesStream("m", ids=counter_ids())
    out: list[bytes] = []
    for idx, frag in ((0, "{}"), (1, "{}"), (0, "late")):
        call = {"index": idx, "id": f"c{idx}", "function": {"name": "f", "arguments": frag}}
        out += s.feed({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    out += s.finish()
    partial = [e[1]["delta"]["partial_json"] for e in decode(out) if e[0] == "content_block_delta"]
    assert partial == ["{}", "{}"]


def test_chat_to_messages_stream_ignores_other_choices_and_empty_text() -> None:
    s = t.ChatToMessagesStream("m", ids=counter_ids())
    out = s.feed({"choices": [{"index": 1, "delta": {"content": "other"}}]})
    out += s.feed({"choices": [{"index": 0, "delta": {"content": ""}}]})
    assert [e[0] for e in decode(out)] == ["message_start"]


def test_messages_to_chat_stream_tool_input_given_up_front() -> None:
    s = t.MessagesToChatStream("m", False, ids=counter_ids(), created=1)
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
    out = s.feed(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    out += s.finish()
    events = decode(out)
    calls = [
        c for e in events[:-1] for ch in e[1]["choices"] for c in ch["delta"].get("tool_calls", [])
    ]
    assert calls[0]["id"] == "toolu_1" and calls[1] == {
        "index": 0,
        "function": {"arguments": '{"a":1}'},
    }
    assert events[-2][1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1] == [None, "[DONE]"]


def test_responses_stream_final_response_matches_completed_event() -> None:
    request = {"model": "m", "input": "x"}
    s = t.ChatToResponsesStream(request, ids=counter_ids(), clock=lambda: 5.0)
    out = s.feed({"choices": [{"index": 0, "delta": {"refusal": "No."}, "finish_reason": "stop"}]})
    out += s.finish()
    events = decode(out)
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"] == s.response
    assert s.response is not None and s.response["output"][0]["content"] == [
        {"type": "refusal", "refusal": "No."}
    ]
    assert [e[1]["sequence_number"] for e in events] == list(range(len(events)))


def test_raw_arguments_round_trip() -> None:
    message = t.chat_response_to_message(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
        ids=counter_ids(),
    )
    block = message["content"][0]
    assert block["input"] == {t.RAW_ARGUMENTS_KEY: "[1]"}
    back = t.messages_request_to_chat(
        _anthropic([{"role": "user", "content": "x"}, {"role": "assistant", "content": [block]}])
    )
    assert back["messages"][1]["tool_calls"][0]["function"]["arguments"] == "[1]"
