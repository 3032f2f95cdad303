"""The OpenAI Responses API served by an OpenAI Chat upstream: the request
going up, the non-streamed answer coming back, and the conversation a stored
response leaves behind for ``previous_response_id``. Pure functions, no I/O.

The caller resolves ``previous_response_id``: it keeps, per response id, the
chat messages :func:`conversation_after` returns, and passes them as
``history`` to :func:`responses_request_to_chat` for the next turn."""

from __future__ import annotations

import time
from typing import Any

from tokgateway.common.errors import BadRequest
from tokgateway.router.translate._common import (
    JSON,
    IdFactory,
    as_list,
    as_object,
    as_str,
    chat_text,
    chat_usage,
    items,
    new_id,
    obj,
    opt_number,
    opt_positive_int,
    reasoning_tokens,
    shown,
)
from tokgateway.router.usage import Usage

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_SKIPPED_ITEMS = ("reasoning",)


def responses_request_to_chat(body: JSON, history: list[JSON] | None = None) -> JSON:
    """A ``/v1/responses`` body as a ``/chat/completions`` body.

    ``history`` is the earlier conversation (chat messages) when the request
    names a ``previous_response_id``; it goes after ``instructions`` and before
    this request's ``input``. Hosted tools, stored items (``item_reference``),
    ``background`` and ``conversation`` raise BadRequest."""
    for name in ("background", "conversation", "prompt"):
        if body.get(name):
            raise BadRequest(f"{name}: not supported by this provider.", param=name)
    out: JSON = {"model": as_str(body.get("model"), "model")}
    messages: list[JSON] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise BadRequest("instructions: must be a string.", param="instructions")
    known_calls: set[str] = set()
    for msg in history or ():
        messages.append(dict(msg))
        for call in items(msg.get("tool_calls")):
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                known_calls.add(call["id"])
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        messages.append({"role": "user", "content": raw_input})
    else:
        _items(as_list(raw_input, "input"), messages, known_calls)
    out["messages"] = messages

    tools = body.get("tools")
    if tools is not None:
        chat_tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(as_list(tools, "tools"))]
        if chat_tools:
            out["tools"] = chat_tools
            if isinstance(body.get("parallel_tool_calls"), bool):
                out["parallel_tool_calls"] = body["parallel_tool_calls"]
    choice = body.get("tool_choice")
    if choice is not None:
        out["tool_choice"] = _tool_choice(choice)
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    max_tokens = opt_positive_int(body.get("max_output_tokens"), "max_output_tokens")
    if max_tokens is not None:
        out["max_completion_tokens" if effort else "max_tokens"] = max_tokens
    if isinstance(effort, str):
        out["reasoning_effort"] = effort
    for name in ("temperature", "top_p"):
        value = opt_number(body.get(name), name)
        if value is not None:
            out[name] = value
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["user"] = user
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _items(items: list[Any], messages: list[JSON], known_calls: set[str]) -> None:
    for i, raw in enumerate(items):
        at = f"input[{i}]"
        item = as_object(raw, at)
        kind = item.get("type")
        if kind in (None, "message"):
            messages.append(_message_item(item, at))
        elif kind == "function_call":
            call_id = as_str(item.get("call_id"), f"{at}.call_id")
            arguments = item.get("arguments", "")
            call = {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": as_str(item.get("name"), f"{at}.name"),
                    "arguments": as_str(arguments, f"{at}.arguments"),
                },
            }
            known_calls.add(call_id)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last["tool_calls"] = [*(last.get("tool_calls") or ()), call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = as_str(item.get("call_id"), f"{at}.call_id")
            if call_id not in known_calls:
                raise BadRequest(
                    f"{at}.call_id: no function call found with call_id {call_id!r}.",
                    param=f"{at}.call_id",
                )
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": _output_text(item.get("output"), f"{at}.output"),
                }
            )
        elif kind in _SKIPPED_ITEMS:
            continue
        else:
            raise BadRequest(
                f"{at}.type: the input item type {kind!r} is not supported by this provider "
                "(supported: message, function_call, function_call_output).",
                param=f"{at}.type",
            )


