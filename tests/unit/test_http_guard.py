"""The guarded protocol inside a real uvicorn server on port 0: what a request
cut by a graceful stop can learn (the shutdown state), and the wire errors."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import uvicorn

from tokgateway.common.lifecycle import SHUTDOWN_STATE
from tokgateway.http_guard import GuardedConfig, Limits, error_body


def test_error_body_takes_the_api_shape_from_the_path() -> None:
    anthropic = orjson.loads(error_body(431, "too big", b"/v1/messages?beta=true"))
    assert anthropic == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "too big"},
    }
    openai = orjson.loads(error_body(408, "slow", b"/v1/chat/completions"))
    assert openai["error"]["code"] == "request_timeout"
    assert error_body(400, "bad", b"/healthz") == b"bad"


async def test_a_stream_cut_at_the_drain_end_sees_the_shutdown_state() -> None:
    seen: dict[str, Any] = {}
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        state = scope["state"][SHUTDOWN_STATE]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        started.set()
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            seen["draining"], seen["cut"] = state.draining, state.cut
            raise

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = GuardedConfig(
        app,
        limits=Limits(drain_seconds=0.5),
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=0.5,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await started.wait()
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        writer.close()
        await writer.wait_closed()
    finally:
        sock.close()
    assert seen == {"draining": True, "cut": True}
