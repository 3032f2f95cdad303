"""The provider seam: what the router asks of every upstream adapter."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tokgateway.common.errors import ApiFormat
from tokgateway.common.settings import ProviderConfig

RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
MAX_PASSED = 32
MAX_VALUE = 256

Endpoint = Literal["chat", "completions", "embeddings", "messages", "count_tokens", "responses"]


@dataclass(slots=True)
class UpstreamCall:
    endpoint: Endpoint
    body: dict[str, Any]
    stream: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


async def _noop() -> None:
    return None


@dataclass(slots=True)
class UpstreamResponse:
    """A response whose headers have arrived. Exactly one of ``body`` (read in
    full: non-streamed answers and errors) and ``chunks`` (a live stream) is set.
    ``close`` releases the connection; calling it mid-stream aborts the upstream."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] = _noop

    def client_headers(self) -> dict[str, str]:
        """The upstream headers the client sees too: rate limits (``x-ratelimit-*``,
        Anthropic's ``anthropic-ratelimit-*``) and the upstream's request id as
        ``x-upstream-request-id``; at most :data:`MAX_PASSED` of them, values cut."""
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            if name.startswith(RATE_LIMIT_PREFIXES) and len(out) < MAX_PASSED:
                out[name] = value[:MAX_VALUE]
        rid = self.headers.get("x-request-id") or self.headers.get("request-id")
        if rid:
            out["x-upstream-request-id"] = rid[:MAX_VALUE]
        return out


class Provider(ABC):
    api_format: ApiFormat = "openai"
    endpoints: frozenset[str] = frozenset()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        self.kind = config.kind

    def supports(self, endpoint: str) -> bool:
        return endpoint in self.endpoints

    @abstractmethod
    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        """Send the call; raise UpstreamUnavailable/UpstreamTimeout when no
        response arrives. Non-2xx answers are returned, not raised."""

    async def list_upstream_models(self) -> list[str]:
        """The model ids the upstream reports, where its API has such a list
        (``GET /models`` of OpenAI-format servers); [] elsewhere."""
        return []

    async def probe(self) -> None:
        """A cheap health check; raises UpstreamUnavailable or UpstreamTimeout
        when the provider does not work. Providers without an upstream (echo)
        are always healthy."""
        return None

    async def close(self) -> None:
        return None
