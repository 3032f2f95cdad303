"""One request's state, from its arrival to its ledger row.

Every step of the request path (authenticate, resolve, reserve, forward,
relay, settle) reads and writes the same ``RequestContext``: what the client
asked, the routing snapshot it holds, the upstream attempts, the limits it
booked, and what was measured on the way. The settle step turns it into one
usage event (``pipeline.Exchange`` calls it once, in its ``finally``)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokgateway.common.contracts import KeyInfo
from tokgateway.common.errors import GatewayError
from tokgateway.common.lifecycle import ShutdownState
from tokgateway.router.usage import Usage

if TYPE_CHECKING:
    from tokgateway.common.routing import Resolution
    from tokgateway.router.bridge import Plan
    from tokgateway.router.governor import Reservation
    from tokgateway.router.providers.base import Endpoint
    from tokgateway.router.snapshot import RoutingSnapshot

JSON = dict[str, Any]
HOLD_LIMIT = 256 * 1024
CLIENT_CLOSED = 499


@dataclass(slots=True, eq=False)
class RequestContext:
    request_id: str = ""
    route: str = ""
    endpoint: Endpoint = "chat"  # the client's API

    # what the client asked
    key: KeyInfo | None = None
    body: JSON = field(default_factory=dict)
    model: str = ""
    stream: bool = False
    prompt_estimate: int = 0
    history: list[JSON] | None = None  # the conversation before previous_response_id

    # where it went
    snapshot: RoutingSnapshot | None = None  # held from arrival to settle
    resolution: Resolution | None = None
    plan: Plan | None = None  # how the answering provider's API was spoken
    strip_usage: bool = False  # the gateway asked for the usage chunk; the client did not
    provider: str | None = None
    provider_kind: str = ""
    upstream_model: str | None = None
    attempts: int = 0
    tried: list[dict[str, object]] | None = None  # every upstream attempt
    reservation: Reservation | None = None  # what the limits booked for it
    output_cap: int | None = None  # an output cap the gateway sends (a budget booked it)

    # what was measured
    status: int = 200
    started: float = field(default_factory=time.perf_counter)
    upstream_started: float | None = None
    upstream_headers: float | None = None
    first_chunk: float | None = None
    upstream_done: float | None = None
    usage: Usage | None = None
    content_chunks: int = 0
    content_chars: int = 0
    error: GatewayError | None = None  # set when the request failed
    in_stream_error: str | None = None
    client_gone: bool = False
    upstream_complete: bool = False  # the upstream finished its answer
    final_response: JSON | None = None  # a translated Responses stream's whole answer
    held: list[bytes] = field(default_factory=list)  # relayed, not yet counted
    held_size: int = 0
    shutdown: ShutdownState | None = None  # set by the server: a cut at the drain end

    # -- counting what a stream carried ----------------------------------------------
    def hold(self, data: bytes) -> None:
        """Keep relayed events to count their text only if the upstream ends
        up reporting no usage (most do, so the counting is mostly skipped);
        past ``HOLD_LIMIT`` bytes they are counted at once and let go."""
        self.held.append(data)
        self.held_size += len(data)
        if self.held_size > HOLD_LIMIT:
            self.count_held()

    def count_held(self) -> None:
        for data in self.held:
            count_content(data, self)
        self.held = []
        self.held_size = 0

    def finish_counting(self) -> None:
        """The relay's last step: the end time, and the held text counted when
        no usage came."""
        if self.upstream_done is None:
            self.upstream_done = time.perf_counter()
        if self.usage is None:
            self.count_held()

    # -- times -------------------------------------------------------------------------
    def upstream_ms(self) -> float | None:
        if self.upstream_started is None:
            return None
        end = self.upstream_done or time.perf_counter()
        return (end - self.upstream_started) * 1000.0

    def overhead_ms(self, now: float) -> float:
        """Time spent in the gateway so far, the upstream's wait taken out."""
        up = (self.upstream_headers or now) - (self.upstream_started or now)
        return (now - self.started - up) * 1000.0

    def response_headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, "request-id": self.request_id}
        if self.reservation is not None and self.reservation.count:
            for name, value in self.reservation.headers:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        return headers


# The strings a streamed answer is made of, whitespace after the colon or not.
_CONTENT = re.compile(
    rb'"(?:content|text|arguments|partial_json|thinking|refusal|delta)"\s*:\s*"((?:[^"\\]|\\.)*)"'
)


def count_content(data: bytes, ctx: RequestContext) -> None:
    """Meter the generated text of one or more events, for when the upstream
    reports no usage: every non-empty text field counts as one chunk."""
    for match in _CONTENT.finditer(data):
        size = match.end(1) - match.start(1)
        if size:
            ctx.content_chunks += 1
            ctx.content_chars += size
