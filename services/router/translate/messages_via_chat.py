"""Anthropic Messages clients on an OpenAI Chat upstream: the request going up
and the non-streamed answer coming back. Pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from tokgateway.common.errors import BadRequest
from tokgateway.router.translate._common import (
    CHAT_TO_ANTHROPIC_STOP,
    JSON,
    IdFactory,
    anthropic_usage,
    as_list,
    as_object,
    as_str,
    chat_text,
    chat_usage,
    data_url,
    dump_arguments,
    new_id,
    obj,
    opt_number,
    opt_positive_int,
    parse_arguments,
    reasoning_text,
    reasoning_tokens,
    tool_use_id,
)

_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}


def messages_request_to_chat(body: JSON) -> JSON:
    """An Anthropic ``/v1/messages`` body as an OpenAI ``/chat/completions`` body.

    Raises BadRequest for input the translation cannot carry (unknown roles or
    block types, server tools, a ``tool_result`` without an earlier ``tool_use``).
    ``top_k`` and ``cache_control`` have no OpenAI counterpart and are dropped."""
    out: JSON = {"model": as_str(body.get("model"), "model")}
    messages: list[JSON] = []
    system = body.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append({"role": "system", "content": text})
    seen_tool_ids: set[str] = set()
    for i, raw in enumerate(as_list(body.get("messages"), "messages")):
        msg = as_object(raw, f"messages.{i}")
        role = msg.get("role")
        if role == "user":
            messages.extend(_user_message(msg.get("content"), f"messages.{i}", seen_tool_ids))
        elif role == "assistant":
            converted = _assistant_message(msg.get("content"), f"messages.{i}", seen_tool_ids)
            if converted is not None:
                messages.append(converted)
        else:
            raise BadRequest(
                f"messages.{i}.role: Input should be 'user' or 'assistant'; got {role!r}.",
                param=f"messages.{i}.role",
            )
    out["messages"] = messages

    tools = body.get("tools")
    if tools is not None:
        chat_tools = [_tool(t, f"tools.{i}") for i, t in enumerate(as_list(tools, "tools"))]
        if chat_tools:
            out["tools"] = chat_tools
    choice = body.get("tool_choice")
    if choice is not None:
        _tool_choice(as_object(choice, "tool_choice"), out)

    effort = _reasoning_effort(body)
    max_tokens = opt_positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is not None:
        # Reasoning models accept only max_completion_tokens; everything else
        # (including most OpenAI-compatible servers) knows max_tokens.
        out["max_completion_tokens" if effort else "max_tokens"] = max_tokens
    if effort:
        out["reasoning_effort"] = effort
    for name in ("temperature", "top_p"):
        value = opt_number(body.get(name), name)
        if value is not None:
            out[name] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        out["stop"] = [
            as_str(s, f"stop_sequences.{i}") for i, s in enumerate(as_list(stops, "stop_sequences"))
        ]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    fmt = _response_format(body.get("output_config"))
    if fmt is not None:
        out["response_format"] = fmt
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean.", param="stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for i, raw in enumerate(as_list(system, "system")):
        block = as_object(raw, f"system.{i}")
        if block.get("type") != "text":
            raise BadRequest(
                f"system.{i}.type: only text blocks are allowed; got {block.get('type')!r}.",
                param=f"system.{i}.type",
            )
        texts.append(as_str(block.get("text"), f"system.{i}.text"))
    return "\n\n".join(texts)


def _user_message(content: Any, where: str, seen_tool_ids: set[str]) -> list[JSON]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[JSON] = []
    tool_images: list[JSON] = []
    parts: list[JSON] = []
    for j, raw in enumerate(as_list(content, f"{where}.content")):
        at = f"{where}.content.{j}"
        block = as_object(raw, at)
        kind = block.get("type")
        if kind == "tool_result":
            call_id = as_str(block.get("tool_use_id"), f"{at}.tool_use_id")
            if call_id not in seen_tool_ids:
                raise BadRequest(
                    f"{at}: tool_result refers to tool_use_id {call_id!r}, "
                    "but no earlier assistant message has a tool_use block with that id.",
                    param=f"{at}.tool_use_id",
                )
            text, images = _tool_result_content(block.get("content"), f"{at}.content")
            if block.get("is_error") is True:
                text = f"Error: {text}" if text else "Error"
            tool_messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
            tool_images.extend(images)
        else:
            parts.append(_user_part(block, kind, at))
    out = list(tool_messages)
    # Chat tool messages carry text only; images a tool returned follow them
    # in a user turn so the model still sees them.
    parts = tool_images + parts
    if parts:
        if len(parts) == 1 and parts[0]["type"] == "text":
            out.append({"role": "user", "content": parts[0]["text"]})
        else:
            out.append({"role": "user", "content": parts})
    elif not tool_messages:
        out.append({"role": "user", "content": ""})
    return out


def _user_part(block: JSON, kind: Any, at: str) -> JSON:
    if kind == "text":
        return {"type": "text", "text": as_str(block.get("text"), f"{at}.text")}
    if kind == "image":
        return _image_part(as_object(block.get("source"), f"{at}.source"), f"{at}.source")
    if kind == "document":
        return _document_part(block, at)
    raise BadRequest(
        f"{at}.type: the content block type {kind!r} cannot be sent to this provider "
        "(supported: text, image, document, tool_result).",
        param=f"{at}.type",
    )


def _image_part(source: JSON, at: str) -> JSON:
    kind = source.get("type")
    if kind == "base64":
        url = data_url(
            as_str(source.get("media_type"), f"{at}.media_type"),
            as_str(source.get("data"), f"{at}.data"),
        )
    elif kind == "url":
        url = as_str(source.get("url"), f"{at}.url")
    else:
        raise BadRequest(
            f"{at}.type: image source {kind!r} is not supported here (use base64 or url).",
            param=f"{at}.type",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: JSON, at: str) -> JSON:
    source = as_object(block.get("source"), f"{at}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = as_str(source.get("media_type"), f"{at}.source.media_type")
        title = block.get("title")
        filename = title if isinstance(title, str) and title else "document.pdf"
        return {
            "type": "file",
            "file": {
                "filename": filename,
                "file_data": data_url(media_type, as_str(source.get("data"), f"{at}.source.data")),
            },
        }
    if kind == "text":
        return {"type": "text", "text": as_str(source.get("data"), f"{at}.source.data")}
    if kind == "content":
        inner = source.get("content")
        text = inner if isinstance(inner, str) else _blocks_text(inner, f"{at}.source.content")
        return {"type": "text", "text": text}
    raise BadRequest(
        f"{at}.source.type: document source {kind!r} is not supported here "
        "(use base64, text or content).",
        param=f"{at}.source.type",
    )


def _blocks_text(blocks: Any, at: str) -> str:
    texts = []
    for k, raw in enumerate(as_list(blocks, at)):
        block = as_object(raw, f"{at}.{k}")
        if block.get("type") != "text":
            raise BadRequest(f"{at}.{k}.type: expected a text block.", param=f"{at}.{k}.type")
        texts.append(as_str(block.get("text"), f"{at}.{k}.text"))
    return "\n".join(texts)


def _tool_result_content(content: Any, at: str) -> tuple[str, list[JSON]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[JSON] = []
    for k, raw in enumerate(as_list(content, at)):
        block = as_object(raw, f"{at}.{k}")
        kind = block.get("type")
        if kind == "text":
            texts.append(as_str(block.get("text"), f"{at}.{k}.text"))
        elif kind == "image":
            images.append(
                _image_part(as_object(block.get("source"), f"{at}.{k}.source"), f"{at}.{k}.source")
            )
        elif kind == "document":
            part = _document_part(block, f"{at}.{k}")
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
        else:
            raise BadRequest(
                f"{at}.{k}.type: tool_result content may hold text, image or document "
                f"blocks; got {kind!r}.",
                param=f"{at}.{k}.type",
            )
    return "\n".join(texts), images


def _assistant_message(content: Any, where: str, seen_tool_ids: set[str]) -> JSON | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[JSON] = []
    for j, raw in enumerate(as_list(content, f"{where}.content")):
        at = f"{where}.content.{j}"
        block = as_object(raw, at)
        kind = block.get("type")
        if kind == "text":
            texts.append(as_str(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            call_id = as_str(block.get("id"), f"{at}.id")
            name = as_str(block.get("name"), f"{at}.name")
            args = as_object(block.get("input", {}), f"{at}.input")
            seen_tool_ids.add(call_id)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": dump_arguments(args)},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            # Signed reasoning of another model means nothing to this upstream.
            continue
        else:
            raise BadRequest(
                f"{at}.type: the content block type {kind!r} cannot be sent to this provider "
                "(supported in assistant turns: text, tool_use, thinking).",
                param=f"{at}.type",
            )
    text = "\n".join(texts)
    if not calls and not text:
        return None
    msg: JSON = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool(raw: Any, at: str) -> JSON:
    tool = as_object(raw, at)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise BadRequest(
            f"{at}.type: the server tool {kind!r} runs only on Anthropic's own API and is "
            "not available on this provider.",
            param=f"{at}.type",
        )
    function: JSON = {"name": as_str(tool.get("name"), f"{at}.name")}
    description = tool.get("description")
    if description is not None:
        function["description"] = as_str(description, f"{at}.description")
    function["parameters"] = as_object(
        tool.get("input_schema", {"type": "object", "properties": {}}), f"{at}.input_schema"
    )
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: JSON, out: JSON) -> None:
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = as_str(choice.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise BadRequest(
            f"tool_choice.type: expected auto, any, tool or none; got {kind!r}.",
            param="tool_choice.type",
        )
    if choice.get("disable_parallel_tool_use") is True and kind != "none" and "tools" in out:
        out["parallel_tool_calls"] = False


def _reasoning_effort(body: JSON) -> str | None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return None
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    if kind == "enabled" and isinstance(thinking, dict):
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget <= 2048:
            return "low"
        return "medium" if budget <= 8192 else "high"
    return None


def _response_format(config: Any) -> JSON | None:
    if not isinstance(config, dict):
        return None
    fmt = config.get("format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") != "json_schema":
        raise BadRequest(
            "output_config.format.type: only json_schema is supported.",
            param="output_config.format.type",
        )
    schema = as_object(fmt.get("schema"), "output_config.format.schema")
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def chat_response_to_message(
    body: JSON, *, model: str | None = None, ids: IdFactory = new_id
) -> JSON:
    """An OpenAI ``chat.completion`` body as an Anthropic ``message`` body.

    ``model`` is the name the client asked for (defaults to the upstream's).
    Reasoning text (``reasoning_content``) becomes a ``thinking`` block with an
    empty signature. Tool-call arguments that are not a JSON object are kept as
    ``{"_raw_arguments": "<text>"}``; empty arguments become ``{}``."""
    choices = body.get("choices")
    choice: JSON = {}
    if isinstance(choices, list) and choices:
        first = next((c for c in choices if isinstance(c, dict) and c.get("index") == 0), None)
        choice = first or (choices[0] if isinstance(choices[0], dict) else {})
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    content: list[JSON] = []
    reasoning = reasoning_text(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = chat_text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text, "citations": None})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal, "citations": None})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = obj(call.get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.get("id"), ids),
                "name": str(function.get("name") or ""),
                "input": parse_arguments(function.get("arguments")),
            }
        )
    has_tools = any(block["type"] == "tool_use" for block in content)
    stop = CHAT_TO_ANTHROPIC_STOP.get(str(choice.get("finish_reason")), "end_turn")
    if isinstance(refusal, str) and refusal:
        stop = "refusal"
    elif has_tools and stop == "end_turn":
        stop = "tool_use"
    return {
        "id": ids("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model or str(body.get("model") or ""),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
        "usage": anthropic_usage(
            chat_usage(body.get("usage")), reasoning_tokens(body.get("usage"))
        ),
    }