def _message_item(item: JSON, at: str) -> JSON:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise BadRequest(
            f"{at}.role: expected user, assistant, system or developer; got {shown(role)}.",
            param=f"{at}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": _ROLES[role], "content": content}
    parts: list[JSON] = []
    for j, raw in enumerate(as_list(content, f"{at}.content")):
        part = as_object(raw, f"{at}.content[{j}]")
        parts.append(_part(part, f"{at}.content[{j}]"))
    if role == "user":
        if len(parts) == 1 and parts[0]["type"] == "text":
            return {"role": "user", "content": parts[0]["text"]}
        return {"role": "user", "content": parts}
    if any(p["type"] != "text" for p in parts):
        raise BadRequest(
            f"{at}.content: only text is allowed in {role} messages.", param=f"{at}.content"
        )
    return {"role": _ROLES[role], "content": "".join(p["text"] for p in parts)}


def _part(part: JSON, at: str) -> JSON:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": as_str(part.get("text"), f"{at}.text")}
    if kind == "refusal":
        return {"type": "text", "text": as_str(part.get("refusal"), f"{at}.refusal")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise BadRequest(
                f"{at}.image_url: only image URLs (http or data:) are supported, not file ids.",
                param=f"{at}.image_url",
            )
        image: JSON = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise BadRequest(
                f"{at}: only inline file_data is supported by this provider.", param=at
            )
        spec: JSON = {"file_data": data}
        if isinstance(part.get("filename"), str):
            spec["filename"] = part["filename"]
        return {"type": "file", "file": spec}
    raise BadRequest(
        f"{at}.type: the content type {kind!r} is not supported by this provider.",
        param=f"{at}.type",
    )


def _output_text(output: Any, at: str) -> str:
    if isinstance(output, str):
        return output
    texts = []
    for j, raw in enumerate(as_list(output, at)):
        part = as_object(raw, f"{at}[{j}]")
        if part.get("type") not in ("input_text", "output_text", "text"):
            raise BadRequest(
                f"{at}[{j}].type: function output may hold text only.", param=f"{at}[{j}].type"
            )
        texts.append(as_str(part.get("text"), f"{at}[{j}].text"))
    return "".join(texts)


def _tool(raw: Any, at: str) -> JSON:
    tool = as_object(raw, at)
    if tool.get("type") != "function":
        raise BadRequest(
            f"{at}.type: only function tools are supported by this provider; "
            f"got {tool.get('type')!r}.",
            param=f"{at}.type",
        )
    function: JSON = {"name": as_str(tool.get("name"), f"{at}.name")}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    params = tool.get("parameters")
    function["parameters"] = (
        as_object(params, f"{at}.parameters")
        if params is not None
        else {"type": "object", "properties": {}}
    )
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            name = as_str(choice.get("name"), "tool_choice.name")
            return {"type": "function", "function": {"name": name}}
        if choice.get("type") == "allowed_tools" and choice.get("mode") in ("auto", "required"):
            return choice["mode"]
    raise BadRequest(
        "tool_choice: expected auto, none, required or a function choice.", param="tool_choice"
    )


def _response_format(text: Any) -> JSON | None:
    if not isinstance(text, dict) or not isinstance(text.get("format"), dict):
        return None
    fmt = text["format"]
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec: JSON = {
            "name": as_str(fmt.get("name", "output"), "text.format.name"),
            "schema": as_object(fmt.get("schema"), "text.format.schema"),
        }
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    return None


def response_tools(request_body: JSON) -> list[JSON]:
    """The request's function tools in the shape a Response object echoes."""
    tools: list[JSON] = []
    for raw in items(request_body.get("tools")):
        if not isinstance(raw, dict) or raw.get("type") != "function":
            continue
        tools.append(
            {
                "type": "function",
                "name": raw.get("name"),
                "description": raw.get("description"),
                "parameters": raw.get("parameters"),
                "strict": raw.get("strict") if isinstance(raw.get("strict"), bool) else None,
            }
        )
    return tools


def response_shell(request_body: JSON, *, response_id: str, created_at: int, status: str) -> JSON:
    """A Response object without output and usage: everything echoed from the
    request, with the defaults the API reports for what was left out."""
    reasoning = request_body.get("reasoning")
    text = request_body.get("text")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request_body.get("instructions"),
        "max_output_tokens": request_body.get("max_output_tokens"),
        "metadata": request_body.get("metadata") or {},
        "model": request_body.get("model"),
        "output": [],
        "parallel_tool_calls": request_body.get("parallel_tool_calls", True),
        "previous_response_id": request_body.get("previous_response_id"),
        "reasoning": {
            "effort": reasoning.get("effort") if isinstance(reasoning, dict) else None,
            "summary": None,
        },
        "store": request_body.get("store", True),
        "temperature": request_body.get("temperature", 1.0),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": request_body.get("tool_choice", "auto"),
        "tools": response_tools(request_body),
        "top_p": request_body.get("top_p", 1.0),
        "truncation": request_body.get("truncation", "disabled"),
        "usage": None,
        "user": request_body.get("user"),
    }


