"""The official openai SDK, unchanged, against the gateway."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import REPLY, MockUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(gateway: GatewayProcess, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0) as c:
        yield c


def test_chat_non_streamed(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req_")
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    row = gateway.ledger_row(request_id)
    assert (row["provider"], row["upstream_model"], row["status"]) == ("mock", "gpt-4o", 200)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (11, 7, 3)
    # gpt-4o: 2.50 in, 10.00 out, 1.25 cached per million tokens
    assert row["cost_usd"] == pytest.approx((8 * 2.5 + 3 * 1.25 + 7 * 10.0) / 1e6)


def test_upstream_gets_provider_key_not_client_key(
    client: openai.OpenAI, mock: tuple[MockUpstream, str], api_key: str
) -> None:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    headers = mock[0].rec.headers[-1]
    assert headers["authorization"] == "Bearer sk-upstream-secret-0123456789"
    assert api_key not in str(headers)


def test_chat_stream_strips_usage_the_client_did_not_ask_for(
    client: openai.OpenAI, mock: tuple[MockUpstream, str], gateway: GatewayProcess
) -> None:
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    request_id = stream.headers["x-request-id"]
    chunks = list(stream.parse())
    assert mock[0].rec.last()["stream_options"] == {"include_usage": True}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert all(c.choices for c in chunks), "the usage-only chunk must be stripped"
    assert all(c.usage is None for c in chunks)
    row = gateway.ledger_row(request_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["stream"]) == (11, 7, 1)
    assert row["ttft_ms"] is not None and row["usage_estimated"] == 0


def test_chat_stream_keeps_usage_when_asked(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


def test_chat_stream_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="smart", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY
    assert final.choices[0].finish_reason == "stop"


def test_tool_calls_pass_through(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]


def test_embeddings_base64_default_and_float(client: openai.OpenAI) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.embedding for d in default.data] == [
        [0.25, -0.5, 0.125, 1.0],
        [0.5, -0.5, 0.125, 1.0],
    ]
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float"
    )
    assert floats.data[0].embedding == [0.25, -0.5, 0.125, 1.0]
    assert floats.usage.prompt_tokens == 6


def test_legacy_completions(client: openai.OpenAI) -> None:
    done = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    assert done.choices[0].text == REPLY
    streamed = list(
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", stream=True)
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices).strip() == REPLY


def test_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smart", "echo", "fallback-model", "flaky"} <= ids
    assert client.models.retrieve("gpt-4o").owned_by == "mock"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_echo_provider_needs_no_upstream(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "ping pong"}]
    )
    assert out.choices[0].message.content == "ping pong"


def test_fallback_to_next_deployment(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="fallback-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().choices[0].message.content == REPLY
    row = gateway.ledger_row(raw.headers["x-request-id"])
    assert (row["provider"], row["upstream_model"], row["attempts"]) == ("mock", "gpt-4o-mini", 2)


def test_retry_on_upstream_500_then_success(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "x"}])
    assert out.choices[0].message.content == REPLY


class TestErrors:
    def test_bad_key(self, gateway: GatewayProcess) -> None:
        with (
            openai.OpenAI(base_url=gateway.url + "/v1", api_key="tgk-wrong", max_retries=0) as bad,
            pytest.raises(openai.AuthenticationError) as exc,
        ):
            bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert exc.value.code == "invalid_api_key"

    def test_unknown_model(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError) as exc:
            client.chat.completions.create(
                model="nope-1", messages=[{"role": "user", "content": "x"}]
            )
        assert exc.value.code == "model_not_found"

    def test_bad_input_is_400_in_openai_shape(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "robot", "content": "x"}],  # type: ignore[list-item,misc]
            )
        assert exc.value.param == "messages[0].role"

    def test_invalid_json(self, gateway: GatewayProcess, api_key: str) -> None:
        resp = httpx.post(
            gateway.url + "/v1/chat/completions",
            content=b"{not json",
            headers={"authorization": f"Bearer {api_key}"},
        )
        assert resp.status_code == 400
        err = resp.json()["error"]
        assert err["type"] == "invalid_request_error" and "JSON" in err["message"]

    def test_upstream_429_is_marked_upstream(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.RateLimitError) as exc:
            client.chat.completions.create(
                model="gpt-4o-429", messages=[{"role": "user", "content": "x"}]
            )
        headers = exc.value.response.headers
        assert headers["x-gateway-error"] == "upstream"
        assert headers["x-gateway-upstream-status"] == "429"
        assert headers["retry-after"] == "1"
        assert "slow down" in exc.value.message

    def test_upstream_error_mid_stream(self, client: openai.OpenAI) -> None:
        stream = client.chat.completions.create(
            model="gpt-4o-midfail", messages=[{"role": "user", "content": "x"}], stream=True
        )
        with pytest.raises(openai.APIError, match="upstream broke"):
            list(stream)

    def test_unreachable_provider_is_502(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(
                model="deadonly", messages=[{"role": "user", "content": "x"}]
            )
        assert exc.value.status_code == 502
        assert exc.value.response.headers["x-gateway-error"] == "upstream"

    def test_unknown_path(self, gateway: GatewayProcess) -> None:
        resp = httpx.get(gateway.url + "/v1/nothing-here")
        assert resp.status_code == 404
        assert resp.json()["error"]["type"] == "not_found_error"
