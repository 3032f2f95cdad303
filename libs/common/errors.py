"""One exception tree for the gateway and the renderers that put it on the wire.

    GatewayError
    ├── ClientError            the caller sent something wrong (4xx)
    │   ├── BadRequest         400 invalid_request_error
    │   ├── Unauthenticated    401 authentication_error
    │   ├── Forbidden          403 permission_error
    │   ├── NotFound           404 not_found_error
    │   ├── PayloadTooLarge    413 request_too_large
    │   └── ClientClosed       499 the client left before the request was read
    ├── PolicyError            the gateway refused on policy (limits, budgets)
    │   └── RateLimited        429 rate_limit_error (gateway-made)
    ├── UpstreamError          the provider failed or could not be reached
    │   ├── UpstreamStatusError  the provider answered non-2xx (status kept)
    │   ├── UpstreamUnavailable  502/503: connect failure, no healthy deployment
    │   ├── UpstreamBusy         503: every connection to the origin stayed busy
    │   └── UpstreamTimeout      504
    └── InternalError          500, a bug in the gateway

Each carries the fields both wire formats need; ``error_class`` feeds the
metrics (client / policy / upstream / internal).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson

ErrorClass = Literal["client", "policy", "upstream", "internal"]
ApiFormat = Literal["openai", "anthropic"]

# OpenAI error "type" and Anthropic error "type" for each status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    error_class: ClassVar[ErrorClass] = "internal"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        return self.status

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        kind = _ANTHROPIC_TYPES.get(self.http_status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def body(self, fmt: ApiFormat) -> bytes:
        data = self.anthropic_body() if fmt == "anthropic" else self.openai_body()
        return orjson.dumps(data)

    def response_headers(self) -> dict[str, str]:
        headers = {"x-gateway-error": self.error_class, **self.headers}
        if self.error_class in ("client", "policy") and "x-should-retry" not in headers:
            # A retry of a refused request cannot succeed sooner than the limit resets;
            # for rate limits retry-after says when.
            headers["x-should-retry"] = "true" if "retry-after" in headers else "false"
        return headers


class ClientError(GatewayError):
    status = 400
    error_type = "invalid_request_error"
    error_class = "client"


class BadRequest(ClientError):
    pass


class Unauthenticated(ClientError):
    status = 401
    error_type = "authentication_error"


class Forbidden(ClientError):
    status = 403
    error_type = "permission_error"


class NotFound(ClientError):
    status = 404
    error_type = "not_found_error"


class PayloadTooLarge(ClientError):
    status = 413
    error_type = "request_too_large"


class ClientClosed(ClientError):
    """The client hung up (e.g. during the upload): nobody reads the answer,
    but the ledger records it as 499 ``client``."""

    status = 499
    error_type = "client_closed_request"


class PolicyError(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    error_class = "policy"


class RateLimited(PolicyError):
    """A limit or budget of the gateway itself (never an upstream 429)."""


class UpstreamError(GatewayError):
    status = 502
    error_type = "upstream_error"
    error_class = "upstream"


class UpstreamStatusError(UpstreamError):
    """The provider answered with a non-2xx status; its status is kept."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param, headers=headers)
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type

    @property
    def http_status(self) -> int:
        return self.upstream_status if 400 <= self.upstream_status < 600 else 502

    def openai_body(self) -> dict[str, Any]:
        body = super().openai_body()
        body["error"]["type"] = self.upstream_type or "upstream_error"
        return body

    def anthropic_body(self) -> dict[str, Any]:
        body = super().anthropic_body()
        if self.upstream_type and self.upstream_type in _ANTHROPIC_TYPES.values():
            body["error"]["type"] = self.upstream_type
        return body

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        headers["x-gateway-upstream-status"] = str(self.upstream_status)
        return headers

    @property
    def retryable(self) -> bool:
        return self.upstream_status in (408, 409, 429) or self.upstream_status >= 500


class UpstreamUnavailable(UpstreamError):
    status = 502
    error_type = "upstream_unavailable"


class UpstreamBusy(UpstreamError):
    """The provider's connection pool had no free slot within the pool-wait
    time: the gateway, not the provider, said no; a retry later may pass."""

    status = 503
    error_type = "upstream_busy"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"


class InternalError(GatewayError):
    pass


def stream_error_body(err: GatewayError, fmt: ApiFormat) -> dict[str, Any]:
    """The error object (the value of ``error``) of a failure after the
    response headers were sent: Anthropic clients retry an overloaded_error,
    so an upstream failure without a better name is one."""
    if fmt == "anthropic":
        error: dict[str, Any] = err.anthropic_body()["error"]
        if error["type"] == "api_error" and err.error_class == "upstream":
            error["type"] = "overloaded_error"
        return error
    body: dict[str, Any] = err.openai_body()["error"]
    return body


def stream_error_event(err: GatewayError, fmt: ApiFormat) -> bytes:
    """The in-stream error for a failure after the response headers were sent."""
    error = stream_error_body(err, fmt)
    if fmt == "anthropic":
        payload = orjson.dumps({"type": "error", "error": error})
        return b"event: error\ndata: " + payload + b"\n\n"
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


def summary(text: object, limit: int = 200) -> str:
    """A bounded, printable one-line summary of text that came from outside
    (an upstream error body, a client's field) for the ledger and the log:
    control characters become spaces, runs of whitespace one space, and the
    result is cut at ``limit`` characters with an ellipsis."""
    raw = text if isinstance(text, str) else str(text)
    if len(raw) > limit * 4:
        raw = raw[: limit * 4]
    if raw.isprintable() and "  " not in raw:
        clean = raw
    else:
        clean = " ".join("".join(c if c.isprintable() else " " for c in raw).split())
    if len(clean) > limit:
        return clean[: max(0, limit - 1)] + "\u2026"
    return clean
