"""OpenAI Chat and Embeddings on Google's Gemini API (``generateContent``,
``streamGenerateContent?alt=sse``, ``batchEmbedContents``). Pure functions
and one stream translator; the Gemini provider adapter does the I/O.

Thought signatures: Gemini 3 rejects a function call replayed without the
``thoughtSignature`` it came with. The signature travels inside the tool-call
id handed to the client (``<id>__ts_<base64url>``) and is restored when the
client sends the call back; a call without one gets Gemini's documented
validator-skipping placeholder."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson

from tokgateway.common.errors import BadRequest
from tokgateway.common.sse import DONE
from tokgateway.router.translate._common import (
    JSON,
    IdFactory,
    as_list,
    as_object,
    as_str,
    dump_arguments,
    int_field,
    new_id,
    obj,
    opt_number,
    opt_positive_int,
    parse_arguments,
    split_data_url,
    sse_data,
    text_of_parts,
)
from tokgateway.router.usage import Usage, estimate_tokens

SIGNATURE_MARK = "__ts_"
SKIP_SIGNATURE = "skip_thought_signature_validator"
THINKING_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
}

ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
}

_EXT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "pdf": "application/pdf",
}


def model_path(model: str) -> str:
    """``models/<name>`` for a bare model name (a full path is kept)."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def encode_call_id(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    token = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"{call_id}{SIGNATURE_MARK}{token}"


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """``(Gemini call id, thought signature or None)`` of a tool-call id."""
    base, mark, token = call_id.partition(SIGNATURE_MARK)
    if not mark or not token:
        return call_id, None
    signature = token.replace("-", "+").replace("_", "/")
    return base, signature + "=" * (-len(signature) % 4)


# requests


def chat_request_to_gemini(body: JSON) -> JSON:
    """An OpenAI ``/chat/completions`` body as a Gemini ``generateContent`` body
    (the model goes in the URL, see :func:`model_path`)."""
    as_str(body.get("model"), "model")
    system: list[str] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}
    for i, raw in enumerate(as_list(body.get("messages"), "messages")):
        at = f"messages[{i}]"
        msg = as_object(raw, at)
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            text = text_of_parts(content, f"{at}.content")
            if text:
                system.append(text)
        elif role == "user":
            _append(contents, "user", _user_parts(content, f"{at}.content"))
        elif role == "assistant":
            _append(contents, "model", _model_parts(msg, at, names))
        elif role == "tool":
            call_id = as_str(msg.get("tool_call_id"), f"{at}.tool_call_id")
            if call_id not in names:
                raise BadRequest(
                    f"{at}.tool_call_id: {call_id!r} does not match a tool call of an "
                    "earlier assistant message.",
                    param=f"{at}.tool_call_id",
                )
            text = text_of_parts(content, f"{at}.content")
            response: JSON = {"name": names[call_id], "response": _function_output(text)}
            response["id"] = split_call_id(call_id)[0]
            _append(contents, "user", [{"functionResponse": response}])
        else:
            raise BadRequest(
                f"{at}.role: {role!r} is not supported by this provider.", param=f"{at}.role"
            )
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    tools = _tools(body)
    if tools:
        out["tools"] = [{"functionDeclarations": tools}]
    config = _tool_config(body.get("tool_choice"))
    if config is not None:
        out["toolConfig"] = config
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    return out


