"""Gemini specifics the golden files do not show: thought signatures survive
the trip through a client, embeddings and error bodies."""

from __future__ import annotations

import base64
import os

import orjson
import pytest

from tests.unit.translate.helpers import counter_ids
from tokgateway.common.errors import BadRequest
from tokgateway.router.translate import gemini


def test_thought_signature_round_trip_through_the_client() -> None:
    signature = base64.b64encode(os.urandom(300)).decode()
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {
                            "functionCall": {"name": "f", "args": {"a": 1}, "id": "g-1"},
                            "thoughtSignature": signature,
                        }
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    chat = gemini.gemini_response_to_chat(answer, "gemini-3-pro", ids=counter_ids())
    message = chat["choices"][0]["message"]
    call_id = message["tool_calls"][0]["id"]
    assert all(c.isalnum() or c in "_-" for c in call_id)  # fits Anthropic's tool id pattern
    follow = {
        "model": "gemini-3-pro",
        "messages": [
            {"role": "user", "content": "go"},
            message,
            {"role": "tool", "tool_call_id": call_id, "content": "done"},
        ],
    }
    body = gemini.chat_request_to_gemini(follow)
    part = body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == signature
    assert part["functionCall"] == {"name": "f", "args": {"a": 1}, "id": "g-1"}
    assert body["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "f",
        "response": {"output": "done"},
        "id": "g-1",
    }


def test_split_call_id_without_signature() -> None:
    assert gemini.split_call_id("call_1") == ("call_1", None)
    assert gemini.encode_call_id("call_1", None) == "call_1"


def test_model_path() -> None:
    assert gemini.model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert gemini.model_path("tunedModels/x") == "tunedModels/x"


def test_embeddings_float_and_dimensions() -> None:
    req = {"model": "m", "input": "hello", "dimensions": 8}
    body = gemini.embeddings_request_to_gemini(req, "text-embedding-004")
    assert body["requests"][0]["outputDimensionality"] == 8
    out = gemini.gemini_embeddings_to_openai({"embeddings": [{"values": [1, 2]}]}, req, "m")
    assert out["data"] == [{"object": "embedding", "index": 0, "embedding": [1.0, 2.0]}]
    with pytest.raises(BadRequest):
        gemini.embeddings_request_to_gemini({"input": [[1, 2]]}, "m")


def test_error_bodies() -> None:
    wrapped = orjson.dumps(
        [{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]
    )
    assert (
        orjson.loads(gemini.gemini_error_to_openai(wrapped))["error"]["type"] == "rate_limit_error"
    )
    assert gemini.gemini_error_to_openai(b"<html>") == b"<html>"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "tool", "tool_call_id": "x", "content": "r"}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://a"}}]}],
        [{"role": "function", "content": "r"}],
    ],
)
def test_chat_request_rejects(messages: list[dict[str, object]]) -> None:
    with pytest.raises(BadRequest):
        gemini.chat_request_to_gemini({"model": "m", "messages": messages})


def test_stream_blocked_prompt_and_finish_without_reason() -> None:
    s = gemini.GeminiToChatStream("m", False, ids=counter_ids(), created=1)
    out = s.feed({"promptFeedback": {"blockReason": "SAFETY"}})
    assert b'"finish_reason":"content_filter"' in out[0]
    s2 = gemini.GeminiToChatStream("m", False, ids=counter_ids(), created=1)
    s2.feed({"candidates": [{"content": {"parts": [{"text": "cut"}]}}]})
    tail = s2.finish()
    assert b'"finish_reason":"stop"' in tail[0] and tail[-1] == b"data: [DONE]\n\n"
