"""OpenAI Chat clients on an Anthropic Messages upstream: the request going up
and the non-streamed answer coming back. Pure functions, no I/O."""

from __future__ import annotations

import time
from typing import Any

from tokgateway.common.errors import BadRequest
from tokgateway.router.translate._common import (
    ANTHROPIC_TO_CHAT_STOP,
    JSON,
    IdFactory,
    as_list,
    as_object,
    as_str,
    dump_arguments,
    int_field,
    new_id,
    opt_number,
    opt_positive_int,
    parse_arguments,
    shown,
    split_data_url,
    text_of_parts,
    tool_use_id,
)
from tokgateway.router.usage import from_anthropic

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; OpenAI clients often leave it out."""

THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 32768,
}


def stream_include_usage(body: JSON) -> bool:
    """Whether an OpenAI chat request asked for the final usage chunk."""
    opts = body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


def chat_request_to_messages(body: JSON, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> JSON:
    """An OpenAI ``/chat/completions`` body as an Anthropic ``/v1/messages`` body.

    System and developer messages (wherever they stand) become ``system``;
    consecutive tool results merge into one user turn of ``tool_result`` blocks.
    ``temperature`` is clamped to Anthropic's 0..1. Options without an
    Anthropic counterpart (penalties, seed, logit_bias, logprobs, json_object)
    are dropped; ``n`` > 1 and non-function tools raise BadRequest."""
    out: JSON = {"model": as_str(body.get("model"), "model")}
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("n: only n=1 is supported by this provider.", param="n")
    system, messages = _messages(as_list(body.get("messages"), "messages"))
    if system:
        out["system"] = system
    out["messages"] = messages

    max_tokens = opt_positive_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = opt_positive_int(body.get("max_tokens"), "max_tokens")
    out["max_tokens"] = max_tokens or default_max_tokens

    _tools(body, out)
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif stop is not None:
        out["stop_sequences"] = [
            as_str(s, f"stop[{i}]") for i, s in enumerate(as_list(stop, "stop"))
        ]
    temperature = opt_number(body.get("temperature"), "temperature")
    if temperature is not None:
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    top_p = opt_number(body.get("top_p"), "top_p")
    if top_p is not None:
        out["top_p"] = top_p
    _thinking(body.get("reasoning_effort"), out)
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = as_object(fmt.get("json_schema"), "response_format.json_schema")
        schema = as_object(spec.get("schema", {}), "response_format.json_schema.schema")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean.", param="stream")
    if stream:
        out["stream"] = True
    return out


def _messages(raw_messages: list[Any]) -> tuple[str, list[JSON]]:
    system: list[str] = []
    turns: list[JSON] = []
    call_ids: set[str] = set()
    for i, raw in enumerate(raw_messages):
        at = f"messages[{i}]"
        msg = as_object(raw, at)
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            text = text_of_parts(content, f"{at}.content")
            if text:
                system.append(text)
        elif role == "user":
            _append(turns, "user", _user_blocks(content, f"{at}.content"))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(msg, at, call_ids))
        elif role == "tool":
            call_id = as_str(msg.get("tool_call_id"), f"{at}.tool_call_id")
            if call_id not in call_ids:
                raise BadRequest(
                    f"{at}.tool_call_id: {call_id!r} does not match a tool call of an "
                    "earlier assistant message.",
                    param=f"{at}.tool_call_id",
                )
            text = text_of_parts(content, f"{at}.content")
            block: JSON = {"type": "tool_result", "tool_use_id": tool_use_id(call_id, new_id)}
            if text:
                block["content"] = text
            _append(turns, "user", [block])
        else:
            raise BadRequest(
                f"{at}.role: {role!r} is not supported by this provider "
                "(use system, developer, user, assistant or tool).",
                param=f"{at}.role",
            )
    for turn in turns:
        blocks = turn["content"]
        if turn["role"] == "user":
            # Anthropic wants the tool results first in a user turn.
            blocks.sort(key=lambda b: b["type"] != "tool_result")
        if not blocks:
            turn["content"] = ""
        elif len(blocks) == 1 and blocks[0]["type"] == "text":
            turn["content"] = blocks[0]["text"]
    return "\n\n".join(system), turns


def _append(turns: list[JSON], role: str, blocks: list[JSON]) -> None:
    if role == "assistant" and not blocks:
        return  # an empty assistant turn is rejected upstream and says nothing
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _user_blocks(content: Any, at: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[JSON] = []
    for j, raw in enumerate(as_list(content, at)):
        part = as_object(raw, f"{at}[{j}]")
        kind = part.get("type")
        if kind == "text":
            text = as_str(part.get("text"), f"{at}[{j}].text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"{at}[{j}].image_url"))
        elif kind == "file":
            blocks.append(_document_block(part.get("file"), f"{at}[{j}].file"))
        else:
            raise BadRequest(
                f"{at}[{j}].type: the content part type {kind!r} is not supported by this "
                "provider (supported: text, image_url, file).",
                param=f"{at}[{j}].type",
            )
    return blocks


def _image_block(value: Any, at: str) -> JSON:
    url = value if isinstance(value, str) else as_str(as_object(value, at).get("url"), f"{at}.url")
    inline = split_data_url(url)
    if inline is not None:
        media_type, data = inline
        source: JSON = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise BadRequest(
            f"{at}.url: expected a base64 data: URL or an http(s) URL.", param=f"{at}.url"
        )
    return {"type": "image", "source": source}


def _document_block(value: Any, at: str) -> JSON:
    spec = as_object(value, at)
    file_data = spec.get("file_data")
    if not isinstance(file_data, str):
        raise BadRequest(
            f"{at}: only inline file_data is supported by this provider (no file_id).",
            param=at,
        )
    inline = split_data_url(file_data)
    if inline is None:
        raise BadRequest(f"{at}.file_data: expected a base64 data: URL.", param=f"{at}.file_data")
    media_type, data = inline
    block: JSON = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    if isinstance(spec.get("filename"), str) and spec["filename"]:
        block["title"] = spec["filename"]
    return block


def _assistant_blocks(msg: JSON, at: str, call_ids: set[str]) -> list[JSON]:
    blocks: list[JSON] = []
    text = text_of_parts(msg.get("content"), f"{at}.content", allowed=("text", "refusal"))
    if text:
        blocks.append({"type": "text", "text": text})
    calls = msg.get("tool_calls")
    for k, raw in enumerate(as_list(calls, f"{at}.tool_calls") if calls is not None else ()):
        where = f"{at}.tool_calls[{k}]"
        call = as_object(raw, where)
        if call.get("type", "function") != "function":
            raise BadRequest(f"{where}.type: only function tool calls are supported.")
        call_id = as_str(call.get("id"), f"{where}.id")
        function = as_object(call.get("function"), f"{where}.function")
        call_ids.add(call_id)
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call_id, new_id),
                "name": as_str(function.get("name"), f"{where}.function.name"),
                "input": parse_arguments(function.get("arguments")),
            }
        )
    if msg.get("function_call") is not None:
        raise BadRequest(
            f"{at}.function_call: legacy function calls are not supported; use tool_calls.",
            param=f"{at}.function_call",
        )
    return blocks


def _tools(body: JSON, out: JSON) -> None:
    tools: list[JSON] = []
    raw_tools = body.get("tools")
    for i, raw in enumerate(as_list(raw_tools, "tools") if raw_tools is not None else ()):
        tool = as_object(raw, f"tools[{i}]")
        if tool.get("type") != "function":
            raise BadRequest(
                f"tools[{i}].type: only function tools are supported by this provider; "
                f"got {tool.get('type')!r}.",
                param=f"tools[{i}].type",
            )
        tools.append(_tool(as_object(tool.get("function"), f"tools[{i}].function"), i))
    legacy = body.get("functions")
    for i, raw in enumerate(as_list(legacy, "functions") if legacy is not None else ()):
        tools.append(_tool(as_object(raw, f"functions[{i}]"), i))
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice", body.get("function_call"))
    mapped: JSON | None = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict):
        function = choice.get("function") if "function" in choice else choice
        name = as_str(as_object(function, "tool_choice.function").get("name"), "tool_choice")
        mapped = {"type": "tool", "name": name}
    elif choice is not None:
        raise BadRequest(
            "tool_choice: expected auto, required, none or a function.", param="tool_choice"
        )
    if body.get("parallel_tool_calls") is False and tools:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
    if mapped is not None and (tools or mapped["type"] == "none"):
        out["tool_choice"] = mapped


def _tool(function: JSON, i: int) -> JSON:
    tool: JSON = {"name": as_str(function.get("name"), f"tools[{i}].function.name")}
    description = function.get("description")
    if isinstance(description, str) and description:
        tool["description"] = description
    params = function.get("parameters")
    tool["input_schema"] = (
        as_object(params, f"tools[{i}].function.parameters")
        if params is not None
        else {"type": "object", "properties": {}}
    )
    return tool


def _thinking(effort: Any, out: JSON) -> None:
    if effort is None or effort == "none":
        return
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise BadRequest(
            f"reasoning_effort: expected one of {', '.join(THINKING_BUDGETS)}; "
            f"got {shown(effort)}.",
            param="reasoning_effort",
        )
    budget = THINKING_BUDGETS[effort]
    if out["max_tokens"] <= budget:
        # The budget counts toward max_tokens: keep room for the answer.
        out["max_tokens"] = budget + out["max_tokens"]
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    # Extended thinking accepts neither a custom temperature nor top_p < 0.95.
    out.pop("temperature", None)
    if out.get("top_p", 1.0) < 0.95:
        out.pop("top_p")


def message_to_chat_response(
    body: JSON,
    *,
    model: str | None = None,
    ids: IdFactory = new_id,
    created: int | None = None,
) -> JSON:
    """An Anthropic ``message`` body as an OpenAI ``chat.completion`` body.

    Text blocks join into ``content``; ``tool_use`` blocks become
    ``tool_calls`` with JSON-string arguments; thinking text is exposed as the
    non-standard ``reasoning_content`` that many OpenAI-compatible clients read."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JSON] = []
    content = body.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id") or ids("call_")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": dump_arguments(block.get("input")),
                    },
                }
            )
    text = "".join(texts)
    message: JSON = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    finish = ANTHROPIC_TO_CHAT_STOP.get(str(body.get("stop_reason")), "stop")
    if calls and finish == "stop":
        finish = "tool_calls"
    out: JSON = {
        "id": ids("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model or str(body.get("model") or ""),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    raw_usage = body.get("usage")
    usage = from_anthropic(raw_usage)
    if usage is not None:
        details = raw_usage.get("output_tokens_details") if isinstance(raw_usage, dict) else None
        out["usage"] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {
                "reasoning_tokens": int_field(details, "thinking_tokens")
            },
        }
    return out
