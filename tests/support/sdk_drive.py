"""Drives the gateway with whatever openai and anthropic SDKs the running
Python has, strict response validation on, streaming included. Run by
tests/e2e/test_sdk_versions.py under the project's venv (the newest releases)
and under a cached venv with a pinned older pair, so SDK drift shows in CI.

    python sdk_drive.py <gateway url> <api key>

Prints one JSON object: the SDK versions and a list of failed checks. Imports
nothing of the project (the pinned venv has only the SDKs)."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import anthropic
import openai


def main(url: str, key: str) -> int:
    oa = openai.OpenAI(
        base_url=url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True
    )
    an = anthropic.Anthropic(
        base_url=url, api_key=key, max_retries=0, _strict_response_validation=True
    )
    hi: Any = [{"role": "user", "content": "hi"}]

    def chat() -> None:
        done = oa.chat.completions.create(model="echo", messages=hi)
        assert done.choices[0].message.content, done

    def chat_stream() -> None:
        # legacy-lenient: strict chunk validation is not what SDKs use by default
        lenient = oa.with_options(timeout=30)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in lenient.chat.completions.create(model="echo", messages=hi, stream=True)
            if c.choices
        )
        assert text, "empty stream"

    def chat_usage_stream() -> None:
        chunks = list(
            oa.chat.completions.create(
                model="echo", messages=hi, stream=True, stream_options={"include_usage": True}
            )
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    def embeddings() -> None:
        # strict typing knows only float lists (base64, the default, is a string)
        out = oa.embeddings.create(model="echo", input="hello", encoding_format="float")
        assert len(out.data[0].embedding) > 0

    def openai_models() -> None:
        assert "echo" in [m.id for m in oa.models.list()]

    def responses() -> None:
        out = oa.responses.create(model="echo", input="hi")
        assert out.output_text, out

    def messages() -> None:
        msg = an.messages.create(model="echo", max_tokens=20, messages=hi)
        assert msg.content and msg.content[0].type == "text"

    def messages_stream() -> None:
        with an.messages.stream(model="echo", max_tokens=20, messages=hi) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text and final.usage.output_tokens >= 0

    def count_tokens() -> None:
        assert an.messages.count_tokens(model="echo", messages=hi).input_tokens > 0

    def anthropic_models() -> None:
        listed = list(an.models.list())
        assert "echo" in [m.id for m in listed]
        assert an.models.retrieve("echo").id == "echo"

    checks: dict[str, Callable[[], None]] = {
        "chat": chat,
        "chat_stream": chat_stream,
        "chat_usage_stream": chat_usage_stream,
        "embeddings": embeddings,
        "openai_models": openai_models,
        "responses": responses,
        "messages": messages,
        "messages_stream": messages_stream,
        "count_tokens": count_tokens,
        "anthropic_models": anthropic_models,
    }
    failed: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
        except Exception:
            failed[name] = traceback.format_exc(limit=3)[-1500:]
    print(
        json.dumps(
            {
                "openai": openai.__version__,
                "anthropic": anthropic.__version__,
                "passed": sorted(set(checks) - set(failed)),
                "failed": failed,
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
