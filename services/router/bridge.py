"""Which upstream API serves a client's API on a given provider, and the
translators that carry requests, responses and streams across.

    client API          provider speaks      path
    chat                chat                 passthrough
    chat                messages             chat -> messages -> chat
    messages            messages             passthrough
    messages            chat                 messages -> chat -> messages
    responses           responses            passthrough
    responses           chat                 responses -> chat -> responses
    responses           messages             responses -> chat -> messages -> chat -> responses

``work_mode``: auto passes through when the provider speaks the client's API
and translates otherwise; passthrough refuses where translation would be
needed; translation translates whenever the provider speaks another API."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tokgateway.common.errors import ApiFormat, BadRequest, GatewayError, stream_error_body
from tokgateway.common.sse import SSEEvent
from tokgateway.router.context import RequestContext
from tokgateway.router.providers.base import Endpoint, Provider
from tokgateway.router.relay import (
    StreamTranslator,
    relay_anthropic,
    relay_openai,
    relay_responses,
    relay_translated,
)
from tokgateway.router.translate import (
    ChatToMessagesStream,
    ChatToResponsesStream,
    MessagesToChatStream,
    chat_request_to_messages,
    chat_response_to_message,
    chat_response_to_response,
    message_to_chat_response,
    messages_request_to_chat,
    responses_request_to_chat,
    stream_include_usage,
)
from tokgateway.router.usage import Usage, from_anthropic, from_openai

JSON = dict[str, Any]
CLIENT_FORMAT: dict[str, ApiFormat] = {
    "chat": "openai",
    "completions": "openai",
    "embeddings": "openai",
    "responses": "openai",
    "messages": "anthropic",
    "count_tokens": "anthropic",
}
API_NAMES = {
    "chat": "OpenAI Chat",
    "messages": "Anthropic Messages",
    "responses": "OpenAI Responses",
    "completions": "OpenAI completions",
    "embeddings": "OpenAI embeddings",
    "count_tokens": "Anthropic count_tokens",
}


Relay = Callable[[AsyncIterator[bytes], RequestContext], AsyncGenerator[bytes, None]]
TranslatorFactory = Callable[[RequestContext], StreamTranslator]


def _relay_openai(chunks: AsyncIterator[bytes], ctx: RequestContext) -> AsyncGenerator[bytes, None]:
    return relay_openai(chunks, ctx, strip_usage=ctx.strip_usage)


def translating(factory: TranslatorFactory) -> Relay:
    """The relay of a translated stream: a translator per request, built from
    its context, between the upstream's events and the client's."""

    def relay(chunks: AsyncIterator[bytes], ctx: RequestContext) -> AsyncGenerator[bytes, None]:
        return relay_translated(chunks, ctx, factory(ctx))

    return relay


@dataclass(frozen=True)
class Plan:
    endpoint: Endpoint  # the upstream API called
    upstream_format: ApiFormat  # how its usage and events are read
    relay: Relay  # how its stream reaches the client, metered
    # (client body, earlier conversation for previous_response_id) -> upstream body
    request: Callable[[JSON, list[JSON] | None], JSON] | None = None
    response: Callable[[JSON, JSON, str], JSON] | None = None  # (upstream, client body, model)

    @property
    def translated(self) -> bool:
        return self.request is not None

    def usage(self, raw: Any) -> Usage | None:
        """The usage object of an answer in the upstream's API."""
        if self.upstream_format == "anthropic":
            return from_anthropic(raw) if isinstance(raw, dict) else None
        return from_openai(raw)


def _load(event: SSEEvent) -> JSON | None:
    if event.data == b"[DONE]" or not event.data:
        return None
    try:
        obj = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _error_text(err: Any) -> str | None:
    if err is None:
        return None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


class _ChatIn:
    """Upstream OpenAI Chat SSE, fed to a translator that takes chunk dicts."""

    def __init__(self, inner: ChatToMessagesStream | ChatToResponsesStream) -> None:
        self.inner = inner

    def feed(self, event: SSEEvent) -> list[bytes]:
        obj = _load(event)
        return [] if obj is None else self.inner.feed(obj)

    def finish(self) -> list[bytes]:
        return self.inner.finish()

    def fail(self, err: GatewayError) -> list[bytes]:
        client: ApiFormat = (
            "anthropic" if isinstance(self.inner, ChatToMessagesStream) else "openai"
        )
        return self.inner.fail(stream_error_body(err, client))

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    @property
    def error(self) -> str | None:
        return _error_text(getattr(self.inner, "error", None))

    @property
    def final_response(self) -> JSON | None:
        if isinstance(self.inner, ChatToResponsesStream):
            return self.inner.response
        return None


class _MessagesIn:
    """Upstream Anthropic SSE, fed to the Messages -> Chat translator."""

    def __init__(self, inner: MessagesToChatStream) -> None:
        self.inner = inner

    def feed(self, event: SSEEvent) -> list[bytes]:
        obj = _load(event)
        return [] if obj is None else self.inner.feed(event.event, obj)

    def finish(self) -> list[bytes]:
        return self.inner.finish()

    def fail(self, err: GatewayError) -> list[bytes]:
        return self.inner.fail(stream_error_body(err, "openai"))

    @property
    def usage(self) -> Usage | None:
        return self.inner.usage

    @property
    def error(self) -> str | None:
        return _error_text(self.inner.error)

    @property
    def final_response(self) -> JSON | None:
        return None


