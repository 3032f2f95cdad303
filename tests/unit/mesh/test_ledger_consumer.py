"""The mesh ledger's consumer loop over in-memory stand-ins for JetStream and
the store: ack only after commit, hold the batch while the store is down,
drop malformed events for good."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tokgateway.common.contracts import UsageEvent
from tokgateway.ledger.consumer import Delivery, UsageConsumer


class Message:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.acked = False
        self.termed = False
        self.progress = 0

    async def ack(self) -> None:
        self.acked = True

    async def term(self) -> None:
        self.termed = True

    async def in_progress(self) -> None:
        self.progress += 1


class Source:
    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches = batches

    async def fetch(self, max_items: int, wait: float) -> Sequence[Delivery]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(0.01)
        return []


class Store:
    """Idempotent on request id, like both real stores; can be 'down'."""

    def __init__(self) -> None:
        self.rows: dict[str, UsageEvent] = {}
        self.down = False
        self.attempts = 0

    async def insert_batch(self, events: list[UsageEvent]) -> int:
        self.attempts += 1
        if self.down:
            raise ConnectionRefusedError("database down")
        new = [e for e in events if e.request_id not in self.rows]
        self.rows.update({e.request_id: e for e in new})
        return len(new)

    def __getattr__(self, name: str) -> Any:  # the rest of LedgerStore is unused here
        raise AttributeError(name)


def _event(i: int) -> Message:
    ev = UsageEvent(request_id=f"req_{i}", ts=1.0, key_id="k", route="/v1/chat", model="m")
    return Message(ev.to_json())


async def _run_until(cond: Any, consumer: UsageConsumer) -> None:
    consumer.start()
    for _ in range(500):
        if cond():
            break
        await asyncio.sleep(0.01)
    await consumer.stop(grace=2.0)


async def test_acks_after_commit_and_skips_duplicates() -> None:
    first = [_event(i) for i in range(3)]
    again = [_event(1), _event(3)]  # a redelivery and a new one
    store = Store()
    consumer = UsageConsumer(Source([first, again]), store)  # type: ignore[arg-type]
    await _run_until(lambda: len(store.rows) == 4 and all(m.acked for m in again), consumer)
    assert sorted(store.rows) == ["req_0", "req_1", "req_2", "req_3"]
    assert all(m.acked for m in first + again)
    assert consumer.inserted == 4 and consumer.duplicates == 1


async def test_holds_the_batch_while_the_store_is_down() -> None:
    batch = [_event(i) for i in range(5)]
    store = Store()
    store.down = True
    consumer = UsageConsumer(Source([batch]), store, max_backoff=0.05)  # type: ignore[arg-type]
    consumer.start()
    for _ in range(200):
        if store.attempts >= 3:
            break
        await asyncio.sleep(0.01)
    assert not any(m.acked for m in batch)
    assert all(m.progress >= 1 for m in batch)  # redelivery timer kept fresh
    assert not consumer.healthy
    store.down = False
    for _ in range(200):
        if all(m.acked for m in batch):
            break
        await asyncio.sleep(0.01)
    await consumer.stop(grace=2.0)
    assert len(store.rows) == 5 and all(m.acked for m in batch) and consumer.healthy


async def test_malformed_events_are_terminated_not_retried() -> None:
    bad = Message(b"not json")
    good = _event(7)
    store = Store()
    consumer = UsageConsumer(Source([[bad, good]]), store)  # type: ignore[arg-type]
    await _run_until(lambda: good.acked, consumer)
    assert bad.termed and not bad.acked
    assert consumer.malformed == 1 and list(store.rows) == ["req_7"]


async def test_stop_while_store_down_leaves_batch_unacked() -> None:
    batch = [_event(i) for i in range(2)]
    store = Store()
    store.down = True
    consumer = UsageConsumer(Source([batch]), store, max_backoff=0.05)  # type: ignore[arg-type]
    consumer.start()
    for _ in range(100):
        if store.attempts >= 1:
            break
        await asyncio.sleep(0.01)
    await consumer.stop(grace=2.0)
    assert not any(m.acked for m in batch)  # JetStream will redeliver them
