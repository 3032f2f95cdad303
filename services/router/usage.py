"""Token usage as the upstream reported it, read from bodies and stream events.
Pure functions: no I/O, tested against recorded payloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0  # includes cached and cache-written input tokens
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def from_openai(usage: Any) -> Usage | None:
    """Chat/completions/embeddings ``usage`` and Responses API ``usage``."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        details = usage.get("input_tokens_details") or {}
        return Usage(
            prompt_tokens=_int(usage.get("input_tokens")),
            completion_tokens=_int(usage.get("output_tokens")),
            cached_tokens=_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        )
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _int(usage.get("prompt_tokens"))
    completion = usage.get("completion_tokens")
    if completion is None and "total_tokens" in usage:
        completion = _int(usage.get("total_tokens")) - prompt
    return Usage(prompt_tokens=prompt, completion_tokens=_int(completion), cached_tokens=cached)


def from_anthropic(usage: Any, base: Usage | None = None) -> Usage | None:
    """Anthropic ``usage``; ``input_tokens`` excludes cache reads and writes, which
    are added so prompt_tokens means the same for every provider. Values on
    ``message_delta`` are cumulative and overwrite ``base``."""
    if not isinstance(usage, dict):
        return base
    out = (
        Usage()
        if base is None
        else Usage(
            base.prompt_tokens, base.completion_tokens, base.cached_tokens, base.cache_write_tokens
        )
    )
    if any(
        k in usage
        for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    ):
        read = _int(usage.get("cache_read_input_tokens"))
        write = _int(usage.get("cache_creation_input_tokens"))
        if "input_tokens" in usage:
            out.prompt_tokens = _int(usage.get("input_tokens")) + read + write
        else:
            out.prompt_tokens = out.prompt_tokens - out.cached_tokens - out.cache_write_tokens
            out.prompt_tokens += read + write
        out.cached_tokens = read
        out.cache_write_tokens = write
    if "output_tokens" in usage:
        out.completion_tokens = _int(usage.get("output_tokens"))
    return out


def estimate_tokens(text_len: int) -> int:
    """A rough count for when the upstream reports nothing: ~4 characters a token."""
    return max(0, (text_len + 3) // 4)


def usage_object(raw: bytes) -> dict[str, Any] | None:
    """The top-level ``usage`` object of a JSON body, without parsing the rest
    (an embeddings answer is mostly floats). None when it cannot be cut out
    cleanly; the caller then parses the whole body."""
    at = raw.rfind(b'"usage"')
    if at < 0:
        return None
    start = raw.find(b"{", at + 7)
    if start < 0 or raw[at + 7 : start].strip(b" \t\r\n:") != b"":
        return None
    depth = 0
    for pos in range(start, min(len(raw), start + 4096)):
        ch = raw[pos]
        if ch == 0x7B:  # {
            depth += 1
        elif ch == 0x7D:  # }
            depth -= 1
            if depth == 0:
                try:
                    found = orjson.loads(raw[start : pos + 1])
                except orjson.JSONDecodeError:
                    return None
                return found if isinstance(found, dict) else None
    return None
