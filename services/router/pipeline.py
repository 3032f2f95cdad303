"""The request path of one /v1 call

    authenticate -> authorize -> resolve -> forward -> respond -> settle

Each step is a small method; ``handle`` only chains them. Every request that
reaches a handler settles exactly once, whatever happens."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from tokgateway.common.contracts import KeyInfo, UsageEvent
from tokgateway.common.errors import (
    ApiFormat,
    Forbidden,
    GatewayError,
    InternalError,
    NotFound,
)
from tokgateway.common.http import JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token
from tokgateway.common.lifecycle import SHUTDOWN_STATE
from tokgateway.common.pricing import PriceTable
from tokgateway.common.routing import Deployment, Resolution, RouteTable
from tokgateway.router import validate
from tokgateway.router.bridge import CLIENT_FORMAT, StreamContext
from tokgateway.router.disconnect import ClientWatch
from tokgateway.router.forward import Forwarded, forward
from tokgateway.router.governor import Governor
from tokgateway.router.keycache import KeyCache
from tokgateway.router.relay import (
    Meter,
    relay_anthropic,
    relay_openai,
    relay_responses,
    relay_translated,
)
from tokgateway.router.responses_store import ResponseStore
from tokgateway.router.settle import CLIENT_CLOSED, RequestInfo, Settler
from tokgateway.router.snapshot import RoutingSnapshot, Snapshots
from tokgateway.router.spans import GenAISpans
from tokgateway.router.strategies import Chooser
from tokgateway.router.streaming import StreamResponse
from tokgateway.router.translate import conversation_after, responses_request_to_chat
from tokgateway.router.usage import estimate_tokens, from_anthropic, from_openai, usage_object

if TYPE_CHECKING:
    from tokgateway.router.providers import Provider
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


def _ids(info: RequestInfo) -> dict[str, str]:
    headers = {"x-request-id": info.request_id, "request-id": info.request_id}
    if info.reservation is not None:
        headers.update(info.reservation.headers)
    return headers


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


class Pipeline:
    def __init__(
        self,
        deps: PipelineDeps,
        snapshots: Snapshots,
    ) -> None:
        self.deps = deps
        self._ids = RequestIds()
        self._snapshots = snapshots
        self.chooser = Chooser.with_metrics(deps.settler.metrics)  # strategies, breaker
        # Untraced, a request costs no wrapper at all.
        self.handle: Callable[[Request, Endpoint], Awaitable[ASGIApp]] = (
            self._handle if deps.spans is None else self._traced
        )

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
        """The deployments to try for this request, in order: the place where a
        routing strategy decides (today: the route's own order)."""
        return resolution.deployments

    async def reserve(
        self,
        info: RequestInfo,
        endpoint: str,
        body: dict[str, Any],
        resolution: Resolution,
        table: RouteTable,
    ) -> None:
        """Book the request on the limits of its key, user and team: tokens are
        the local prompt count plus the output cap, the cost those tokens at the
        first deployment's prices (what the ledger would charge)."""
        key = info.key
        assert key is not None
        cap = _max_output(body)
        if endpoint == "embeddings":
            cap = 0
        elif cap is None:
            cap = self.deps.default_max_tokens
        tokens = info.prompt_estimate + cap
        cost = 0.0
        dep = resolution.deployments[0]
        prices = table.prices
        price = prices.price_for(
            dep.provider.name, dep.provider.kind, dep.upstream_model, info.model
        )
        if price is not None:
            cost = price.cost(info.prompt_estimate, cap)
        info.reservation = await self.deps.governor.reserve(key, tokens, cost)

    def _history(self, endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        if endpoint != "responses":
            return None
        prev = body.get("previous_response_id")
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

    async def _traced(self, request: Request, endpoint: Endpoint) -> ASGIApp:
        assert self.deps.spans is not None
        with self.deps.spans.request(endpoint):
            return await self._handle(request, endpoint)

    async def _handle(self, request: Request, endpoint: Endpoint) -> ASGIApp:
        fmt = CLIENT_FORMAT[endpoint]
        meter = Meter()
        snap = self._snapshots.acquire()  # read once: this request's table and providers
        table = snap.table
        info = RequestInfo(request_id=self._ids.next(), route=request.scope["path"])
        info.snapshot = snap
        info.shutdown = request.scope.get("state", {}).get(SHUTDOWN_STATE)
        if self.deps.spans is not None:
            self.deps.spans.bind(info)
        body: dict[str, Any] = {}
        gone = False
        try:
            info.key = await self.authenticate(request)
            body = await read_json(request, self.deps.max_body_bytes)
            info.model, info.stream = CHECKS[endpoint](body)
            resolution = table.resolve(info.model)
            await self.authorize(info.key, info.model, resolution.target)
            resolution, body = self.chooser.choose(
                resolution, body, **table.routing(resolution.target)
            )
            info.prompt_estimate = estimate_tokens(validate.prompt_chars(body))
            providers = snap.providers
            if endpoint == "count_tokens":
                local = self._count_locally(resolution.deployments[0].provider.name, providers)
                if local:
                    return self._local_count(body, info, meter)
            elif info.key.scopes:
                await self.reserve(info, endpoint, body, resolution, table)
            history = self._history(endpoint, body)
            watch = ClientWatch(request.receive)
            try:
                fwd = await forward(
                    self.candidates(resolution, snap),
                    providers,
                    endpoint,
                    body,
                    request.headers,
                    info,
                    meter,
                    work_mode=self.deps.work_mode,
                    history=history,
                    metrics=self.deps.settler.metrics,
                    spans=self.deps.spans,
                )
            finally:
                gone = watch.stop()
            self.chooser.done(resolution, info.attempts, fwd.response.status < 400, meter)
        except GatewayError as err:
            if info.attempts:
                self.chooser.done(resolution, info.attempts, False, meter)
            return self._fail(err, fmt, info, meter, table)
        except asyncio.CancelledError:
            # The client went away while the upstream was being asked (the
            # upstream call is cancelled with it): nothing was delivered.
            meter.client_gone = True
            info.status = CLIENT_CLOSED
            self._settle(info, meter, table.prices)
            if not gone:
                raise  # cancelled from outside (shutdown): keep cancelling
            return Response(status_code=CLIENT_CLOSED)
        except Exception as exc:  # a bug: never leave a request unsettled
            log.exception("internal error", extra={"request_id": info.request_id})
            internal = InternalError(f"Internal gateway error ({type(exc).__name__}).")
            return self._fail(internal, fmt, info, meter, table)

        info.status = fwd.response.status
        if fwd.response.chunks is None:
            return self._complete(fwd, endpoint, body, history, info, meter, table)
        return self._stream(fwd, endpoint, body, history, info, meter, table)

    def _settle(
        self,
        info: RequestInfo,
        meter: Meter,
        prices: PriceTable | None,
        error: GatewayError | None = None,
    ) -> UsageEvent:
        """Settle, then let go of the routing snapshot (once)."""
        try:
            return self.deps.settler.settle(info, meter, prices, error)
        finally:
            snap, info.snapshot = info.snapshot, None
            if snap is not None:
                self._snapshots.release(snap)

    def _fail(
        self, err: GatewayError, fmt: ApiFormat, info: RequestInfo, meter: Meter, table: RouteTable
    ) -> Response:
        info.status = err.http_status
        self._settle(info, meter, table.prices, err)
        return error_response(err, fmt, **_ids(info))

    @staticmethod
    def _count_locally(provider: str, providers: Mapping[str, Provider]) -> bool:
        p = providers.get(provider)
        return p is None or not p.supports("count_tokens")

    def _local_count(self, body: dict[str, Any], info: RequestInfo, meter: Meter) -> Response:
        """count_tokens for providers without one: an estimate (no tokenizer of
        every model ships with the gateway)."""
        tools = body.get("tools")
        extra = len(orjson.dumps(tools)) if tools else 0
        count = info.prompt_estimate + estimate_tokens(extra)
        self._settle(info, meter, None)
        return JSONResponse({"input_tokens": count}, headers=_ids(info))

    def _complete(
        self,
        fwd: Forwarded,
        endpoint: str,
        body: dict[str, Any],
        history: list[dict[str, Any]] | None,
        info: RequestInfo,
        meter: Meter,
        table: RouteTable,
    ) -> Response:
        meter.upstream_done = time.perf_counter()
        raw = fwd.response.body or b""
        plan = fwd.plan
        if plan.response is None and len(raw) > 2048:
            # passthrough of a large body: read the usage alone
            cut = usage_object(raw)
            if cut is not None:
                if plan.upstream_format == "anthropic":
                    meter.usage = from_anthropic(cut)
                else:
                    meter.usage = from_openai(cut)
                return self._answer(raw, fwd, info, meter, table)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            usage = obj.get("usage")
            if plan.upstream_format == "anthropic":
                meter.usage = from_anthropic(usage) if isinstance(usage, dict) else None
            else:
                meter.usage = from_openai(usage)
            if plan.response is not None:
                try:
                    out = plan.response(obj, body, info.model)
                except GatewayError as err:
                    return self._fail(err, CLIENT_FORMAT[endpoint], info, meter, table)
                if endpoint == "responses":
                    self._remember(body, history, out)
                raw = orjson.dumps(out)
        return self._answer(raw, fwd, info, meter, table)

    def _answer(
        self, raw: bytes, fwd: Forwarded, info: RequestInfo, meter: Meter, table: RouteTable
    ) -> Response:
        event = self._settle(info, meter, table.prices)
        # upstream rate limits and request id; the gateway's own limits for the key win
        headers = {**fwd.response.client_headers(), **_ids(info)}
        headers["x-gateway-overhead-ms"] = f"{event.overhead_ms or 0:.3f}"
        return Response(
            raw, status_code=fwd.response.status, headers=headers, media_type="application/json"
        )

    def _remember(
        self, body: dict[str, Any], history: list[dict[str, Any]] | None, response: dict[str, Any]
    ) -> None:
        if body.get("store") is False or not isinstance(response.get("id"), str):
            return
        chat_request = responses_request_to_chat(body, history)
        self.deps.responses.put(response["id"], conversation_after(body, chat_request, response))

    def _stream(
        self,
        fwd: Forwarded,
        endpoint: str,
        body: dict[str, Any],
        history: list[dict[str, Any]] | None,
        info: RequestInfo,
        meter: Meter,
        table: RouteTable,
    ) -> StreamResponse:
        chunks = fwd.response.chunks
        assert chunks is not None
        plan = fwd.plan
        fmt = CLIENT_FORMAT[endpoint]
        translator = None
        if plan.stream is not None:
            ctx = StreamContext(info.model, body, info.prompt_estimate)
            translator = plan.stream(ctx)
            relay = relay_translated(chunks, meter, translator, fmt)
        elif plan.endpoint == "messages":
            relay = relay_anthropic(chunks, meter)
        elif plan.endpoint == "responses":
            relay = relay_responses(chunks, meter)
        else:
            relay = relay_openai(chunks, meter, strip_usage=fwd.strip_usage)
        close = fwd.response.close

        async def stream_body() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for piece in relay:
                    yield piece
                finished = True
            finally:
                if not finished:
                    # A client that hangs up after the answer was complete is no 499.
                    meter.client_gone = meter.error is None and not meter.upstream_complete
                await relay.aclose()
                await close()
                if finished and endpoint == "responses" and translator is not None:
                    final = translator.final_response
                    if final is not None:
                        self._remember(body, history, final)
                self._settle(info, meter, table.prices)

        # upstream rate limits and request id; the gateway's own limits for the key win
        headers = {**fwd.response.client_headers(), **_ids(info)}
        now = time.perf_counter()
        up = (meter.upstream_headers or now) - (meter.upstream_started or now)
        headers["x-gateway-overhead-ms"] = f"{(now - meter.started - up) * 1000:.3f}"
        headers["x-accel-buffering"] = "no"
        return StreamResponse(stream_body(), status=200, headers=headers)
