"""GenAI spans of the request path, recorded in memory; and none at all when
no exporter is configured (the request path then holds no span object)."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import UsageEvent
from tokgateway.common.errors import UpstreamStatusError, UpstreamUnavailable
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import ProviderConfig
from tokgateway.common.tracing import Tracing
from tokgateway.router.context import RequestContext
from tokgateway.router.service import RouterOptions, RouterService
from tokgateway.router.spans import GenAISpans, failover


def _router(tracing: Tracing | None) -> RouterService:
    table = RouteTable(rules=(), aliases={}, providers={}, primary=None, prices=PriceTable({}))
    return RouterService(
        table=table,
        verifier=None,  # type: ignore[arg-type]  # never asked here
        bus=InProcessBus(),
        options=RouterOptions(),
        tracing=tracing,
    )


def test_no_exporter_no_spans() -> None:
    for tracing in (None, Tracing("router")):
        router = _router(tracing)
        assert router.pipeline.deps.spans is None
        assert router.settler.spans is None


def test_an_exporter_gives_the_router_spans() -> None:
    tracing = Tracing("router", exporter=InMemorySpanExporter())
    router = _router(tracing)
    assert isinstance(router.pipeline.deps.spans, GenAISpans)
    assert router.settler.spans is router.pipeline.deps.spans
    tracing.shutdown()


def _event(info: RequestContext, **kw: object) -> UsageEvent:
    fields: dict[str, object] = {
        "request_id": info.request_id,
        "ts": 0.0,
        "key_id": "key_1",
        "user_id": None,
        "route": "/v1/messages",
        "model": info.model,
        "provider": info.provider,
        "upstream_model": info.upstream_model,
        "stream": True,
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "cached_tokens": 4,
        "cost_usd": 0.001,
        "status": 200,
        "attempts": info.attempts,
    }
    fields.update(kw)
    return UsageEvent(**fields)  # type: ignore[arg-type]


def test_request_and_attempts_in_genai_conventions() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing("router", exporter=exporter)
    assert tracing.tracer is not None
    spans = GenAISpans(tracing.tracer)
    metrics = RouterMetrics()
    info = RequestContext(request_id="req_1", route="/v1/messages", model="claude-x")
    primary = ProviderConfig(name="primary", kind="anthropic", base_url="https://api.anthropic.com")
    backup = ProviderConfig(
        name="backup", kind="openai-compatible", base_url="http://10.0.0.2:8000/v1"
    )
    with spans.request("messages"):
        spans.bind(info)
        info.upstream_model, info.attempts = "claude-up", 1
        spans.attempt(info, primary, "messages")
        err = UpstreamStatusError(
            "overloaded", upstream_status=529, upstream_type="overloaded_error"
        )
        failover(metrics, spans, info, "primary", err, True)
        info.provider, info.upstream_model, info.attempts = "backup", "llama-3", 2
        spans.attempt(info, backup, "chat")
    spans.finish(info, _event(info), None)
    tracing.provider.force_flush()  # type: ignore[union-attr]
    done: dict[str, ReadableSpan] = {s.name: s for s in exporter.get_finished_spans()}
    tracing.shutdown()
    assert set(done) == {"chat claude-x", "chat claude-up", "chat llama-3"}
    request, failed, answered = done["chat claude-x"], done["chat claude-up"], done["chat llama-3"]
    assert request.kind == SpanKind.INTERNAL
    assert request.attributes is not None and failed.attributes is not None
    assert answered.attributes is not None
    assert request.attributes["gen_ai.operation.name"] == "chat"
    assert request.attributes["gen_ai.request.model"] == "claude-x"
    assert request.attributes["gen_ai.response.model"] == "llama-3"
    assert request.attributes["gen_ai.usage.input_tokens"] == 12
    assert request.attributes["gen_ai.usage.output_tokens"] == 5
    assert request.attributes["gen_ai.usage.cache_read.input_tokens"] == 4
    for attempt in (failed, answered):
        assert attempt.kind == SpanKind.CLIENT
        assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
    assert failed.attributes["gen_ai.provider.name"] == "anthropic"
    assert failed.attributes["server.address"] == "api.anthropic.com"
    assert failed.attributes["server.port"] == 443
    assert failed.attributes["error.type"] == "529"
    assert failed.status.status_code == StatusCode.ERROR
    assert answered.attributes["gen_ai.provider.name"] == "openai"
    assert answered.attributes["server.port"] == 8000
    assert answered.attributes["gen_ai.usage.output_tokens"] == 5
    assert answered.status.status_code == StatusCode.UNSET
    assert metrics.fallbacks.labels("primary").value == 1


def test_a_failed_request_marks_its_spans() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing("router", exporter=exporter)
    assert tracing.tracer is not None
    spans = GenAISpans(tracing.tracer)
    info = RequestContext(request_id="req_2", route="/v1/chat/completions", model="gpt-x")
    dead = ProviderConfig(name="dead", kind="openai", base_url="https://api.openai.com/v1")
    with spans.request("chat"):
        spans.bind(info)
        info.provider, info.upstream_model, info.attempts = "dead", "gpt-x", 1
        spans.attempt(info, dead, "chat")
    err = UpstreamUnavailable("Upstream unreachable")
    event = _event(info, status=503, error_class="upstream", error="unreachable", prompt_tokens=0)
    spans.finish(info, event, err)
    tracing.provider.force_flush()  # type: ignore[union-attr]
    done = exporter.get_finished_spans()
    tracing.shutdown()
    assert len(done) == 2
    assert all(s.status.status_code == StatusCode.ERROR for s in done)
    kinds = {s.kind: s for s in done}
    assert (kinds[SpanKind.INTERNAL].attributes or {})["error.type"] == "upstream"
    assert (kinds[SpanKind.INTERNAL].attributes or {})["gateway.status"] == 503
    assert (kinds[SpanKind.CLIENT].attributes or {})["error.type"] == "UpstreamUnavailable"
