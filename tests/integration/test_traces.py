"""Traces over OTLP/HTTP in OpenTelemetry's GenAI conventions, received by a
real OTLP receiver: the request span and one span per upstream attempt with
the gen_ai.* attributes, and the parent-child links across the router, auth
(HTTP) and NATS (trace context in the message headers)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.cluster import ADMIN_KEY, CONFIG, Mesh, free_port
from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import MockUpstream, serve_in_thread
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INTERNAL, SERVER, CLIENT = 1, 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
ERROR = 2  # Status.STATUS_CODE_ERROR


def traceparent() -> tuple[str, str, str]:
    """A caller's trace: (trace id, its span id, the header)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(MockUpstream().app) as url:
        yield url


@pytest.fixture(scope="module")
def mesh(
    upstream: str, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    config = CONFIG + f"""
[provider.mock]
kind = openai-compatible
base_url = {upstream}/v1
api_key = sk-upstream-traces-0123456789

[provider.dead]
kind = openai-compatible
base_url = http://127.0.0.1:{free_port()}/v1

[routes]
fallback-model = dead, mock:gpt-4o-mini
mock-* = mock
"""  # fmt: skip
    m = Mesh(tmp_path_factory.mktemp("mesh-traces") / "mesh", routers=1, config=config)
    m.env["GATEWAY_OTLP_ENDPOINT"] = receiver.url
    m.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # export within 0.1 s, not 5 s
    try:
        m.start()
        yield m
    except BaseException:
        print(m.logs())
        raise
    finally:
        m.close()


def _one(spans: list[ReceivedSpan], **match: object) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


def _gen_ai(spans: list[ReceivedSpan], kind: int) -> list[ReceivedSpan]:
    return [s for s in spans if s.kind == kind and "gen_ai.operation.name" in s.attributes]


def test_request_and_attempt_spans_across_router_and_auth(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    key = mesh.create_key("traced")["key"]
    trace_id, caller, header = traceparent()
    resp = httpx.post(
        mesh.routers[0].url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "traceparent": header},
        json={"model": "fallback-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert resp.status_code == 200
    usage = resp.json()["usage"]

    def complete(spans: list[ReceivedSpan]) -> bool:
        attempts = [s for s in spans if s.kind == CLIENT and "gen_ai.provider.name" in s.attributes]
        return len(attempts) == 2 and any(s.service == "tokgateway-auth" for s in spans)

    spans = receiver.wait_for(trace_id, complete)
    server = _one(spans, service="tokgateway-router", kind=SERVER)
    assert server.parent_id == caller  # the caller's trace continued
    assert server.name == "POST /v1/chat/completions"

    request = _one(spans, service="tokgateway-router", kind=INTERNAL, name="chat fallback-model")
    assert request.parent_id == server.span_id
    a = request.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "fallback-model"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert a["gateway.attempts"] == 2
    assert a["gateway.status"] == 200
    assert a["gateway.request_id"] == resp.headers["x-request-id"]

    failed, answered = sorted(
        (s for s in spans if s.kind == CLIENT), key=lambda s: s.attributes["gateway.attempt"]
    )
    for attempt in (failed, answered):
        assert attempt.parent_id == request.span_id
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.attributes["gen_ai.provider.name"] == "openai"
        assert attempt.attributes["server.address"] == "127.0.0.1"
    assert failed.attributes["gateway.provider"] == "dead"
    assert failed.status_code == ERROR and failed.attributes["error.type"]
    assert answered.attributes["gateway.provider"] == "mock"
    assert answered.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert answered.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert answered.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert answered.status_code != ERROR

    # The key was not cached yet: the router asked auth, inside the request span.
    verify = _one(spans, service="tokgateway-auth", name="POST /internal/verify")
    assert verify.kind == SERVER and verify.parent_id == request.span_id


def test_a_stream_is_metered_on_its_spans(mesh: Mesh, receiver: OtlpReceiver) -> None:
    key = mesh.create_key("traced-stream")["key"]
    trace_id, _, header = traceparent()
    body = {
        "model": "mock-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream(
        "POST",
        mesh.routers[0].url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "traceparent": header},
        json=body,
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        text = "".join(resp.iter_text())
    assert "[DONE]" in text
    spans = receiver.wait_for(trace_id, lambda s: len(_gen_ai(s, CLIENT)) == 1)
    spans = receiver.wait_for(trace_id, lambda s: any(x.kind == INTERNAL for x in s))
    request = _one(spans, kind=INTERNAL, name="chat mock-stream")
    (attempt,) = _gen_ai(spans, CLIENT)
    assert attempt.parent_id == request.span_id
    assert request.attributes["gateway.stream"] is True
    for span in (request, attempt):
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
        assert span.attributes["gen_ai.response.model"] == "mock-stream"


def test_a_key_event_continues_the_admin_call_over_nats(mesh: Mesh, receiver: OtlpReceiver) -> None:
    """auth publishes auth.v1.key.created with the trace context in the NATS
    headers; the router's handler span is a child of auth's request."""
    trace_id, caller, header = traceparent()
    resp = httpx.post(
        mesh.auth.url + "/admin/keys",
        headers={"authorization": f"Bearer {ADMIN_KEY}", "traceparent": header},
        json={"name": "traced-event"},
        timeout=10,
    )
    assert resp.status_code in (200, 201)

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(s.service == "tokgateway-router" for s in spans)

    spans = receiver.wait_for(trace_id, complete)
    admin = _one(spans, service="tokgateway-auth", kind=SERVER)
    assert admin.parent_id == caller
    received = _one(spans, service="tokgateway-router")
    assert received.name.startswith("receive auth.v1.key")
    assert received.parent_id == admin.span_id


def test_all_in_one_exports_the_same_spans(
    upstream: str, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = f"""
[gateway]
access_log = false

[provider.mock]
kind = openai-compatible
base_url = {upstream}/v1
api_key = sk-upstream-traces-0123456789

[routes]
gpt-* = mock
"""
    env = {"GATEWAY_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    gw = GatewayProcess(tmp_path_factory.mktemp("gw-traces"), config, env).start()
    try:
        key = gw.create_key("traced")["key"]
        trace_id, caller, header = traceparent()
        resp = httpx.post(
            gw.url + "/v1/embeddings",
            headers={"authorization": f"Bearer {key}", "traceparent": header},
            json={"model": "text-embedding-3-small", "input": "hello"},
            timeout=10,
        )
        assert resp.status_code == 404  # no route: the request span says so
        resp = httpx.post(
            gw.url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}", "traceparent": header},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert resp.status_code == 200
        spans = receiver.wait_for(trace_id, lambda s: len(_gen_ai(s, CLIENT)) == 1)
        spans = receiver.wait_for(trace_id, lambda s: len(s) == 5)  # 2 requests, 1 attempt
    finally:
        gw.stop()
    assert {s.service for s in spans} == {"tokgateway-gateway"}
    servers = [s for s in spans if s.kind == SERVER]
    assert len(servers) == 2 and {s.parent_id for s in servers} == {caller}
    missing = _one(spans, kind=INTERNAL, name="embeddings text-embedding-3-small")
    assert missing.status_code == ERROR
    assert missing.attributes["gateway.status"] == 404
    assert missing.attributes["error.type"] == "client"
    chat = _one(spans, kind=INTERNAL, name="chat gpt-4o")
    (attempt,) = _gen_ai(spans, CLIENT)
    assert attempt.parent_id == chat.span_id
    assert attempt.name == "chat gpt-4o"
    assert chat.attributes["gen_ai.usage.input_tokens"] == resp.json()["usage"]["prompt_tokens"]