class _Chained:
    """Anthropic SSE -> Chat SSE -> Responses SSE (a Responses client on a
    Messages-only provider)."""

    def __init__(self, first: MessagesToChatStream, second: ChatToResponsesStream) -> None:
        self.first = _MessagesIn(first)
        self.second = second

    def _pipe(self, pieces: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for piece in pieces:
            if not piece.startswith(b"data: ") or piece.startswith(b"data: [DONE]"):
                continue
            obj = orjson.loads(piece[6:].strip())
            if isinstance(obj, dict):
                out += self.second.feed(obj)
        return out

    def feed(self, event: SSEEvent) -> list[bytes]:
        return self._pipe(self.first.feed(event))

    def finish(self) -> list[bytes]:
        return self._pipe(self.first.finish()) + self.second.finish()

    def fail(self, err: GatewayError) -> list[bytes]:
        error = stream_error_body(err, "openai")
        self.first.inner.fail(error)  # ends it; its chat events go nowhere
        return self.second.fail(error)

    @property
    def usage(self) -> Usage | None:
        return self.first.usage

    @property
    def error(self) -> str | None:
        return self.first.error

    @property
    def final_response(self) -> JSON | None:
        return self.second.response


def _responses_via_messages_request(body: JSON, history: list[JSON] | None) -> JSON:
    return chat_request_to_messages(responses_request_to_chat(body, history))


def _messages_to_responses(upstream: JSON, body: JSON, model: str) -> JSON:
    return chat_response_to_response(message_to_chat_response(upstream, model=model), body)


PASSTHROUGH: dict[str, Plan] = {
    "chat": Plan("chat", "openai", _relay_openai),
    "completions": Plan("completions", "openai", _relay_openai),
    "embeddings": Plan("embeddings", "openai", _relay_openai),
    "responses": Plan("responses", "openai", relay_responses),
    "messages": Plan("messages", "anthropic", relay_anthropic),
    "count_tokens": Plan("count_tokens", "anthropic", relay_anthropic),
}
MESSAGES_VIA_CHAT = Plan(
    "chat",
    "openai",
    translating(
        lambda ctx: _ChatIn(ChatToMessagesStream(ctx.model, input_tokens=ctx.prompt_estimate))
    ),
    request=lambda body, _: messages_request_to_chat(body),
    response=lambda up, body, model: chat_response_to_message(up, model=model),
)
CHAT_VIA_MESSAGES = Plan(
    "messages",
    "anthropic",
    translating(
        lambda ctx: _MessagesIn(MessagesToChatStream(ctx.model, stream_include_usage(ctx.body)))
    ),
    request=lambda body, _: chat_request_to_messages(body),
    response=lambda up, body, model: message_to_chat_response(up, model=model),
)
RESPONSES_VIA_CHAT = Plan(
    "chat",
    "openai",
    translating(lambda ctx: _ChatIn(ChatToResponsesStream(ctx.body))),
    request=responses_request_to_chat,
    response=lambda up, body, model: chat_response_to_response(up, body),
)
RESPONSES_VIA_MESSAGES = Plan(
    "messages",
    "anthropic",
    translating(
        lambda ctx: _Chained(MessagesToChatStream(ctx.model, True), ChatToResponsesStream(ctx.body))
    ),
    request=_responses_via_messages_request,
    response=_messages_to_responses,
)
TRANSLATIONS: dict[str, tuple[Plan, ...]] = {
    "chat": (CHAT_VIA_MESSAGES,),
    "messages": (MESSAGES_VIA_CHAT,),
    "responses": (RESPONSES_VIA_CHAT, RESPONSES_VIA_MESSAGES),
}


def plan_for(endpoint: Endpoint, provider: Provider, work_mode: str) -> Plan:
    native = provider.supports(endpoint)
    options = [p for p in TRANSLATIONS.get(endpoint, ()) if provider.supports(p.endpoint)]
    if work_mode == "translation" and options:
        return options[0]
    if native:
        return PASSTHROUGH[endpoint]
    if options and work_mode != "passthrough":
        return options[0]
    served = sorted(API_NAMES[e] for e in provider.endpoints if e in API_NAMES)
    if options:
        raise BadRequest(
            f"Provider `{provider.name}` speaks {', '.join(served)}, not "
            f"{API_NAMES[endpoint]}, and work_mode is passthrough: set work_mode = auto or "
            f"translation to translate.",
            code="translation_disabled",
        )
    raise BadRequest(
        f"Provider `{provider.name}` ({provider.kind}) cannot serve {API_NAMES[endpoint]} "
        f"requests (it speaks {', '.join(served) or 'nothing this endpoint needs'}).",
        code="unsupported_endpoint",
        param="model",
    )