def response_usage(usage: Usage | None, reasoning: int = 0) -> JSON | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.total,
    }


def finish_status(finish_reason: str | None) -> tuple[str, JSON | None]:
    """Response ``status`` and ``incomplete_details`` for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def message_item(item_id: str, text: str, refusal: str, status: str = "completed") -> JSON:
    content: list[JSON] = []
    if text or not refusal:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> JSON:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def chat_response_to_response(
    chat_body: JSON,
    request_body: JSON,
    *,
    ids: IdFactory = new_id,
    created_at: int | None = None,
) -> JSON:
    """A ``chat.completion`` body as the Response object for ``request_body``."""
    choices = chat_body.get("choices")
    choice = obj(choices[0]) if isinstance(choices, list) and choices else {}
    message = obj(choice.get("message"))
    output: list[JSON] = []
    text = chat_text(message.get("content"))
    refusal = message.get("refusal")
    refusal = refusal if isinstance(refusal, str) else ""
    if text or refusal:
        output.append(message_item(ids("msg_"), text, refusal))
    for call in items(message.get("tool_calls")):
        if not isinstance(call, dict):
            continue
        function = obj(call.get("function"))
        arguments = function.get("arguments")
        output.append(
            function_call_item(
                ids("fc_"),
                str(call.get("id") or ids("call_")),
                str(function.get("name") or ""),
                arguments if isinstance(arguments, str) else "{}",
            )
        )
    created = int(time.time()) if created_at is None else created_at
    status, incomplete = finish_status(choice.get("finish_reason"))
    response = response_shell(
        request_body, response_id=ids("resp_"), created_at=created, status=status
    )
    response["completed_at"] = created if status == "completed" else None
    response["incomplete_details"] = incomplete
    response["output"] = output
    response["usage"] = response_usage(
        chat_usage(chat_body.get("usage")), reasoning_tokens(chat_body.get("usage"))
    )
    return response


def output_to_chat_messages(output: list[Any]) -> list[JSON]:
    """A Response's ``output`` items as chat messages (one assistant turn)."""
    texts: list[str] = []
    calls: list[JSON] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in items(item.get("content")):
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    texts.append(str(part.get("refusal") or ""))
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                }
            )
    if not texts and not calls:
        return []
    msg: JSON = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        msg["tool_calls"] = calls
    return [msg]


def conversation_after(request_body: JSON, chat_request: JSON, response: JSON) -> list[JSON]:
    """The chat messages a later request with ``previous_response_id`` set to
    this response continues from: this turn's messages (without its
    ``instructions``, which do not carry over) plus the response's output."""
    messages = list(chat_request.get("messages") or ())
    instructions = request_body.get("instructions")
    if isinstance(instructions, str) and instructions and messages:
        messages = messages[1:]
    return messages + output_to_chat_messages(list(response.get("output") or ()))
