"""Concurrent chats against one or more gateway URLs, for the proofs that
limits and budgets hold across processes.

The mock upstream reports 11 prompt + 7 completion tokens for every chat. A
prompt of 44 characters is estimated at 11 tokens, so with ``max_tokens`` 7 a
request books exactly what it then uses: 18 tokens, and at $1 a token
(``PRICED_MODEL``) exactly $18."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

PRICED_MODEL = "gpt-budget"
PRICES = f"""
[prices]
{PRICED_MODEL} = 1000000, 1000000
"""
COST = 18.0
TOKENS = 18
PROMPT = "y" * 44


def burst(
    urls: list[str], key: str, n: int, *, threads: int = 32, max_tokens: int | None = 7
) -> list[httpx.Response]:
    """``n`` chats, spread over ``urls`` in turn, ``threads`` at a time; a fresh
    connection each, so the kernel spreads them over worker processes too."""
    body: dict[str, object] = {
        "model": PRICED_MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens

    def one(i: int) -> httpx.Response:
        with httpx.Client(timeout=30.0) as client:
            return client.post(
                urls[i % len(urls)] + "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key}"},
            )

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def codes(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]
