"""Any client on any provider: the official SDKs through every translation
direction, stream helpers included, with usage settled as for passthrough."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import gateway_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import REPLY, MockUpstream

pytestmark = pytest.mark.e2e

WEATHER_OPENAI = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
WEATHER_ANTHROPIC = [
    {
        "name": "get_weather",
        "description": "weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def oai(gateway: GatewayProcess, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0) as c:
        yield c


@pytest.fixture
def ant(gateway: GatewayProcess, api_key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0) as c:
        yield c


class TestAnthropicClientOnOpenAIProvider:
    def test_create_translates_request_and_usage(
        self, ant: anthropic.Anthropic, mock: tuple[MockUpstream, str], gateway: GatewayProcess
    ) -> None:
        raw = ant.messages.with_raw_response.create(
            model="gpt-4o",
            max_tokens=64,
            system="be brief",
            stop_sequences=["END"],
            messages=[{"role": "user", "content": "hi"}],
        )
        msg = raw.parse()
        assert msg.content[0].text == REPLY  # type: ignore[union-attr]
        assert msg.stop_reason == "end_turn"
        sent = mock[0].rec.last()
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent["stop"] == ["END"] and sent["max_tokens"] == 64
        # OpenAI prompt 11 includes 3 cached; Anthropic input_tokens excludes them
        assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens) == (8, 3)
        row = gateway.ledger_row(raw.headers["request-id"])
        assert (row["provider"], row["prompt_tokens"], row["completion_tokens"]) == ("mock", 11, 7)
        assert row["cost_usd"] == pytest.approx((8 * 2.5 + 3 * 1.25 + 7 * 10.0) / 1e6)

    def test_stream_helper(self, ant: anthropic.Anthropic, gateway: GatewayProcess) -> None:
        with ant.messages.stream(
            model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
            request_id = stream.response.headers["request-id"]
        assert text == REPLY
        assert final.stop_reason == "end_turn" and final.usage.output_tokens == 7
        row = gateway.ledger_row(request_id)
        assert (row["prompt_tokens"], row["completion_tokens"], row["stream"]) == (11, 7, 1)

    @pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-llamacpp"])
    def test_streamed_tool_use(self, ant: anthropic.Anthropic, model: str) -> None:
        with ant.messages.stream(
            model=model,
            max_tokens=64,
            tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "weather in Paris?"}],
        ) as stream:
            final = stream.get_final_message()
        block = final.content[-1]
        assert block.type == "tool_use"
        assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
        assert final.stop_reason == "tool_use"

    def test_tool_result_round_trip(
        self, ant: anthropic.Anthropic, mock: tuple[MockUpstream, str]
    ) -> None:
        ant.messages.create(
            model="gpt-4o",
            max_tokens=64,
            tools=WEATHER_ANTHROPIC,  # type: ignore[arg-type]
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_9",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}
                    ],
                },
            ],
        )
        sent = mock[0].rec.last()["messages"]
        assert sent[1]["tool_calls"][0]["function"] == {
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        }
        assert sent[2] == {"role": "tool", "tool_call_id": "toolu_9", "content": "sunny"}

    def test_tool_result_without_tool_use_is_400(
        self, gateway: GatewayProcess, api_key: str
    ) -> None:
        resp = httpx.post(
            gateway.url + "/v1/messages",
            headers={"x-api-key": api_key},
            json={
                "model": "gpt-4o",
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "nope", "content": "x"}],
                    }
                ],
            },
        )
        assert resp.status_code == 400
        assert resp.json()["type"] == "error"
        assert resp.json()["error"]["type"] == "invalid_request_error"

    def test_upstream_error_in_anthropic_shape(self, ant: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.RateLimitError) as exc:
            ant.messages.create(
                model="gpt-4o-429", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert exc.value.body["type"] == "error"  # type: ignore[index]

    def test_mid_stream_error_becomes_error_event(self, ant: anthropic.Anthropic) -> None:
        with (
            pytest.raises(anthropic.APIStatusError, match="upstream broke"),
            ant.messages.stream(
                model="gpt-4o-midfail", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            ) as stream,
        ):
            stream.get_final_message()


class TestOpenAIClientOnAnthropicProvider:
    def test_create(
        self, oai: openai.OpenAI, mock: tuple[MockUpstream, str], gateway: GatewayProcess
    ) -> None:
        raw = oai.chat.completions.with_raw_response.create(
            model="claude-haiku-4-5",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
        )
        out = raw.parse()
        assert out.choices[0].message.content == REPLY
        assert out.choices[0].finish_reason == "stop"
        sent = mock[0].rec.last()
        assert sent["system"] == "be brief" and sent["max_tokens"] > 0
        assert out.usage is not None and out.usage.prompt_tokens == 25
        row = gateway.ledger_row(raw.headers["x-request-id"])
        assert (row["provider"], row["prompt_tokens"], row["cached_tokens"]) == ("mockant", 25, 5)

    def test_stream_helper_with_tool_calls(self, oai: openai.OpenAI) -> None:
        with oai.chat.completions.stream(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": "weather?"}],
            tools=WEATHER_OPENAI,  # type: ignore[arg-type]
        ) as stream:
            final = stream.get_final_completion()
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]  # type: ignore[index]
        assert call.id == "toolu_1"
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert call.function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]

    def test_stream_text_and_usage_when_asked(self, oai: openai.OpenAI) -> None:
        chunks = list(
            oai.chat.completions.create(
                model="claude-haiku-4-5",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == REPLY
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


class TestResponsesAPI:
    def test_create_and_previous_response_id(
        self, oai: openai.OpenAI, mock: tuple[MockUpstream, str]
    ) -> None:
        first = oai.responses.create(model="gpt-4o", input="first question", instructions="terse")
        assert first.output_text == REPLY
        assert first.usage is not None and first.usage.input_tokens == 11
        second = oai.responses.create(
            model="gpt-4o", input="and a follow-up", previous_response_id=first.id
        )
        assert second.output_text == REPLY
        sent = mock[0].rec.last()["messages"]
        contents = [m.get("content") for m in sent]
        assert "first question" in str(contents) and REPLY in str(contents)
        assert sent[-1]["content"] in (
            "and a follow-up",
            [{"type": "text", "text": "and a follow-up"}],
        )

    def test_unknown_previous_response(self, oai: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError):
            oai.responses.create(model="gpt-4o", input="x", previous_response_id="resp_missing")

    def test_stream_helper(self, oai: openai.OpenAI) -> None:
        with oai.responses.stream(model="gpt-4o", input="hi") as stream:
            final = stream.get_final_response()
        assert final.output_text == REPLY
        assert final.status == "completed"

    def test_function_call(self, oai: openai.OpenAI) -> None:
        out = oai.responses.create(
            model="gpt-4o",
            input="weather?",
            tools=[
                {
                    "type": "function",
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
        )
        call = next(i for i in out.output if i.type == "function_call")
        assert call.name == "get_weather" and call.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]

    def test_on_anthropic_provider(self, oai: openai.OpenAI) -> None:
        out = oai.responses.create(model="claude-haiku-4-5", input="hi")
        assert out.output_text == REPLY
        with oai.responses.stream(model="claude-haiku-4-5", input="hi") as stream:
            final = stream.get_final_response()
        assert final.output_text == REPLY

    def test_on_echo(self, oai: openai.OpenAI) -> None:
        assert oai.responses.create(model="echo", input="echo me").output_text == "echo me"


def test_passthrough_work_mode_refuses_translation(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    gw = GatewayProcess(
        tmp_path_factory.mktemp("passthrough"),
        gateway_config(mock[1]),
        env={"GATEWAY_WORK_MODE": "passthrough"},
    ).start()
    try:
        key = gw.create_key("p")["key"]
        resp = httpx.post(
            gw.url + "/v1/messages",
            headers={"x-api-key": key},
            json={
                "model": "gpt-4o",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert resp.status_code == 400
        assert "passthrough" in resp.json()["error"]["message"]
        ok = httpx.post(
            gw.url + "/v1/messages",
            headers={"x-api-key": key},
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert ok.status_code == 200
    finally:
        gw.stop()
