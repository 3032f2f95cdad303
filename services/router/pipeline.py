"""The request path of one /v1 call

    authenticate -> authorize -> resolve -> reserve -> forward -> respond -> settle

Each step is a small method on one ``RequestContext``. ``handle`` gives the
server an ``Exchange``: an ASGI app whose single ``finally`` settles the
request once it has been answered, whatever happened on the way."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tokgateway.common.contracts import KeyInfo
from tokgateway.common.errors import (
    ApiFormat,
    Forbidden,
    GatewayError,
    InternalError,
    NotFound,
)
from tokgateway.common.http import BytesResponse, JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token
from tokgateway.common.lifecycle import SHUTDOWN_STATE
from tokgateway.common.routing import Deployment, Resolution, RouteTable
from tokgateway.router import validate
from tokgateway.router.bridge import CLIENT_FORMAT
from tokgateway.router.context import CLIENT_CLOSED, RequestContext
from tokgateway.router.disconnect import ClientWatch
from tokgateway.router.forward import forward
from tokgateway.router.governor import Governor
from tokgateway.router.keycache import KeyCache
from tokgateway.router.responses_store import ResponseStore
from tokgateway.router.settle import Settler
from tokgateway.router.snapshot import RoutingSnapshot, Snapshots
from tokgateway.router.spans import GenAISpans
from tokgateway.router.strategies import Chooser
from tokgateway.router.streaming import StreamResponse
from tokgateway.router.translate import conversation_after, responses_request_to_chat
from tokgateway.router.usage import estimate_tokens, usage_object

if TYPE_CHECKING:
    from tokgateway.router.providers import Provider, UpstreamResponse
    from tokgateway.router.providers.base import Endpoint

log = logging.getLogger("tokgateway.router")

Checker = Callable[[dict[str, Any]], tuple[str, bool]]
CHECKS: dict[str, Checker] = {
    "chat": validate.check_chat,
    "completions": validate.check_completions,
    "embeddings": validate.check_embeddings,
    "messages": validate.check_messages,
    "count_tokens": lambda b: validate.check_messages(b, count_only=True),
    "responses": validate.check_responses,
}


class RequestIds:
    """Unique request ids without a system call each: a random per-process
    prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = "req_" + secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


_ANSWER_LINES = b"content-type: application/json\r\nx-request-id: %b\r\nrequest-id: %b\r\n"


def _max_output(body: dict[str, Any]) -> int | None:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


@dataclass
class PipelineDeps:
    keys: KeyCache
    governor: Governor
    settler: Settler
    responses: ResponseStore
    max_body_bytes: int
    work_mode: str
    default_max_tokens: int = 4096
    spans: GenAISpans | None = None


class Exchange:
    """One request as an ASGI app: prepared, answered, then settled, in one
    ``try``/``finally`` (settle runs exactly once, after the last byte)."""

    __slots__ = ("ctx", "pipeline", "request")

    def __init__(self, pipeline: Pipeline, request: Request, ctx: RequestContext) -> None:
        self.pipeline = pipeline
        self.request = request
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline, ctx = self.pipeline, self.ctx
        spans = pipeline.deps.spans
        try:
            if spans is None:
                answer = await pipeline.respond(self.request, ctx)
            else:
                with spans.request(ctx.endpoint):
                    spans.bind(ctx)
                    answer = await pipeline.respond(self.request, ctx)
            await answer(scope, receive, send)
        finally:
            pipeline.settle(ctx)


