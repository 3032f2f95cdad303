"""HTTP adapters: OpenAI (and every OpenAI-compatible server) and Anthropic.

The HTTP client's exceptions are converted to the gateway's tree here and
nowhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from tokgateway.common.errors import UpstreamTimeout, UpstreamUnavailable
from tokgateway.common.settings import ProviderConfig
from tokgateway.router.providers.base import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.providers.client import (
    ClientError,
    ConnectTimeout,
    HTTPClient,
    ReadTimeout,
    Response,
)

FORWARDED_HEADERS = ("anthropic-beta", "openai-organization", "openai-project")


class HttpProvider(Provider):
    paths: Mapping[str, str] = {}

    def __init__(self, config: ProviderConfig, client: HTTPClient, read_timeout: float) -> None:
        super().__init__(config)
        self._client = client
        self._read_timeout = config.timeout or read_timeout
        self._base_headers = self.auth_headers()
        self._base_headers["content-type"] = "application/json"
        self._base_headers["accept-encoding"] = "gzip, deflate"

    def auth_headers(self) -> dict[str, str]:
        return {}

    def url(self, call: UpstreamCall) -> str:
        return self.config.base_url + self.paths[call.endpoint]

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        headers = dict(self._base_headers)
        for name in FORWARDED_HEADERS:
            value = call.headers.get(name)
            if value:
                headers[name] = value
        data = orjson.dumps(call.body)
        try:
            resp = await self._client.request(
                "POST", self.url(call), headers, data, read_timeout=self._read_timeout
            )
        except (ConnectTimeout, ReadTimeout):
            raise UpstreamTimeout(f"Provider {self.name!r} did not answer in time.") from None
        except ClientError as exc:
            raise UpstreamUnavailable(
                f"Provider {self.name!r} could not be reached: {exc}."
            ) from None
        status = resp.status
        if not call.stream or status >= 300:
            try:
                body = await resp.read()
            except ReadTimeout:
                raise UpstreamTimeout(f"Provider {self.name!r} stopped answering.") from None
            except ClientError as exc:
                raise UpstreamUnavailable(
                    f"Provider {self.name!r} broke off its answer: {exc}."
                ) from None
            return UpstreamResponse(status, resp.headers, body=body)

        async def close() -> None:
            resp.close()

        return UpstreamResponse(
            status, resp.headers, chunks=_iter_chunks(resp, self.name), close=close
        )


async def _iter_chunks(resp: Response, name: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.iter_chunks():
            yield chunk
    except ReadTimeout:
        raise UpstreamTimeout(f"Provider {name!r} stopped streaming.") from None
    except ClientError as exc:
        raise UpstreamUnavailable(f"Provider {name!r} broke off its stream: {exc}.") from None
    finally:
        resp.close()


class OpenAIProvider(HttpProvider):
    api_format = "openai"
    endpoints = frozenset({"chat", "completions", "embeddings", "responses"})
    paths = {
        "chat": "/chat/completions",
        "completions": "/completions",
        "embeddings": "/embeddings",
        "responses": "/responses",
    }

    def auth_headers(self) -> dict[str, str]:
        if self.config.api_key:
            return {"authorization": f"Bearer {self.config.api_key}"}
        return {}

    async def list_upstream_models(self) -> list[str]:
        headers = dict(self._base_headers)
        headers.pop("content-type", None)
        try:
            resp = await self._client.request(
                "GET", self.config.base_url + "/models", headers, read_timeout=10.0
            )
            body = await resp.read()
        except ClientError as exc:
            raise UpstreamUnavailable(
                f"Provider {self.name!r}: GET /models failed: {exc}."
            ) from None
        if resp.status != 200:
            raise UpstreamUnavailable(
                f"Provider {self.name!r}: GET /models answered {resp.status}."
            )
        try:
            data = orjson.loads(body).get("data")
        except (orjson.JSONDecodeError, AttributeError):
            data = None
        if not isinstance(data, list):
            raise UpstreamUnavailable(f"{self.name}: GET /models is not a model list.")
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


class OpenAICompatibleProvider(OpenAIProvider):
    """Local servers and community endpoints: the Chat, completions and embeddings
    APIs; the Responses API is served through translation to Chat."""

    endpoints = frozenset({"chat", "completions", "embeddings"})


class AnthropicProvider(HttpProvider):
    api_format = "anthropic"
    endpoints = frozenset({"messages", "count_tokens"})
    paths = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers


def body_error(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, type, code) from an upstream error body in either format."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or "upstream error"), None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code")
        return (
            str(err.get("message") or "upstream error"),
            err.get("type") if isinstance(err.get("type"), str) else None,
            str(code) if code is not None else None,
        )
    if isinstance(err, str):
        return err, None, None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"], None, None
    return "upstream error", None, None
