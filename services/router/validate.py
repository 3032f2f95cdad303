"""Request checks before anything goes upstream: a bad body is a 400 in the
client's own format, never a 500 and never an upstream round trip."""

from __future__ import annotations

from typing import Any

from tokgateway.common.errors import BadRequest, summary

# Longer names are no model of any provider; a cap keeps a client from growing
# the metrics and the ledger with megabyte "models".
MAX_MODEL_CHARS = 256
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})
RESPONSES_ROLES = frozenset({"user", "assistant", "system", "developer"})


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_CHARS:
        raise BadRequest(
            f"'model' must be at most {MAX_MODEL_CHARS} characters; got {len(model)}.",
            param="model",
        )
    return model.strip()


def _role(role: object, allowed: frozenset[str]) -> str | None:
    """The role when it is one of ``allowed``; None for any other value,
    unhashable ones (objects, arrays) included."""
    if isinstance(role, str) and role in allowed:
        return role
    return None


def _shown(value: object) -> str:
    """A client value as it may appear in an error message (and so the ledger)."""
    return summary(repr(value), 60)


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    return stream


def _positive_int(body: dict[str, Any], name: str, required: bool = False) -> None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required.", param=name)
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{name}' must be a positive integer.", param=name)


def check_chat(body: dict[str, Any]) -> tuple[str, bool]:
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRequest(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        role = msg.get("role")
        if _role(role, CHAT_ROLES) is None:
            raise BadRequest(
                f"'messages[{i}].role' must be one of {', '.join(sorted(CHAT_ROLES))}; "
                f"got {_shown(role)}.",
                param=f"messages[{i}].role",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"'messages[{i}].content' must be a string or an array of parts.",
                param=f"messages[{i}].content",
            )
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    return model, _stream(body)


def check_completions(body: dict[str, Any]) -> tuple[str, bool]:
    model = _model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str | list):
        raise BadRequest("'prompt' must be a string or an array.", param="prompt")
    _positive_int(body, "max_tokens")
    return model, _stream(body)


def _token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_embeddings(body: dict[str, Any]) -> tuple[str, bool]:
    model = _model(body)
    value = body.get("input")
    if isinstance(value, str):
        if not value:
            raise BadRequest("'input' must not be empty.", param="input")
    elif isinstance(value, list):
        if not value:
            raise BadRequest("'input' must not be an empty array.", param="input")
        if not (
            all(isinstance(x, str) for x in value)
            or all(_token(x) for x in value)
            or all(isinstance(x, list) and all(_token(t) for t in x) for x in value)
        ):
            raise BadRequest(
                "'input' must be a string, an array of strings, an array of token ids "
                "(integers) or an array of such arrays.",
                param="input",
            )
    else:
        raise BadRequest("'input' must be a string or an array.", param="input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return model, False


def check_messages(body: dict[str, Any], *, count_only: bool = False) -> tuple[str, bool]:
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("messages: Field required (an array).", param="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise BadRequest(f"messages.{i}: must be an object.")
        role = msg.get("role")
        if _role(role, ANTHROPIC_ROLES) is None:
            raise BadRequest(
                f"messages.{i}.role: Input should be 'user' or 'assistant'; got {_shown(role)}."
            )
        content = msg.get("content")
        if not isinstance(content, str | list):
            raise BadRequest(f"messages.{i}.content: must be a string or an array of blocks.")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise BadRequest("system: must be a string or an array of text blocks.")
    if count_only:
        return model, False
    _positive_int(body, "max_tokens", required=True)
    return model, _stream(body)


def prompt_chars(body: dict[str, Any]) -> int:
    """A cheap size of the prompt for estimates (no tokenizer on the hot path)."""
    total = 0
    for msg in body.get("messages") or ():
        if isinstance(msg, dict):
            content = msg.get("content")
            if isinstance(content, str):
                total += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        total += len(part["text"])
    for name in ("prompt", "input", "system"):
        value = body.get(name)
        if isinstance(value, str):
            total += len(value)
    return total


def check_responses(body: dict[str, Any]) -> tuple[str, bool]:
    model = _model(body)
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise BadRequest("'input' must be a string or an array of items.", param="input")
    if value is None and body.get("previous_response_id") is None:
        raise BadRequest("'input' is required.", param="input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue  # the translation names what is wrong with it
            role = item.get("role")
            if role is not None and _role(role, RESPONSES_ROLES) is None:
                raise BadRequest(
                    f"'input[{i}].role' must be one of {', '.join(sorted(RESPONSES_ROLES))}; "
                    f"got {_shown(role)}.",
                    param=f"input[{i}].role",
                )
    prev = body.get("previous_response_id")
    if prev is not None and not isinstance(prev, str):
        raise BadRequest("'previous_response_id' must be a string.", param="previous_response_id")
    _positive_int(body, "max_output_tokens")
    return model, _stream(body)