class Pipeline:
    def __init__(self, deps: PipelineDeps, snapshots: Snapshots) -> None:
        self.deps = deps
        self._ids = RequestIds()
        self._snapshots = snapshots
        self.chooser = Chooser.with_metrics(deps.settler.metrics)  # strategies, breaker

    def exchange(self, endpoint: Endpoint, request: Request) -> Exchange:
        """The request as an ASGI app that answers and settles it (nothing
        runs until it is called)."""
        scope = request.scope
        ctx = RequestContext(request_id=self._ids.next(), route=scope["path"], endpoint=endpoint)
        ctx.shutdown = scope.get("state", {}).get(SHUTDOWN_STATE)
        return Exchange(self, request, ctx)

    # -- the steps ---------------------------------------------------------------------
    async def authenticate(self, request: Request) -> KeyInfo:
        headers = request.headers
        token = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
        return await self.deps.keys.authenticate(token)

    async def authorize(self, key: KeyInfo, model: str, target: str) -> None:
        if key.models and not any(
            fnmatchcase(model, p) or fnmatchcase(target, p) for p in key.models
        ):
            raise Forbidden(
                f"This API key may not use model `{model}`.",
                code="model_not_allowed",
                param="model",
            )

    def candidates(self, resolution: Resolution, snap: RoutingSnapshot) -> Sequence[Deployment]:
        """The deployments to try for this request, in order (the strategy
        ordered them in ``choose``)."""
        return resolution.deployments

    async def reserve(self, ctx: RequestContext, resolution: Resolution, table: RouteTable) -> None:
        """Book the request on the limits of its key, user and team: tokens are
        the local prompt count plus the output cap, the cost those tokens at the
        first deployment's prices (what the ledger would charge). A request
        without an output cap that counts against a budget is sent with the
        default cap, so no answer can cost more than was booked for it."""
        key = ctx.key
        assert key is not None
        cap = _max_output(ctx.body)
        if ctx.endpoint == "embeddings":
            cap = 0
        elif cap is None:
            cap = self.deps.default_max_tokens
            if any(s.limits.budget_usd is not None for s in key.scopes):
                # What was booked is what may be spent: the upstream gets the cap.
                ctx.output_cap = cap
        prompt = ctx.prompt_estimate
        price = table.first_price(resolution)
        cost = 0.0 if price is None else price.estimate(prompt, cap)
        ctx.reservation = await self.deps.governor.reserve(key, prompt + cap, cost)

    def _history(self, ctx: RequestContext) -> list[dict[str, Any]] | None:
        if ctx.endpoint != "responses":
            return None
        prev = ctx.body.get("previous_response_id")
        if prev is None:
            return None
        found = self.deps.responses.get(str(prev))
        if found is None:
            raise NotFound(
                f"Previous response with id '{prev}' not found.",
                code="previous_response_not_found",
                param="previous_response_id",
            )
        return found

    async def respond(self, request: Request, ctx: RequestContext) -> ASGIApp:
        """Every step up to the answer; an error becomes the answer in the
        client's API. The caller settles."""
        fmt = CLIENT_FORMAT[ctx.endpoint]
        ctx.snapshot = snap = self._snapshots.acquire()  # this request's table and providers
        table = snap.table
        gone = False
        try:
            ctx.key = await self.authenticate(request)
            ctx.body = body = await read_json(request, self.deps.max_body_bytes)
            ctx.model, ctx.stream = CHECKS[ctx.endpoint](body)
            resolution = table.resolve(ctx.model)
            await self.authorize(ctx.key, ctx.model, resolution.target)
            resolution, ctx.body = self.chooser.choose(
                resolution, body, **table.routing(resolution.target)
            )
            ctx.resolution = resolution
            ctx.prompt_estimate = estimate_tokens(validate.prompt_chars(ctx.body))
            if ctx.endpoint == "count_tokens":
                if self._count_locally(resolution.deployments[0].provider.name, snap.providers):
                    return self._local_count(ctx)
            elif ctx.key.scopes:
                await self.reserve(ctx, resolution, table)
            ctx.history = self._history(ctx)
            watch = ClientWatch(request.scope, request.receive)
            try:
                upstream = await forward(
                    self.candidates(resolution, snap),
                    snap.providers,
                    request.headers,
                    ctx,
                    work_mode=self.deps.work_mode,
                    metrics=self.deps.settler.metrics,
                    spans=self.deps.spans,
                )
            finally:
                gone = watch.stop()
        except GatewayError as err:
            return self._fail(err, fmt, ctx)
        except asyncio.CancelledError:
            # The client went away while the upstream was being asked (the
            # upstream call is cancelled with it): nothing was delivered.
            ctx.client_gone = True
            ctx.status = CLIENT_CLOSED
            if not gone:
                raise  # cancelled from outside (shutdown): keep cancelling
            return Response(status_code=CLIENT_CLOSED)
        except Exception as exc:  # a bug: answered and settled like any error
            log.exception("internal error", extra={"request_id": ctx.request_id})
            internal = InternalError(f"Internal gateway error ({type(exc).__name__}).")
            return self._fail(internal, fmt, ctx)

        ctx.status = upstream.status
        if upstream.chunks is None:
            return self._complete(upstream, ctx)
        return self._stream(upstream, ctx)

    def settle(self, ctx: RequestContext) -> None:
        """The ledger row, the limits' real cost, the routing state; then the
        routing snapshot is let go."""
        snap, ctx.snapshot = ctx.snapshot, None
        try:
            if ctx.attempts:
                ok = None if ctx.client_gone and ctx.error is None else ctx.error is None
                self.chooser.done(ctx.resolution, ctx.attempts, ok, ctx)
            self.deps.settler.settle(ctx, snap.table.prices if snap is not None else None)
        finally:
            if snap is not None:
                self._snapshots.release(snap)

    # -- answers -------------------------------------------------------------------------
    def _fail(self, err: GatewayError, fmt: ApiFormat, ctx: RequestContext) -> Response:
        ctx.status = err.http_status
        ctx.error = err
        return error_response(err, fmt, **ctx.response_headers())

    @staticmethod
    def _count_locally(provider: str, providers: Mapping[str, Provider]) -> bool:
        p = providers.get(provider)
        return p is None or not p.supports("count_tokens")

    def _local_count(self, ctx: RequestContext) -> Response:
        """count_tokens for providers without one: an estimate (no tokenizer of
        every model ships with the gateway)."""
        tools = ctx.body.get("tools")
        extra = len(orjson.dumps(tools)) if tools else 0
        count = ctx.prompt_estimate + estimate_tokens(extra)
        return JSONResponse({"input_tokens": count}, headers=ctx.response_headers())

    def _complete(self, upstream: UpstreamResponse, ctx: RequestContext) -> ASGIApp:
        ctx.upstream_done = time.perf_counter()
        raw = upstream.body or b""
        plan = ctx.plan
        assert plan is not None
        if plan.response is None and len(raw) > 2048:
            # passthrough of a large body: read the usage alone
            cut = usage_object(raw)
            if cut is not None:
                ctx.usage = plan.usage(cut)
                return self._answer(raw, upstream, ctx)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            ctx.usage = plan.usage(obj.get("usage"))
            if plan.response is not None:
                try:
                    out = plan.response(obj, ctx.body, ctx.model)
                except GatewayError as err:
                    return self._fail(err, CLIENT_FORMAT[ctx.endpoint], ctx)
                if ctx.endpoint == "responses":
                    self._remember(ctx, out)
                raw = orjson.dumps(out)
        return self._answer(raw, upstream, ctx)

    def _headers(self, upstream: UpstreamResponse, ctx: RequestContext) -> dict[str, str]:
        # upstream rate limits and request id; the gateway's own limits for the key win
        headers = {**upstream.client_headers(), **ctx.response_headers()}
        headers["x-gateway-overhead-ms"] = f"{ctx.overhead_ms(time.perf_counter()):.3f}"
        return headers

    def _answer(self, raw: bytes, upstream: UpstreamResponse, ctx: RequestContext) -> BytesResponse:
        # the headers of _headers, written as header lines at once
        rid = ctx.request_id.encode()
        lines = _ANSWER_LINES % (rid, rid)
        count = 3
        passed = upstream.client_headers()
        own = ctx.reservation
        if passed:
            if own is not None and own.count:  # the gateway's own limits for the key win
                for name, _ in own.headers:
                    passed.pop(name.decode("latin-1"), None)
            for key, value in passed.items():
                lines += b"%b: %b\r\n" % (key.encode("latin-1"), value.encode("latin-1"))
                count += 1
        if own is not None and own.count:
            lines += own.lines
            count += own.count
        overhead = ctx.overhead_ms(time.perf_counter())
        lines += b"x-gateway-overhead-ms: %.3f\r\n" % overhead
        return BytesResponse(raw, upstream.status, lines, count + 1)

    def _remember(self, ctx: RequestContext, response: dict[str, Any]) -> None:
        body = ctx.body
        if body.get("store") is False or not isinstance(response.get("id"), str):
            return
        chat_request = responses_request_to_chat(body, ctx.history)
        self.deps.responses.put(response["id"], conversation_after(body, chat_request, response))

    def _stream(self, upstream: UpstreamResponse, ctx: RequestContext) -> StreamResponse:
        chunks = upstream.chunks
        plan = ctx.plan
        assert chunks is not None and plan is not None
        relay = plan.relay(chunks, ctx)  # the plan knows how its stream is read
        close = upstream.close

        async def stream_body() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for piece in relay:
                    yield piece
                finished = True
            finally:
                if not finished:
                    # A client that hangs up after the answer was complete is no 499.
                    ctx.client_gone = ctx.error is None and not ctx.upstream_complete
                await relay.aclose()
                await close()
                if finished and ctx.final_response is not None and ctx.endpoint == "responses":
                    self._remember(ctx, ctx.final_response)

        headers = self._headers(upstream, ctx)
        headers["x-accel-buffering"] = "no"
        return StreamResponse(stream_body(), status=200, headers=headers)
