"""The router driven in-process: the real RouterService behind the gateway's
own server protocol on port 0, the real auth service on a SQLite file, and a
mock upstream (the only stand-in) served the same way. Covers the retry and
fallback rules of the forward step and the status each outcome settles with,
and that every request settles exactly once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from tests.support.mock_upstream import MockUpstream
from tokgateway.auth.service import AuthService
from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import UsageEvent
from tokgateway.common.http import FastRoutes
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import ProviderConfig, RouteRule, RouteTarget
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.http_guard import GuardedConfig, Limits
from tokgateway.router.service import RouterOptions, RouterService


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` under the gateway's server protocol on a free loopback port."""
    config = GuardedConfig(
        app,
        limits=Limits(),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,  # the mock's slow answers are not waited for
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _table(upstream: str) -> RouteTable:
    def provider(name: str, base_url: str) -> ProviderConfig:
        return ProviderConfig(name=name, kind="openai-compatible", base_url=base_url)

    providers = {
        "a": provider("a", upstream),
        "b": provider("b", upstream),
        "dead": provider("dead", f"http://127.0.0.1:{closed_port()}/v1"),
    }

    def rule(pattern: str, *targets: tuple[str, str]) -> RouteRule:
        return RouteRule(pattern, tuple(RouteTarget(p, m) for p, m in targets))

    rules = (
        rule("falls-back-500", ("a", "x-500"), ("b", "ok")),
        rule("falls-back-429", ("a", "x-429"), ("b", "ok")),
        rule("falls-back-dead", ("dead", "ok"), ("b", "ok")),
        rule("keeps-400", ("a", "x-400"), ("b", "ok")),
        rule("all-fail", ("a", "x-500"), ("dead", "ok")),
        rule("html", ("a", "x-html")),
        rule("wait", ("a", "x-wait")),
        rule("midfail", ("a", "x-midfail")),
        rule("ok", ("a", "ok")),
        rule("busy", ("a", "x-slow"), ("b", "x-slow")),
    )
    return RouteTable(
        rules=rules,
        aliases={},
        providers=providers,
        primary=None,
        prices=PriceTable({}),
        strategies={"busy": ("least-busy", {})},
    )


@dataclass
class Router:
    url: str
    key: str
    events: list[UsageEvent]
    upstream: MockUpstream

    def settled(self, n: int) -> list[UsageEvent]:
        assert len(self.events) == n, [e.request_id for e in self.events]
        return self.events[-n:]


@pytest.fixture
def tmp_db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "auth.db"


@pytest.fixture
async def router(tmp_db: Path) -> AsyncIterator[Router]:
    upstream = MockUpstream()
    bus = InProcessBus()
    auth = AuthService(SQLiteDB(tmp_db), bus, admin_email="admin@localhost")
    await auth.start(None)
    _, secret = await auth.create_key(name="inprocess")
    events: list[UsageEvent] = []
    async with serving(upstream.app) as up_url:
        service = RouterService(
            table=_table(up_url + "/v1"),
            verifier=auth,
            bus=bus,
            options=RouterOptions(read_timeout=30.0),
            usage_sink=events.append,
        )
        await service.start()
        app = FastRoutes(Starlette(routes=service.routes()), service.hot_routes())
        try:
            async with serving(app) as url:
                yield Router(url, secret, events, upstream)
        finally:
            await service.close()
            await auth.close()


async def _chat(r: Router, model: str, *, stream: bool = False, wait_s: float = 10.0) -> Any:
    async with httpx.AsyncClient(timeout=wait_s) as client:
        return await client.post(
            r.url + "/v1/chat/completions",
            json={
                "model": model,
                "stream": stream,
                "messages": [{"role": "user", "content": "hi"}],
            },
            headers={"authorization": f"Bearer {r.key}"},
        )


async def _settle_wait(r: Router, n: int) -> list[UsageEvent]:
    for _ in range(200):
        if len(r.events) >= n:
            break
        await asyncio.sleep(0.01)
    return r.settled(n)


@pytest.mark.parametrize(
    ("model", "first"),
    [
        ("falls-back-500", ("a", 500)),
        ("falls-back-429", ("a", 429)),
        ("falls-back-dead", ("dead", 502)),
    ],
)
async def test_a_retryable_failure_falls_back_and_is_charged_once(
    router: Router, model: str, first: tuple[str, int]
) -> None:
    resp = await _chat(router, model)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"]
    (event,) = await _settle_wait(router, 1)
    assert (event.status, event.provider, event.attempts) == (200, "b", 2)
    tried = [(t["provider"], t["status"]) for t in event.extra["attempts"]]
    assert tried == [first, ("b", 200)]  # every attempt recorded, in order
    assert event.prompt_tokens == 11 and event.completion_tokens == 7  # the answer's usage


async def test_a_client_error_upstream_is_not_retried(router: Router) -> None:
    resp = await _chat(router, "keeps-400")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].endswith("upstream rejects this input")
    (event,) = await _settle_wait(router, 1)
    assert (event.status, event.attempts, event.error_class) == (400, 1, "upstream")
    assert event.completion_tokens == 0 and event.cost_usd == 0.0


