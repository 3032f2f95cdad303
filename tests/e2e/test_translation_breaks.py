"""A provider that dies mid-stream, through every translation direction: the
client's own SDK sees a failed stream of its own API and raises (or reports)
the gateway's error instead of hanging or failing to parse."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.support.gateway_proc import GatewayProcess

pytestmark = pytest.mark.e2e

BROKE = "broke off its stream"


@pytest.fixture
def oai(gateway: GatewayProcess, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=api_key, max_retries=0, timeout=20
    ) as c:
        yield c


def _raw_stream(gateway: GatewayProcess, api_key: str, path: str, body: dict[str, object]) -> bytes:
    headers = {"authorization": f"Bearer {api_key}", "x-api-key": api_key}
    with httpx.stream("POST", gateway.url + path, json=body, headers=headers, timeout=20) as resp:
        assert resp.status_code == 200
        return resp.read()


def test_chat_client_on_anthropic_provider(
    oai: openai.OpenAI, gateway: GatewayProcess, api_key: str
) -> None:
    stream = oai.chat.completions.create(
        model="claude-haiku-midbreak", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = []
    with pytest.raises(openai.APIError, match=BROKE):
        for chunk in stream:
            text.append(chunk.choices[0].delta.content or "")
    assert "".join(text) == "Hello from"
    body = {
        "model": "claude-haiku-midbreak",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    raw = _raw_stream(gateway, api_key, "/v1/chat/completions", body)
    events = raw.split(b"\n\n")
    assert raw.endswith(b"data: [DONE]\n\n")
    error = orjson.loads(events[-3].removeprefix(b"data: "))["error"]
    assert BROKE in error["message"] and error["type"] == "upstream_unavailable"


def test_anthropic_client_on_openai_provider(gateway: GatewayProcess, api_key: str) -> None:
    with (
        anthropic.Anthropic(
            base_url=gateway.url, api_key=api_key, max_retries=0, timeout=20
        ) as ant,
        pytest.raises(anthropic.APIStatusError, match=BROKE) as exc,
        ant.messages.stream(
            model="gpt-4o-midbreak", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert exc.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("model", ["gpt-4o-midbreak", "claude-haiku-midbreak"])
def test_responses_client(oai: openai.OpenAI, model: str) -> None:
    events = list(oai.responses.create(model=model, input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    error, failed = events[-2], events[-1]
    assert error.type == "error" and BROKE in error.message
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and BROKE in failed.response.error.message
    with oai.responses.stream(model=model, input="hi") as helper:
        seen = [e.type for e in helper]
    assert seen[-1] == "response.failed"
