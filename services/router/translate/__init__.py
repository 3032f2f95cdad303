"""Format translation between OpenAI Chat, OpenAI Responses and Anthropic
Messages: pure functions and small stateful stream translators, no I/O.

Naming: ``<client API>_via_<upstream API>``. Request functions raise
``tokgateway.common.errors.BadRequest`` for input the target cannot carry.
Every function that makes ids takes ``ids`` (an ``IdFactory``: prefix -> id),
so tests can make them deterministic.

Anthropic client, OpenAI Chat upstream (``messages_via_chat*``)
    messages_request_to_chat(body) -> chat body
        ``stream`` true adds ``stream_options.include_usage``.
    chat_response_to_message(chat_body, *, model=None, ids=new_id) -> message body
    ChatToMessagesStream(model, *, input_tokens=0, ids=new_id)
        .feed(chunk: dict) -> list[bytes]      one decoded chat chunk (``[DONE]`` is not fed)
        .finish() -> list[bytes]               once, when the upstream stream ends
        .usage -> Usage | None                 what the upstream reported
        .stop_reason, .error, .message_id

OpenAI Chat client, Anthropic upstream (``chat_via_messages*``)
    chat_request_to_messages(body, *, default_max_tokens=4096) -> messages body
    stream_include_usage(chat_body) -> bool
    message_to_chat_response(message_body, *, model=None, ids=new_id, created=None) -> chat body
    MessagesToChatStream(model, include_usage, *, ids=new_id, created=None)
        .feed(event_name: str | None, data: dict) -> list[bytes]
        .finish() -> list[bytes]               ends with ``data: [DONE]``
        .usage -> Usage | None, .finish_reason, .error

OpenAI Responses client, OpenAI Chat upstream (``responses_via_chat*``)
    responses_request_to_chat(body, history=None) -> chat body
    chat_response_to_response(chat_body, request_body, *, ids=new_id, created_at=None)
        -> Response object
    conversation_after(request_body, chat_request, response) -> list of chat messages
        what to store under the response id for a later ``previous_response_id``
    ChatToResponsesStream(request_body, *, ids=new_id, clock=time.time)
        .feed(chunk: dict) -> list[bytes], .finish() -> list[bytes]
        .response -> final Response object (after finish), .usage -> Usage | None

Gemini (module ``tokgateway.router.translate.gemini``, used by
``tokgateway.router.providers.gemini.GeminiProvider``)
    chat_request_to_gemini(chat_body) -> generateContent body (model goes in the URL: model_path)
    gemini_response_to_chat(body, model, *, ids=new_id, created=None) -> chat body
    GeminiToChatStream(model, include_usage, *, ids=new_id, created=None)
        .feed(chunk: dict) -> list[bytes], .finish() -> list[bytes] (ends with ``[DONE]``)
    embeddings_request_to_gemini(body, model) -> batchEmbedContents body
    gemini_embeddings_to_openai(body, request, model) -> embeddings list
    gemini_error_to_openai(body: bytes) -> bytes

Streams: decode the upstream SSE with ``tokgateway.common.sse.SSEDecoder``,
feed each event's parsed JSON (skip OpenAI's ``data: [DONE]``), write every
returned ``bytes`` to the client in order, and call ``finish()`` exactly once
when the upstream ends (also after an error chunk: it then adds what the
client format needs, possibly nothing). ``usage`` is the upstream's own count.
"""

from tokgateway.router.translate._common import RAW_ARGUMENTS_KEY, IdFactory, new_id
from tokgateway.router.translate.chat_via_messages import (
    chat_request_to_messages,
    message_to_chat_response,
    stream_include_usage,
)
from tokgateway.router.translate.chat_via_messages_stream import MessagesToChatStream
from tokgateway.router.translate.messages_via_chat import (
    chat_response_to_message,
    messages_request_to_chat,
)
from tokgateway.router.translate.messages_via_chat_stream import ChatToMessagesStream
from tokgateway.router.translate.responses_via_chat import (
    chat_response_to_response,
    conversation_after,
    responses_request_to_chat,
)
from tokgateway.router.translate.responses_via_chat_stream import ChatToResponsesStream

__all__ = [
    "RAW_ARGUMENTS_KEY",
    "ChatToMessagesStream",
    "ChatToResponsesStream",
    "IdFactory",
    "MessagesToChatStream",
    "chat_request_to_messages",
    "chat_response_to_message",
    "chat_response_to_response",
    "conversation_after",
    "message_to_chat_response",
    "messages_request_to_chat",
    "new_id",
    "responses_request_to_chat",
    "stream_include_usage",
]