async def test_when_every_deployment_fails_the_last_error_is_answered(router: Router) -> None:
    resp = await _chat(router, "all-fail")
    assert resp.status_code == 502  # the dead provider's error, the last one tried
    assert "could not be reached" in resp.json()["error"]["message"]
    (event,) = await _settle_wait(router, 1)
    assert (event.status, event.attempts, event.error_class) == (502, 2, "upstream")
    assert [t["provider"] for t in event.extra["attempts"]] == ["a", "dead"]


async def test_a_200_that_is_not_json_is_a_502(router: Router) -> None:
    resp = await _chat(router, "html")
    assert resp.status_code == 502
    (event,) = await _settle_wait(router, 1)
    assert (event.status, event.error_class) == (502, "upstream")


async def test_a_stream_that_breaks_settles_as_an_upstream_error(router: Router) -> None:
    resp = await _chat(router, "midfail", stream=True)
    assert resp.status_code == 200  # the status line had gone out
    assert '"error"' in resp.text
    (event,) = await _settle_wait(router, 1)
    assert (event.status, event.error_class, event.stream) == (502, "upstream", True)


async def test_a_client_that_leaves_before_the_answer_is_a_499(router: Router) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await _chat(router, "wait", wait_s=0.5)
    (event,) = await _settle_wait(router, 1)
    assert (event.status, event.error_class) == (499, "client")
    assert event.completion_tokens == 0 and event.cost_usd == 0.0


async def test_refused_requests_are_answered_but_not_billed(router: Router) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            router.url + "/v1/chat/completions",
            json={"model": "ok", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer tgk-wrong"},
        )
    assert resp.status_code == 401
    resp = await _chat(router, "no-such-model")
    assert resp.status_code == 404
    (event,) = await _settle_wait(router, 1)  # the keyless 401 has no ledger row
    assert (event.status, event.error_class, event.provider) == (404, "client", None)


async def test_every_request_settles_exactly_once(router: Router) -> None:
    models = ["ok", "falls-back-500", "keeps-400", "ok", "html", "all-fail"] * 3
    answers = await asyncio.gather(*(_chat(router, m) for m in models))
    streams = await asyncio.gather(*(_chat(router, "ok", stream=True) for _ in range(6)))
    assert [a.status_code for a in answers[:6]] == [200, 200, 400, 200, 502, 502]
    assert all(s.status_code == 200 and "[DONE]" in s.text for s in streams)
    events = await _settle_wait(router, len(models) + len(streams))
    ids = [e.request_id for e in events]
    assert len(set(ids)) == len(ids)
    sent = {a.headers["x-request-id"] for a in answers + streams}
    assert sent == set(ids)


async def test_least_busy_counts_a_stream_until_it_ends(router: Router) -> None:
    """A stream keeps its deployment busy to its last byte, not only until the
    upstream's headers: the next request goes to the idle one."""
    body = {"model": "busy", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {router.key}"}
    async with (
        httpx.AsyncClient(timeout=10.0) as client,
        client.stream(
            "POST", router.url + "/v1/chat/completions", json=body, headers=headers
        ) as first,
    ):
        assert first.status_code == 200
        pieces = first.aiter_bytes()
        assert await anext(pieces)  # the stream is under way
        second = await _chat(router, "busy")
        assert second.status_code == 200
        (event,) = await _settle_wait(router, 1)
        assert event.provider == "b"  # a is still streaming
    # the client hangs up mid-stream: a is free again, and not blamed for it
    events = await _settle_wait(router, 2)
    assert (events[1].provider, events[1].stream, events[1].status) == ("a", True, 499)
    third = await _chat(router, "busy")
    assert third.status_code == 200
    assert (await _settle_wait(router, 3))[2].provider == "a"  # idle again: a first
