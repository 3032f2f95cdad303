"""Load and probes: the scenarios, wrk driven by generated Lua scripts, and a
raw-socket client that times the first body byte of a response."""

from __future__ import annotations

import math
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
from procs import BenchError, pin_prefix

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Scenario:
    """One kind of request. ``model`` is what gateway-like systems route on;
    ``paced_model`` routes to the upstream's paced twin (TTFB probes)."""

    name: str
    path: str
    body: Mapping[str, Any]
    model: str
    paced_model: str
    stream: bool
    anthropic: bool
    expect: bytes  # a marker a correct answer contains
    limited: bool = False  # sent with a key that has rpm, tpm and a budget (gateways only)
    concurrency: tuple[int, ...] = ()  # only these levels (of those asked for); empty: all

    def body_for(self, model: str) -> bytes:
        return orjson.dumps({"model": model, **self.body})


_HELLO = [{"role": "user", "content": "Say hello in twenty tokens."}]

SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        s.name: s
        for s in (
            Scenario(
                "chat",
                "/v1/chat/completions",
                {"messages": _HELLO, "max_tokens": 32},
                "gpt-4o-mini",
                "paced-gpt-4o-mini",
                stream=False,
                anthropic=False,
                expect=b'"chat.completion"',
            ),
            Scenario(
                "chat_limited",
                "/v1/chat/completions",
                {"messages": _HELLO, "max_tokens": 32},
                "gpt-4o-mini",
                "paced-gpt-4o-mini",
                stream=False,
                anthropic=False,
                expect=b'"chat.completion"',
                limited=True,
                concurrency=(64,),
            ),
            Scenario(
                "chat_stream",
                "/v1/chat/completions",
                {"messages": _HELLO, "max_tokens": 32, "stream": True},
                "gpt-4o-mini",
                "paced-gpt-4o-mini",
                stream=True,
                anthropic=False,
                expect=b"data: [DONE]",
            ),
            Scenario(
                "embeddings",
                "/v1/embeddings",
                {"input": "The quick brown fox.", "encoding_format": "float"},
                "text-embedding-3-small",
                "paced-text-embedding-3-small",
                stream=False,
                anthropic=False,
                expect=b'"embedding"',
            ),
            Scenario(
                "messages",
                "/v1/messages",
                {"messages": _HELLO, "max_tokens": 32},
                "claude-3-5-haiku-20241022",
                "claude-paced-3-5-haiku",
                stream=False,
                anthropic=True,
                expect=b'"type":"message"',
            ),
            Scenario(
                "messages_stream",
                "/v1/messages",
                {"messages": _HELLO, "max_tokens": 32, "stream": True},
                "claude-3-5-haiku-20241022",
                "claude-paced-3-5-haiku",
                stream=True,
                anthropic=True,
                expect=b"event: message_stop",
            ),
        )
    }
)
DEFAULT_SCENARIOS = ("chat", "chat_limited", "chat_stream", "embeddings", "messages_stream")


@dataclass(frozen=True)
class Target:
    """Where and what to send: one system, one scenario."""

    port: int
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def raw_request(self) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines += [f"content-length: {len(self.body)}", "", ""]
        return "\r\n".join(lines).encode() + self.body


def request_headers(scenario: Scenario, key: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    if scenario.anthropic:
        headers["anthropic-version"] = "2023-06-01"
    return headers


# -- wrk ------------------------------------------------------------------------------
def _lua_long_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


_DONE_HOOK = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def write_lua(target: Target, path: Path) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_long_string(target.body.decode())}"]
    for name, value in target.headers.items():
        lines.append(f"wrk.headers[ {_lua_long_string(name)} ] = {_lua_long_string(value)}")
    path.write_text("\n".join(lines) + "\n" + _DONE_HOOK, encoding="utf-8")
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: int
    status_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not installed (it generates the load). Install it, e.g. "
            "`apt-get install -y wrk` on Debian/Ubuntu or `brew install wrk` on macOS."
        )
    return wrk