def _function_output(text: str) -> JSON:
    """A tool result as the object Gemini wants: a JSON object as is, anything
    else under ``output`` (the key Gemini documents for function output)."""
    try:
        value = orjson.loads(text) if text.lstrip().startswith("{") else None
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"output": text}


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _user_parts(content: Any, at: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[JSON] = []
    for j, raw in enumerate(as_list(content, at)):
        part = as_object(raw, f"{at}[{j}]")
        kind = part.get("type")
        if kind == "text":
            parts.append({"text": as_str(part.get("text"), f"{at}[{j}].text")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else obj(image).get("url")
            parts.append(_media(as_str(url, f"{at}[{j}].image_url.url"), f"{at}[{j}]"))
        elif kind == "file":
            data = obj(part.get("file")).get("file_data")
            parts.append(_media(as_str(data, f"{at}[{j}].file.file_data"), f"{at}[{j}]"))
        elif kind == "input_audio":
            audio = obj(part.get("input_audio"))
            fmt = str(audio.get("format") or "wav")
            data = as_str(audio.get("data"), f"{at}[{j}].input_audio.data")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": data}})
        else:
            raise BadRequest(
                f"{at}[{j}].type: the content part type {kind!r} is not supported by this "
                "provider.",
                param=f"{at}[{j}].type",
            )
    return parts


def _media(url: str, at: str) -> JSON:
    inline = split_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if url.startswith(("http://", "https://", "gs://")):
        ext = url.split("?", maxsplit=1)[0].rsplit(".", 1)[-1].lower()
        return {"fileData": {"mimeType": _EXT_TYPES.get(ext, "image/jpeg"), "fileUri": url}}
    raise BadRequest(f"{at}: expected a base64 data: URL or an http(s) URL.", param=at)


def _model_parts(msg: JSON, at: str, names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = []
    text = text_of_parts(msg.get("content"), f"{at}.content", allowed=("text", "refusal"))
    if text:
        parts.append({"text": text})
    calls = msg.get("tool_calls")
    signed = False
    for k, raw in enumerate(as_list(calls, f"{at}.tool_calls") if calls is not None else ()):
        where = f"{at}.tool_calls[{k}]"
        call = as_object(raw, where)
        call_id = as_str(call.get("id"), f"{where}.id")
        function = as_object(call.get("function"), f"{where}.function")
        name = as_str(function.get("name"), f"{where}.function.name")
        names[call_id] = name
        base, signature = split_call_id(call_id)
        part: JSON = {
            "functionCall": {
                "name": name,
                "args": parse_arguments(function.get("arguments")),
                "id": base,
            }
        }
        if signature is not None:
            part["thoughtSignature"] = signature
            signed = True
        parts.append(part)
    if calls and not signed:
        first = next(p for p in parts if "functionCall" in p)
        first["thoughtSignature"] = SKIP_SIGNATURE
    return parts


def _tools(body: JSON) -> list[JSON]:
    out: list[JSON] = []
    tools = body.get("tools")
    for i, raw in enumerate(as_list(tools, "tools") if tools is not None else ()):
        tool = as_object(raw, f"tools[{i}]")
        if tool.get("type") != "function":
            raise BadRequest(
                f"tools[{i}].type: only function tools are supported by this provider.",
                param=f"tools[{i}].type",
            )
        function = as_object(tool.get("function"), f"tools[{i}].function")
        decl: JSON = {"name": as_str(function.get("name"), f"tools[{i}].function.name")}
        if isinstance(function.get("description"), str):
            decl["description"] = function["description"]
        params = function.get("parameters")
        if params is not None:
            decl["parametersJsonSchema"] = as_object(params, f"tools[{i}].function.parameters")
        out.append(decl)
    return out


def _tool_config(choice: Any) -> JSON | None:
    if choice is None:
        return None
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, dict):
        name = obj(choice.get("function")).get("name")
        if isinstance(name, str):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise BadRequest("tool_choice: expected auto, required, none or a function.")


def _generation_config(body: JSON) -> JSON:
    out: JSON = {}
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ):
        value = opt_number(body.get(src), src)
        if value is not None:
            out[dst] = value
    max_tokens = opt_positive_int(body.get("max_completion_tokens"), "max_completion_tokens")
    max_tokens = max_tokens or opt_positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is not None:
        out["maxOutputTokens"] = max_tokens
    n = opt_positive_int(body.get("n"), "n")
    if n is not None and n > 1:
        out["candidateCount"] = n
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stopSequences"] = [stop]
    elif stop is not None:
        out["stopSequences"] = [
            as_str(s, f"stop[{i}]") for i, s in enumerate(as_list(stop, "stop"))
        ]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["responseMimeType"] = "application/json"
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = as_object(fmt.get("json_schema"), "response_format.json_schema")
        out["responseMimeType"] = "application/json"
        out["responseJsonSchema"] = as_object(spec.get("schema", {}), "response_format.schema")
    effort = body.get("reasoning_effort")
    if effort == "none":
        out["thinkingConfig"] = {"thinkingBudget": 0}
    elif isinstance(effort, str):
        if effort not in THINKING_BUDGETS:
            raise BadRequest(
                f"reasoning_effort: unknown value {effort!r}.", param="reasoning_effort"
            )
        out["thinkingConfig"] = {
            "thinkingBudget": THINKING_BUDGETS[effort],
            "includeThoughts": True,
        }
    return out


# responses


def _usage(meta: Any) -> tuple[Usage | None, int]:
    if not isinstance(meta, dict):
        return None, 0
    thoughts = int_field(meta, "thoughtsTokenCount")
    usage = Usage(
        prompt_tokens=int_field(meta, "promptTokenCount")
        + int_field(meta, "toolUsePromptTokenCount"),
        completion_tokens=int_field(meta, "candidatesTokenCount") + thoughts,
        cached_tokens=int_field(meta, "cachedContentTokenCount"),
    )
    return usage, thoughts


def chat_usage_body(usage: Usage | None, reasoning: int) -> JSON:
    usage = usage or Usage()
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _finish(reason: Any, has_calls: bool) -> str:
    finish = FINISH_REASONS.get(str(reason), "stop")
    return "tool_calls" if has_calls and finish == "stop" else finish


def _split_parts(parts: Any, ids: IdFactory) -> tuple[str, str, list[JSON]]:
    """(text, thought text, tool calls without ``index``) of candidate parts."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            raw_id = call.get("id")
            base = raw_id if isinstance(raw_id, str) and raw_id else ids("call_")
            signature = part.get("thoughtSignature")
            calls.append(
                {
                    "id": encode_call_id(base, signature if isinstance(signature, str) else None),
                    "type": "function",
                    "function": {
                        "name": str(call.get("name") or ""),
                        "arguments": dump_arguments(call.get("args") or {}),
                    },
                }
            )
    return "".join(texts), "".join(thoughts), calls


def gemini_response_to_chat(
    body: JSON, model: str, *, ids: IdFactory = new_id, created: int | None = None
) -> JSON:
    """A Gemini ``GenerateContentResponse`` as an OpenAI ``chat.completion``."""
    choices: list[JSON] = []
    candidates = body.get("candidates")
    for position, raw in enumerate(candidates if isinstance(candidates, list) else ()):
        cand = obj(raw)
        text, thought, calls = _split_parts(obj(cand.get("content")).get("parts"), ids)
        message: JSON = {"role": "assistant", "content": text if text or not calls else None}
        if thought:
            message["reasoning_content"] = thought
        if calls:
            message["tool_calls"] = calls
        index = cand.get("index")
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(cand.get("finishReason"), bool(calls)),
            }
        )
    if not choices:
        # The prompt itself was blocked (promptFeedback.blockReason).
        message = {"role": "assistant", "content": ""}
        choices.append(
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}
        )
    usage, thoughts = _usage(body.get("usageMetadata"))
    out: JSON = {
        "id": _chat_id(body, ids),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": str(body.get("modelVersion") or model),
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = chat_usage_body(usage, thoughts)
    return out


def _chat_id(body: JSON, ids: IdFactory) -> str:
    rid = body.get("responseId")
    return f"chatcmpl-{rid}" if isinstance(rid, str) and rid else ids("chatcmpl-")


def gemini_error_to_openai(body: bytes) -> bytes:
    """A Gemini error body (``{"error": {code, message, status}}``, possibly
    wrapped in an array) as an OpenAI error body; other bodies pass unchanged."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(data, list) and data:
        data = data[0]
    error = obj(data).get("error")
    if not isinstance(error, dict):
        return body
    return orjson.dumps({"error": _error(error)})


def _error(error: JSON) -> JSON:
    status = str(error.get("status") or "")
    return {
        "message": str(error.get("message") or "upstream error"),
        "type": ERROR_TYPES.get(status, "api_error"),
        "param": None,
        "code": status or None,
    }


class GeminiToChatStream:
    """Gemini ``streamGenerateContent?alt=sse`` chunks in (decoded JSON),
    OpenAI ``chat.completion.chunk`` events out. Each Gemini function call
    arrives whole and becomes one tool-call delta carrying id, name and the
    complete arguments. ``finish`` adds the usage chunk when ``include_usage``
    and ``data: [DONE]``."""

    def __init__(
        self,
        model: str,
        include_usage: bool,
        *,
        ids: IdFactory = new_id,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self._ids = ids
        self.chunk_id: str | None = None
        self.created = int(time.time()) if created is None else created
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._tool_counts: dict[int, int] = {}
        self._usage: Usage | None = None
        self._thoughts = 0
        self._done = False
        self.error: JSON | None = None

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def feed(self, chunk: Any) -> list[bytes]:
        if isinstance(chunk, list):  # a stream sent as one JSON array
            return [b for item in chunk for b in self.feed(item)]
        if self._done or self.error is not None or not isinstance(chunk, dict):
            return []
        if self.chunk_id is None:
            self.chunk_id = _chat_id(chunk, self._ids)
        error = chunk.get("error")
        if isinstance(error, dict):
            self.error = _error(error)
            return [sse_data({"error": self.error})]
        out: list[bytes] = []
        candidates = chunk.get("candidates")
        for position, raw in enumerate(candidates if isinstance(candidates, list) else ()):
            cand = obj(raw)
            index = cand.get("index")
            self._candidate(index if isinstance(index, int) else position, cand, out)
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage, self._thoughts = _usage(chunk["usageMetadata"])
        blocked = obj(chunk.get("promptFeedback")).get("blockReason")
        if not candidates and blocked and 0 not in self._finished:
            self._finished.add(0)
            out.append(self._chunk([self._choice(0, {}, "content_filter")]))
        return out

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        out: list[bytes] = []
        if self.error is None:
            if not self._finished:
                out.append(self._chunk([self._choice(0, self._role(0), "stop")]))
            if self.include_usage:
                out.append(self._chunk([], usage=chat_usage_body(self._usage, self._thoughts)))
        out.append(DONE)
        return out

    def _candidate(self, index: int, cand: JSON, out: list[bytes]) -> None:
        text, thought, calls = _split_parts(obj(cand.get("content")).get("parts"), self._ids)
        if thought:
            out.append(
                self._chunk(
                    [self._choice(index, {**self._role(index), "reasoning_content": thought})]
                )
            )
        if text:
            out.append(self._chunk([self._choice(index, {**self._role(index), "content": text})]))
        if calls:
            first = self._tool_counts.get(index, 0)
            self._tool_counts[index] = first + len(calls)
            indexed = [{"index": first + k, **call} for k, call in enumerate(calls)]
            out.append(
                self._chunk([self._choice(index, {**self._role(index), "tool_calls": indexed})])
            )
        reason = cand.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            finish = _finish(reason, bool(self._tool_counts.get(index)))
            out.append(self._chunk([self._choice(index, self._role(index), finish)]))

    def _role(self, index: int) -> JSON:
        if index in self._started:
            return {}
        self._started.add(index)
        return {"role": "assistant"}

    def _choice(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    def _chunk(self, choices: list[JSON], *, usage: JSON | None = None) -> bytes:
        chunk: JSON = {
            "id": self.chunk_id or self._ids("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        return sse_data(chunk)


# embeddings


def embeddings_request_to_gemini(body: JSON, model: str) -> JSON:
    """An OpenAI ``/embeddings`` body as a Gemini ``batchEmbedContents`` body."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else as_list(raw, "input")
    requests: list[JSON] = []
    dims = opt_positive_int(body.get("dimensions"), "dimensions")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(
                f"input[{i}]: this provider embeds text only (no token arrays).",
                param=f"input[{i}]",
            )
        request: JSON = {"model": model_path(model), "content": {"parts": [{"text": text}]}}
        if dims is not None:
            request["outputDimensionality"] = dims
        requests.append(request)
    return {"requests": requests}


def gemini_embeddings_to_openai(body: JSON, request: JSON, model: str) -> JSON:
    """Gemini embeddings as an OpenAI list, base64-encoded (little-endian
    float32) when the request asked for ``encoding_format: base64``. Gemini
    reports no token counts, so usage is estimated from the input length."""
    as_b64 = request.get("encoding_format") == "base64"
    data: list[JSON] = []
    embeddings = body.get("embeddings")
    for i, raw in enumerate(embeddings if isinstance(embeddings, list) else ()):
        values = [float(v) for v in obj(raw).get("values") or ()]
        vector: Any = values
        if as_b64:
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    raw_input = request.get("input")
    texts = [raw_input] if isinstance(raw_input, str) else raw_input or []
    tokens = sum(estimate_tokens(len(t)) for t in texts if isinstance(t, str))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
