"""The forward step: try the resolved deployments in order until one answers.
Retries and fallback happen only here, before the first byte reaches the client."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tokgateway.common.errors import GatewayError, UpstreamStatusError, UpstreamUnavailable
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.routing import Deployment
from tokgateway.router.bridge import Plan, plan_for
from tokgateway.router.context import RequestContext
from tokgateway.router.providers import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.providers.http import body_error
from tokgateway.router.spans import GenAISpans, failover

PASSED_RETRY_HEADERS = ("retry-after", "retry-after-ms")


# The output cap's name in each upstream API; OpenAI's own API takes the
# newer name (its reasoning models refuse ``max_tokens``), compatible servers the older.
CAP_FIELDS = {
    "chat": "max_tokens",
    "completions": "max_tokens",
    "messages": "max_tokens",
    "responses": "max_output_tokens",
}


def upstream_body(
    body: dict[str, Any],
    plan: Plan,
    upstream_model: str,
    history: list[dict[str, Any]] | None = None,
    *,
    output_cap: int | None = None,
    provider_kind: str = "",
) -> tuple[dict[str, Any], bool]:
    """The body sent upstream and whether the usage chunk must be stripped again.
    ``output_cap``: the cap to send when the client set none (a budget booked it)."""
    out = plan.request(body, history) if plan.request is not None else dict(body)
    out["model"] = upstream_model
    field = CAP_FIELDS.get(plan.endpoint)
    if output_cap is not None and field is not None:
        if plan.endpoint == "chat" and provider_kind in ("openai", "azure"):
            field = "max_completion_tokens"
        out[field] = output_cap
    strip = False
    if plan.endpoint in ("chat", "completions") and out.get("stream"):
        opts = out.get("stream_options")
        if not (isinstance(opts, dict) and opts.get("include_usage")):
            out["stream_options"] = {**(opts or {}), "include_usage": True}
            strip = plan.request is None  # translators decide for themselves
    return out, strip


def _tried(ctx: RequestContext, provider: str, status: int, started: float) -> None:
    attempt: dict[str, object] = {
        "provider": provider,
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }
    if ctx.tried is None:
        ctx.tried = [attempt]
    else:
        ctx.tried.append(attempt)


async def forward(
    deployments: Sequence[Deployment],
    providers: Mapping[str, Provider],
    headers: Mapping[str, str],
    ctx: RequestContext,
    *,
    work_mode: str = "auto",
    metrics: RouterMetrics | None = None,
    spans: GenAISpans | None = None,
) -> UpstreamResponse:
    """The first answer worth passing on; ``ctx`` records every attempt, and
    the plan and provider of the one that answered."""
    endpoint = ctx.endpoint
    last: GatewayError | None = None
    for i, dep in enumerate(deployments):
        provider = providers.get(dep.provider.name)
        if provider is None:
            last = UpstreamUnavailable(f"Provider `{dep.provider.name}` is not loaded.")
            continue
        try:
            plan = plan_for(endpoint, provider, work_mode)
            call_body, strip = upstream_body(
                ctx.body,
                plan,
                dep.upstream_model,
                ctx.history,
                output_cap=ctx.output_cap,
                provider_kind=dep.provider.kind,
            )
        except GatewayError as err:
            last = err
            continue
        ctx.plan = plan
        ctx.strip_usage = strip
        ctx.provider = dep.provider.name
        ctx.provider_kind = dep.provider.kind
        ctx.upstream_model = dep.upstream_model
        ctx.attempts += 1
        ctx.upstream_started = started = time.perf_counter()
        if spans is not None:
            spans.attempt(ctx, dep.provider, plan.endpoint)
        try:
            resp = await provider.send(UpstreamCall(plan.endpoint, call_body, ctx.stream, headers))
        except GatewayError as err:  # unreachable, timed out
            _tried(ctx, dep.provider.name, err.http_status, started)
            last = err
            failover(metrics, spans, ctx, dep.provider.name, err, i + 1 < len(deployments))
            continue
        ctx.upstream_headers = time.perf_counter()
        _tried(ctx, dep.provider.name, resp.status, started)
        if resp.status >= 400:
            message, kind, code = body_error(resp.body or b"")
            passed = {h: resp.headers[h] for h in PASSED_RETRY_HEADERS if h in resp.headers}
            passed.update(resp.client_headers())
            status_err = UpstreamStatusError(
                f"Upstream provider `{dep.provider.name}` answered {resp.status}: {message}",
                upstream_status=resp.status,
                upstream_type=kind,
                code=code,
                headers=passed,
            )
            if status_err.retryable and i + 1 < len(deployments):
                await resp.close()
                last = status_err
                failover(metrics, spans, ctx, dep.provider.name, status_err, True)
                continue
            ctx.upstream_done = time.perf_counter()
            raise status_err
        return resp
    assert last is not None
    raise last