def run_wrk(
    wrk: str,
    script: Path,
    url: str,
    *,
    connections: int,
    seconds: int,
    core: int | None,
) -> WrkResult:
    argv = [
        *pin_prefix(core),
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from None
    for line in proc.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = orjson.loads(line[8:])
            break
    else:
        raise BenchError(
            f"wrk gave no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    errors = sum(data[k] for k in ("connect", "read", "write", "timeout"))
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors=int(errors),
        status_errors=int(data["status"]),
        p50_ms=data["p50_us"] / 1000.0,
        p90_ms=data["p90_us"] / 1000.0,
        p99_ms=data["p99_us"] / 1000.0,
        mean_ms=float(data["mean_us"]) / 1000.0,
        max_ms=data["max_us"] / 1000.0,
    )


# -- raw-socket probe -----------------------------------------------------------------
@dataclass
class Answer:
    status: int
    ttfb_s: float  # request sent -> first body byte received
    total_s: float  # request sent -> last body byte received
    body: bytes
    close: bool


class ProbeConnection:
    """One keep-alive HTTP/1.1 client connection that records when the first
    body byte of each answer arrives. Handles Content-Length, chunked and
    read-until-close bodies."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._last_recv = 0.0

    def close(self) -> None:
        self._sock.close()

    def _fill(self) -> bool:
        data = self._sock.recv(262144)
        self._last_recv = time.perf_counter()
        if not data:
            return False
        self._buf += data
        return True

    def _need(self, n: int) -> None:
        while len(self._buf) < n:
            if not self._fill():
                raise ConnectionError("connection closed mid-answer")

    def _line(self) -> bytes:
        while (i := self._buf.find(b"\r\n")) < 0:
            if not self._fill():
                raise ConnectionError("connection closed mid-answer")
        line = bytes(self._buf[:i])
        del self._buf[: i + 2]
        return line

    def request(self, raw: bytes) -> Answer:
        self._buf.clear()
        started = time.perf_counter()
        self._sock.sendall(raw)
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if not self._fill():
                raise ConnectionError("connection closed before the answer's head")
        head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        close = headers.get("connection", "").lower() == "close"
        if not self._buf:
            self._fill()
        first = self._last_recv
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces = []
            while True:
                size = int(self._line().split(b";", 1)[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                self._need(size + 2)
                pieces.append(bytes(self._buf[:size]))
                del self._buf[: size + 2]
            body = b"".join(pieces)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            self._need(length)
            body = bytes(self._buf[:length])
        else:
            while self._fill():
                pass
            body, close = bytes(self._buf), True
        return Answer(status, first - started, self._last_recv - started, body, close)


def check_target(target: Target, scenario: Scenario) -> str | None:
    """None when one request gets a correct answer, else why not."""
    try:
        conn = ProbeConnection(target.port, timeout=30.0)
        try:
            answer = conn.request(target.raw_request())
        finally:
            conn.close()
    except (OSError, ValueError) as exc:
        return f"request failed: {exc}"
    if answer.status != 200 or scenario.expect not in answer.body:
        return f"status {answer.status}, body {answer.body[:300]!r}"
    return None


@dataclass
class ProbeResult:
    requests: int = 0
    errors: int = 0
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    last_error: str = ""

    def summary(self) -> dict[str, float | int | str]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "ttfb_p50_ms": percentile(self.ttfb_ms, 50),
            "ttfb_p99_ms": percentile(self.ttfb_ms, 99),
            "total_p50_ms": percentile(self.total_ms, 50),
            "last_error": self.last_error,
        }


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100.0 * len(ordered)) - 1))
    return ordered[rank]


def probe_ttfb(target: Target, expect: bytes, count: int) -> ProbeResult:
    """``count`` sequential requests over one keep-alive connection (reopened
    when the server closes it); the first answer is a warm-up and not counted."""
    result = ProbeResult()
    raw = target.raw_request()
    conn: ProbeConnection | None = None
    try:
        for i in range(count + 1):
            if conn is None:
                conn = ProbeConnection(target.port)
            try:
                answer = conn.request(raw)
            except (OSError, ValueError) as exc:
                result.errors += 1
                result.last_error = str(exc)
                conn.close()
                conn = None
                continue
            if answer.close:
                conn.close()
                conn = None
            if i == 0:
                continue
            result.requests += 1
            if answer.status != 200 or expect not in answer.body:
                result.errors += 1
                result.last_error = f"status {answer.status}: {answer.body[:200]!r}"
                continue
            result.ttfb_ms.append(answer.ttfb_s * 1000.0)
            result.total_ms.append(answer.total_s * 1000.0)
    finally:
        if conn is not None:
            conn.close()
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan
