"""HTTP adapters: OpenAI (and every OpenAI-compatible server) and Anthropic.

The HTTP client's exceptions are converted to the gateway's tree here and
nowhere else, and so is the first look at what came back: a 2xx answer that is
not a JSON object, or a stream without one valid event, is the provider's
failure (502), never a success passed on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from tokgateway.common.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from tokgateway.common.settings import ProviderConfig
from tokgateway.router.providers.base import Provider, UpstreamCall, UpstreamResponse
from tokgateway.router.providers.client import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    ClientError,
    ConnectOptions,
    ConnectTimeout,
    HTTPClient,
    PoolTimeout,
    ReadTimeout,
    Response,
)
from tokgateway.router.providers.events import EventCheck

FORWARDED_HEADERS = ("anthropic-beta",)
# They choose which organisation or project the provider key bills: only when
# the provider's config says so (forward_org_headers).
ORG_HEADERS = ("openai-organization", "openai-project")
NOT_STREAMS = ("application/json", "text/html")


def connect_options(config: ProviderConfig) -> ConnectOptions:
    n = config.network
    return ConnectOptions(
        proxy=n.proxy,
        ca_file=n.ca_file,
        tls_verify=n.tls_verify,
        cert_file=n.cert_file,
        key_file=n.key_file,
        max_connections=n.max_connections,
    )


def is_json_object(body: bytes) -> bool:
    """Cheap: the text starts with ``{`` and ends with ``}``; the pipeline parses
    it in full later, so HTML, plain text and arrays are what this catches."""
    text = body.strip()
    return text[:1] == b"{" and text[-1:] == b"}"


class HttpProvider(Provider):
    paths: Mapping[str, str] = {}
    # the GET a health check sends: a path whose answer shows the provider
    # works (a bad key fails it), or "" to check only that its base URL answers
    probe_path = ""

    def __init__(self, config: ProviderConfig, client: HTTPClient, read_timeout: float) -> None:
        super().__init__(config)
        self._client = client
        self._read_timeout = config.timeout or read_timeout
        self._options = connect_options(config)
        self._max_event = client.max_event
        self._forwarded = FORWARDED_HEADERS + (
            ORG_HEADERS if config.network.forward_org_headers else ()
        )
        self._base_headers = dict(config.network.headers)  # the provider's extra headers
        self._base_headers.update(self.auth_headers())
        self._base_headers["content-type"] = "application/json"
        self._base_headers["accept-encoding"] = ACCEPT_ENCODING

    def auth_headers(self) -> dict[str, str]:
        return {}

    def url(self, call: UpstreamCall) -> str:
        return self.config.base_url + self.paths[call.endpoint]

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        headers = dict(self._base_headers)
        for name in self._forwarded:
            value = call.headers.get(name)
            if value:
                headers[name] = value
        data = orjson.dumps(call.body)
        try:
            resp = await self._client.request(
                "POST",
                self.url(call),
                headers,
                data,
                read_timeout=self._read_timeout,
                options=self._options,
            )
        except PoolTimeout as exc:
            raise UpstreamBusy(
                f"Provider {self.name!r} is busy: {exc}.", headers={"retry-after": "1"}
            ) from None
        except (ConnectTimeout, ReadTimeout):
            raise UpstreamTimeout(f"Provider {self.name!r} did not answer in time.") from None
        except ClientError as exc:
            raise UpstreamUnavailable(
                f"Provider {self.name!r} could not be reached: {exc}."
            ) from None
        status = resp.status
        kind = resp.headers.get("content-type", "").lower()
        not_stream = call.stream and status < 300 and kind.startswith(NOT_STREAMS)
        if not call.stream or status >= 300 or not_stream:
            body = await self._read(resp)
            if status < 300 and (not_stream or not is_json_object(body)):
                what = "a stream" if call.stream else "a JSON object"
                raise UpstreamUnavailable(
                    f"Provider {self.name!r} answered {status} with {_describe(kind, body)}, "
                    f"not {what}."
                )
            return UpstreamResponse(status, resp.headers, body=body)

        async def close() -> None:
            resp.close()

        chunks = _iter_chunks(resp, self.name, EventCheck(self._max_event))
        return UpstreamResponse(status, resp.headers, chunks=chunks, close=close)

    async def probe(self) -> None:
        headers = dict(self._base_headers)
        headers.pop("content-type", None)
        path = self.probe_path
        try:
            resp = await self._client.request(
                "GET",
                self.config.base_url + path,
                headers,
                read_timeout=10.0,
                options=self._options,
            )
            await resp.read()
        except (ConnectTimeout, ReadTimeout):
            raise UpstreamTimeout(f"Provider {self.name!r} did not answer in time.") from None
        except ClientError as exc:
            raise UpstreamUnavailable(
                f"Provider {self.name!r} could not be reached: {exc}."
            ) from None
        if resp.status >= 500 or (path and resp.status in (401, 403)):
            raise UpstreamUnavailable(
                f"Provider {self.name!r}: GET {path or '/'} answered {resp.status}."
            )

    async def _read(self, resp: Response) -> bytes:
        try:
            return await resp.read()
        except ReadTimeout:
            raise UpstreamTimeout(f"Provider {self.name!r} stopped answering.") from None
        except BodyTooLarge as exc:
            raise UpstreamUnavailable(f"Provider {self.name!r} answered too much: {exc}.") from None
        except ClientError as exc:
            raise UpstreamUnavailable(
                f"Provider {self.name!r} broke off its answer: {exc}."
            ) from None


def _describe(content_type: str, body: bytes) -> str:
    kind = content_type.split(";", 1)[0].strip()[:60] or "no content type"
    head = body.lstrip()[:1]
    shape = "an array" if head == b"[" else "an empty body" if not head else "other text"
    return f"{kind} ({shape})" if kind != "text/html" else "an HTML page"


async def _iter_chunks(resp: Response, name: str, check: EventCheck) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.iter_chunks():
            check.feed(chunk)
            yield chunk
        check.finish()
    except ValueError as exc:
        raise UpstreamUnavailable(f"Provider {name!r} sent a broken stream: {exc}.") from None
    except ReadTimeout:
        raise UpstreamTimeout(f"Provider {name!r} stopped streaming.") from None
    except ClientError as exc:
        raise UpstreamUnavailable(f"Provider {name!r} broke off its stream: {exc}.") from None
    finally:
        resp.close()


class OpenAIProvider(HttpProvider):
    api_format = "openai"
    probe_path = "/models"
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
                "GET",
                self.config.base_url + "/models",
                headers,
                read_timeout=10.0,
                options=self._options,
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
