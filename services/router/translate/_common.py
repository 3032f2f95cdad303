"""Helpers shared by the translators: ids, JSON argument handling, type checks
that raise the gateway's BadRequest, and SSE encoding of dict payloads."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import orjson

from tokgateway.common.errors import BadRequest, summary
from tokgateway.common.sse import encode_event, encode_json
from tokgateway.router.usage import Usage, from_openai

JSON = dict[str, Any]
IdFactory = Callable[[str], str]
"""Makes a fresh id from a prefix (``"msg_"``, ``"call_"``, ...). Tests pass a
deterministic one so golden fixtures stay stable."""

RAW_ARGUMENTS_KEY = "_raw_arguments"
"""Where tool-call arguments that are not a JSON object are kept when a tool
input must be an object (Anthropic ``tool_use.input``)."""

_TOOL_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")


def shown(value: Any) -> str:
    """A client value as an error message may quote it: bounded and printable."""
    return summary(repr(value), 60)


def items(value: Any) -> list[Any]:
    """``value`` when it is an array, else no items (a bad type from outside
    is skipped where it is optional, never iterated)."""
    return value if isinstance(value, list) else []


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def tool_use_id(raw: Any, ids: IdFactory) -> str:
    """An id that fits Anthropic's ``^[a-zA-Z0-9_-]+$``. The mapping is
    deterministic, so an id and the tool result that refers to it stay paired."""
    if not isinstance(raw, str) or not raw:
        return ids("toolu_")
    return _TOOL_ID_BAD.sub("_", raw)


def parse_arguments(raw: Any) -> JSON:
    """Tool-call arguments (a JSON string) as an object. Empty means ``{}``;
    anything that is not a JSON object is kept verbatim under
    ``RAW_ARGUMENTS_KEY`` so nothing the model produced is lost."""
    if isinstance(raw, dict):
        return raw
    if raw is None:
        return {}
    if not isinstance(raw, str):
        return {RAW_ARGUMENTS_KEY: orjson.dumps(raw).decode()}
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS_KEY: raw}
    if isinstance(value, dict):
        return value
    return {RAW_ARGUMENTS_KEY: raw}


def dump_arguments(value: Any) -> str:
    """A tool input object as the JSON string OpenAI expects; an input that was
    kept raw by :func:`parse_arguments` goes back unchanged."""
    if isinstance(value, dict) and set(value) == {RAW_ARGUMENTS_KEY}:
        raw = value[RAW_ARGUMENTS_KEY]
        if isinstance(raw, str):
            return raw
    if value is None:
        return "{}"
    return orjson.dumps(value).decode()


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def split_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a base64 ``data:`` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    media_type = head[: -len(";base64")].split(";")[0] or "application/octet-stream"
    return media_type, payload


def sse_event(name: str, payload: JSON) -> bytes:
    """An SSE event with an ``event:`` line (Anthropic, Responses)."""
    return encode_event(name, orjson.dumps(payload))


def sse_data(payload: JSON) -> bytes:
    """A data-only SSE event (OpenAI chat)."""
    return encode_json(payload)


def as_object(value: Any, where: str) -> JSON:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: must be an object.", param=where)
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{where}: must be an array.", param=where)
    return value


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where}: must be a string.", param=where)
    return value


def opt_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    return as_str(value, where)


def opt_number(value: Any, where: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{where}: must be a number.", param=where)
    return value


def opt_positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{where}: must be a positive integer.", param=where)
    return value


def text_of_parts(content: Any, where: str, *, allowed: tuple[str, ...] = ("text",)) -> str:
    """The text of a string or an array of text-like parts, joined with ``\\n``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = as_list(content, where)
    texts: list[str] = []
    for i, part in enumerate(parts):
        block = as_object(part, f"{where}.{i}")
        kind = block.get("type")
        if kind not in allowed:
            raise BadRequest(
                f"{where}.{i}.type: expected one of {', '.join(allowed)}; got {kind!r}.",
                param=f"{where}.{i}.type",
            )
        key = "refusal" if kind == "refusal" else "text"
        texts.append(as_str(block.get(key), f"{where}.{i}.{key}"))
    return "\n".join(texts)


def int_field(data: Any, key: str) -> int:
    if not isinstance(data, dict):
        return 0
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def openai_error_to_anthropic_type(error: JSON) -> str:
    """The Anthropic error ``type`` that best names an OpenAI-shaped error."""
    kind = str(error.get("type") or "") + " " + str(error.get("code") or "")
    kind = kind.lower()
    for needle, mapped in (
        ("rate_limit", "rate_limit_error"),
        ("insufficient_quota", "rate_limit_error"),
        ("invalid_request", "invalid_request_error"),
        ("authentication", "authentication_error"),
        ("permission", "permission_error"),
        ("not_found", "not_found_error"),
        ("overloaded", "overloaded_error"),
        ("timeout", "timeout_error"),
    ):
        if needle in kind:
            return mapped
    return "api_error"


def chat_usage(raw: Any) -> Usage | None:
    """Usage from an OpenAI chat ``usage`` object; also reads DeepSeek's
    ``prompt_cache_hit_tokens`` when ``prompt_tokens_details`` is absent."""
    usage = from_openai(raw)
    if usage is not None and not usage.cached_tokens and isinstance(raw, dict):
        usage.cached_tokens = min(int_field(raw, "prompt_cache_hit_tokens"), usage.prompt_tokens)
    return usage


def reasoning_tokens(raw: Any) -> int:
    if not isinstance(raw, dict):
        return 0
    return int_field(raw.get("completion_tokens_details"), "reasoning_tokens")


def anthropic_usage(usage: Usage | None, thinking_tokens: int = 0) -> JSON:
    """Anthropic ``usage``: ``input_tokens`` excludes cache reads and writes."""
    if usage is None:
        usage = Usage()
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    out: JSON = {
        "input_tokens": usage.prompt_tokens - cached - written,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }
    if thinking_tokens:
        out["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return out


CHAT_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

ANTHROPIC_TO_CHAT_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def chat_text(content: Any) -> str:
    """Text of an OpenAI message ``content`` as upstreams return it: a string,
    null, or (some servers) an array of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def reasoning_text(message: Any) -> str:
    """Reasoning text that OpenAI-compatible servers put next to ``content``:
    ``reasoning_content`` (DeepSeek, vLLM, llama.cpp) or ``reasoning``."""
    if not isinstance(message, dict):
        return ""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def obj(value: Any) -> JSON:
    """``value`` when it is an object, else an empty one (lenient reading of
    upstream answers, which the gateway does not validate)."""
    return value if isinstance(value, dict) else {}
