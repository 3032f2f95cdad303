"""What the HTTP adapters make of what comes back: answers that are not JSON,
streams without events, oversized answers, a busy pool; and which headers go
up (organisation headers, a provider's own) and come back to the client."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from tokgateway.common.errors import UpstreamBusy, UpstreamUnavailable
from tokgateway.common.settings import ProviderConfig, ProviderNetwork
from tokgateway.router.providers import UpstreamCall, build_provider
from tokgateway.router.providers.client import HTTPClient


@dataclass
class Upstream:
    """Answers every request with ``reply`` (status line to body), records them."""

    reply: bytes = b""
    requests: list[bytes] = field(default_factory=list)
    url: str = ""
    hang: bool = False
    two: asyncio.Event = field(default_factory=asyncio.Event)


def http(body: bytes, content_type: bytes = b"application/json", *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\n"
    head += b"".join(h + b"\r\n" for h in extra)
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[bytes], Awaitable[Upstream]]]:
    servers: list[asyncio.Server] = []
    tasks: list[asyncio.Task[object]] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(reply: bytes, hang: bool = False) -> Upstream:
        state = Upstream(reply, hang=hang)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            writers.append(writer)
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    state.requests.append(head + await reader.readexactly(length))
                    if len(state.requests) == 2:
                        state.two.set()
                    if state.hang:
                        await asyncio.sleep(3600)
                    writer.write(state.reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
        return state

    yield start
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for writer in writers:
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    for server in servers:
        await server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[HTTPClient]:
    c = HTTPClient(max_connections=2, pool_timeout=0.2, max_body=1 << 20, max_event=4096)
    yield c
    await c.close()


def provider(up: Upstream, client: HTTPClient, kind: str = "openai", **network: object) -> object:
    config = ProviderConfig(
        name="up",
        kind=kind,
        base_url=up.url,
        api_key="sk-test",
        network=ProviderNetwork(**network),  # type: ignore[arg-type]
    )
    return build_provider(config, client, 5.0)


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "kind", "what"),
    [
        (b"<html><body>Login required</body></html>", b"text/html", "an HTML page"),
        (b"upstream says hello", b"text/plain", "text/plain (other text)"),
        (b'[{"id": 1}]', b"application/json", "application/json (an array)"),
        (b"", b"application/json", "an empty body"),
    ],
)
async def test_a_2xx_that_is_no_json_object_is_a_502(
    upstream: Callable[[bytes], Awaitable[Upstream]],
    client: HTTPClient,
    body: bytes,
    kind: bytes,
    what: str,
) -> None:
    up = await upstream(http(body, kind))
    p = provider(up, client)
    with pytest.raises(UpstreamUnavailable, match="answered 200 with") as info:
        await p.send(UpstreamCall("chat", CHAT))  # type: ignore[attr-defined]
    assert what in info.value.message
    assert info.value.http_status == 502
    assert b'"type":"upstream_unavailable"' in info.value.body("openai")
    assert b'"type":"error"' in info.value.body("anthropic")


async def test_a_stream_request_answered_with_a_page_is_a_502_before_any_byte(
    upstream: Callable[[bytes], Awaitable[Upstream]], client: HTTPClient
) -> None:
    up = await upstream(http(b"<html>proxy login</html>", b"text/html; charset=utf-8"))
    p = provider(up, client)
    with pytest.raises(UpstreamUnavailable, match="an HTML page, not a stream"):
        await p.send(UpstreamCall("chat", CHAT, stream=True))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "stream",
    [
        b"data: [DONE]\n\n",
        b"hello there\n\nno events at all\n",
        b"data: <html>\n\ndata: [DONE]\n\n",
    ],
)
async def test_a_stream_without_one_valid_event_ends_in_an_error(
    upstream: Callable[[bytes], Awaitable[Upstream]], client: HTTPClient, stream: bytes
) -> None:
    up = await upstream(http(stream, b"text/event-stream"))
    p = provider(up, client)
    resp = await p.send(UpstreamCall("chat", CHAT, stream=True))  # type: ignore[attr-defined]
    assert resp.chunks is not None
    with pytest.raises(UpstreamUnavailable, match="without one valid event"):
        async for _ in resp.chunks:
            pass


async def test_a_valid_stream_passes_untouched(
    upstream: Callable[[bytes], Awaitable[Upstream]], client: HTTPClient
) -> None:
    events = b'data: {"id":"1","choices":[]}\n\n' * 3 + b"data: [DONE]\n\n"
    up = await upstream(http(events, b"text/event-stream"))
    p = provider(up, client)
    resp = await p.send(UpstreamCall("chat", CHAT, stream=True))  # type: ignore[attr-defined]
    assert resp.chunks is not None
    assert b"".join([c async for c in resp.chunks]) == events


async def test_an_oversized_event_and_an_oversized_answer_are_cut(
    upstream: Callable[[bytes], Awaitable[Upstream]], client: HTTPClient
) -> None:
    huge = b'data: {"id":"1"}\n\ndata: {"x":"' + b"z" * 10_000 + b'"}\n\n'
    up = await upstream(http(gzip.compress(huge), b"text/event-stream", b"content-encoding: gzip"))
    p = provider(up, client)
    resp = await p.send(UpstreamCall("chat", CHAT, stream=True))  # type: ignore[attr-defined]
    assert resp.chunks is not None
    with pytest.raises(UpstreamUnavailable, match="an event is larger than 4096 bytes"):
        async for _ in resp.chunks:
            pass
    big = await upstream(
        http(
            gzip.compress(b'{"a":"' + b"0" * (2 << 20) + b'"}'),
            b"application/json",
            b"content-encoding: gzip",
        )
    )
    with pytest.raises(UpstreamUnavailable, match="answered too much"):
        await provider(big, client).send(UpstreamCall("chat", CHAT))  # type: ignore[attr-defined]


async def test_a_full_pool_is_a_503_upstream_busy(
    upstream: Callable[..., Awaitable[Upstream]], client: HTTPClient
) -> None:
    up = await upstream(b"", hang=True)
    p = provider(up, client)
    hung = [
        asyncio.ensure_future(p.send(UpstreamCall("chat", CHAT)))  # type: ignore[attr-defined]
        for _ in range(2)
    ]
    await asyncio.wait_for(up.two.wait(), 5)
    with pytest.raises(UpstreamBusy) as info:
        await p.send(UpstreamCall("chat", CHAT))  # type: ignore[attr-defined]
    err = info.value
    assert err.http_status == 503
    assert b'"type":"upstream_busy"' in err.body("openai")
    assert b'"overloaded_error"' in err.body("anthropic")
    assert err.response_headers()["retry-after"] == "1"
    for task in hung:
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    assert client.pool_stats()[0][1] == 0  # cancelled: both slots are back


async def test_org_headers_are_dropped_unless_allowed_and_extra_headers_sent(
    upstream: Callable[[bytes], Awaitable[Upstream]], client: HTTPClient
) -> None:
    up = await upstream(http(b'{"ok": 1}'))
    sent = {"openai-organization": "org-other", "openai-project": "proj-x", "anthropic-beta": "b1"}
    await provider(up, client).send(  # type: ignore[attr-defined]
        UpstreamCall("chat", CHAT, headers=sent)
    )
    first = up.requests[-1].lower()
    assert b"openai-organization" not in first and b"openai-project" not in first
    assert b"anthropic-beta: b1" in first
    allowed = provider(
        up,
        client,
        forward_org_headers=True,
        headers=(("x-team", "search"), ("authorization", "ignored")),
    )
    await allowed.send(UpstreamCall("chat", CHAT, headers=sent))  # type: ignore[attr-defined]
    second = up.requests[-1].lower()
    assert b"openai-organization: org-other" in second
    assert b"openai-project: proj-x" in second
    assert b"x-team: search" in second
    assert b"authorization: bearer sk-test" in second  # the provider key wins
    assert b"accept-encoding: gzip, deflate, br, zstd\r\n" in second  # only what it decodes


async def test_rate_limit_headers_and_request_id_reach_the_client(
    upstream: Callable[[bytes], Awaitable[Upstream]], client: HTTPClient
) -> None:
    up = await upstream(
        http(
            b'{"ok": 1}',
            b"application/json",
            b"x-ratelimit-remaining-requests: 99",
            b"x-ratelimit-reset-tokens: 6ms",
            b"x-request-id: req_abc",
            b"set-cookie: secret=1",
        )
    )
    resp = await provider(up, client).send(UpstreamCall("chat", CHAT))  # type: ignore[attr-defined]
    assert resp.client_headers() == {
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-tokens": "6ms",
        "x-upstream-request-id": "req_abc",
    }
