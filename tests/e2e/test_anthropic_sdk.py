"""The official anthropic SDK, unchanged, against the gateway's /v1/messages."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import REPLY, MockUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(gateway: GatewayProcess, api_key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0) as c:
        yield c


def test_create(client: anthropic.Anthropic, gateway: GatewayProcess) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    msg = raw.parse()
    assert msg.content[0].text == REPLY  # type: ignore[union-attr]
    assert msg.usage.input_tokens == 20
    row = gateway.ledger_row(raw.headers["request-id"])
    # prompt tokens count the cache reads too: 20 + 5
    assert (row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"]) == (25, 5, 9)
    assert row["cost_usd"] == pytest.approx((20 * 1.0 + 5 * 0.1 + 9 * 5.0) / 1e6)


def test_provider_credentials_and_version(
    client: anthropic.Anthropic, mock: tuple[MockUpstream, str]
) -> None:
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    headers = mock[0].rec.headers[-1]
    assert headers["x-api-key"] == "sk-ant-upstream-secret-9876543210"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


def test_stream_helper(client: anthropic.Anthropic, gateway: GatewayProcess) -> None:
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert text == REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 9
    row = gateway.ledger_row(request_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["stream"]) == (25, 9, 1)


def test_x_api_key_and_unknown_version_accepted(gateway: GatewayProcess, api_key: str) -> None:
    resp = httpx.post(
        gateway.url + "/v1/messages",
        headers={"x-api-key": api_key, "anthropic-version": "2031-01-01"},
        json={"model": "echo", "max_tokens": 20, "messages": [{"role": "user", "content": "yo"}]},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["content"][0]["text"] == "yo"


def test_echo_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="echo", max_tokens=50, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "one two three"  # type: ignore[union-attr]


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model="echo", messages=[{"role": "user", "content": "a" * 40}]
    )
    assert counted.input_tokens >= 10


def test_models_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list()]
    assert "echo" in ids


def test_models_pass_the_sdks_strict_validation(gateway: GatewayProcess, api_key: str) -> None:
    with anthropic.Anthropic(
        base_url=gateway.url, api_key=api_key, max_retries=0, _strict_response_validation=True
    ) as strict:
        listed = list(strict.models.list())
        assert "echo" in [m.id for m in listed]
        assert {m.lifecycle for m in listed} == {"active"}
        one = strict.models.retrieve("echo")
        assert one.id == "echo" and one.type == "model" and one.lifecycle == "active"


class TestErrors:
    def test_bad_key(self, gateway: GatewayProcess) -> None:
        with (
            anthropic.Anthropic(base_url=gateway.url, api_key="tgk-wrong", max_retries=0) as bad,
            pytest.raises(anthropic.AuthenticationError) as exc,
        ):
            bad.messages.create(
                model="echo", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert exc.value.body["type"] == "error"  # type: ignore[index]
        assert exc.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    def test_missing_max_tokens(self, gateway: GatewayProcess, api_key: str) -> None:
        resp = httpx.post(
            gateway.url + "/v1/messages",
            headers={"x-api-key": api_key},
            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        )
        assert resp.status_code == 400
        body = resp.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
        assert "max_tokens" in body["error"]["message"]

    def test_bad_role(self, client: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.BadRequestError, match="role"):
            client.messages.create(
                model="echo",
                max_tokens=5,
                messages=[{"role": "system", "content": "x"}],  # type: ignore[typeddict-item]
            )

    def test_upstream_overloaded_passes_status(self, client: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.APIStatusError) as exc:
            client.messages.create(
                model="claude-x-529", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert exc.value.status_code == 529
        assert exc.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]

    def test_unknown_model(self, client: anthropic.Anthropic) -> None:
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(
                model="nope-2", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )


def test_oversize_body_is_413_in_each_format(gateway: GatewayProcess, api_key: str) -> None:
    big = "x" * (1 << 20) + "y" * 1000  # over the 1 MB limit of the test gateway
    msg = [{"role": "user", "content": big}]
    ant = httpx.post(
        gateway.url + "/v1/messages",
        headers={"x-api-key": api_key},
        json={"model": "echo", "max_tokens": 5, "messages": msg},
    )
    assert ant.status_code == 413
    assert ant.json()["error"]["type"] == "request_too_large"
    oai = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": "echo", "messages": msg},
    )
    assert oai.status_code == 413
    assert oai.json()["error"]["type"] == "request_too_large"
    # the gateway keeps serving
    ok = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "still here"}]},
    )
    assert ok.json()["choices"][0]["message"]["content"] == "still here"
