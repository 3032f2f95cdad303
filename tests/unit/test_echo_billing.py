"""Echo is a test provider: what it serves costs nothing, whatever name it was
asked under, unless the operator priced that name on purpose."""

from __future__ import annotations

from tokgateway.common.bus import InProcessBus
from tokgateway.common.logs import AccessLog
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.pricing import PriceTable
from tokgateway.common.settings import PriceOverride
from tokgateway.router.context import RequestContext
from tokgateway.router.settle import Settler
from tokgateway.router.usage import Usage


def _settle(prices: PriceTable, kind: str, model: str) -> float:
    settler = Settler(InProcessBus(), RouterMetrics(), AccessLog(False), lambda ev: None)
    ctx = RequestContext(
        request_id="r1",
        route="/v1/chat/completions",
        model=model,
        provider="p",
        provider_kind=kind,
        upstream_model=model,
    )
    ctx.usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    return settler.settle(ctx, prices).cost_usd


def test_echo_is_free_even_under_a_priced_name() -> None:
    prices = PriceTable.default()
    assert prices.lookup("gpt-4o") is not None
    assert _settle(prices, "openai", "gpt-4o") > 0
    assert _settle(prices, "echo", "gpt-4o") == 0.0
    assert _settle(prices, "echo", "echo") == 0.0


def test_echo_bills_a_price_set_on_purpose() -> None:
    prices = PriceTable.default({"echo": PriceOverride(1.5, 2.5)})
    assert _settle(prices, "echo", "echo") == 4.0
