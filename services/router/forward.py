"""The forward step: try the resolved deployments in order until one answers.
Retries and fallback happen only here, before the first byte reaches the client."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tokgateway.common.errors import (
    ApiFormat,
    BadRequest,
    GatewayError,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from tokgateway.common.routing import Resolution
from tokgateway.router.providers import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.providers.base import Endpoint
from tokgateway.router.providers.http import body_error
from tokgateway.router.relay import Meter
from tokgateway.router.settle import RequestInfo

PASSED_RETRY_HEADERS = ("retry-after", "retry-after-ms")
ENDPOINT_PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "messages": "/v1/messages",
    "count_tokens": "/v1/messages/count_tokens",
}


def upstream_body(
    body: dict[str, Any], endpoint: str, upstream_model: str, fmt: ApiFormat
) -> tuple[dict[str, Any], bool]:
    """The body sent upstream and whether the usage chunk must be stripped again."""
    out = dict(body)
    out["model"] = upstream_model
    strip = False
    if fmt == "openai" and endpoint in ("chat", "completions") and body.get("stream"):
        opts = body.get("stream_options")
        if not (isinstance(opts, dict) and opts.get("include_usage")):
            out["stream_options"] = {**(opts or {}), "include_usage": True}
            strip = True
    return out, strip


async def forward(
    resolution: Resolution,
    providers: Mapping[str, Provider],
    endpoint: Endpoint,
    fmt: ApiFormat,
    body: dict[str, Any],
    headers: Mapping[str, str],
    info: RequestInfo,
    meter: Meter,
) -> tuple[UpstreamResponse, bool]:
    last: GatewayError | None = None
    deployments = resolution.deployments
    for i, dep in enumerate(deployments):
        provider = providers.get(dep.provider.name)
        if provider is None or not provider.supports(endpoint):
            last = BadRequest(
                f"Model `{resolution.model}` is routed to provider `{dep.provider.name}` "
                f"({dep.provider.kind}), which does not serve {ENDPOINT_PATHS[endpoint]}.",
                code="unsupported_endpoint",
                param="model",
            )
            continue
        call_body, strip = upstream_body(body, endpoint, dep.upstream_model, fmt)
        info.provider = dep.provider.name
        info.upstream_model = dep.upstream_model
        info.attempts += 1
        meter.upstream_started = time.perf_counter()
        try:
            resp = await provider.send(UpstreamCall(endpoint, call_body, info.stream, headers))
        except UpstreamUnavailable as err:
            last = err
            continue
        except GatewayError as err:  # timeouts
            last = err
            continue
        meter.upstream_headers = time.perf_counter()
        if resp.status >= 400:
            message, kind, code = body_error(resp.body or b"")
            passed = {h: resp.headers[h] for h in PASSED_RETRY_HEADERS if h in resp.headers}
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
                continue
            meter.upstream_done = time.perf_counter()
            raise status_err
        return resp, strip
    assert last is not None
    raise last
