"""The routing snapshot: the route table and the providers built from it, one
immutable pair swapped whole. A request takes the current snapshot once and
keeps it to the end (a registry change in between cannot give it a table
naming a provider it does not have); a replaced snapshot closes its providers
once the last request holding it has finished."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from tokgateway.common.routing import RouteTable

if TYPE_CHECKING:
    from tokgateway.router.providers import Provider

log = logging.getLogger("tokgateway.router")


@dataclass(eq=False, slots=True)
class RoutingSnapshot:
    table: RouteTable
    providers: Mapping[str, Provider]
    inflight: int = 0
    retired: bool = False
    closed: bool = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:  # one provider failing to close must not keep the others open
                log.exception("closing a replaced provider failed")


@dataclass(eq=False)
class Snapshots:
    """The current snapshot and the retired ones still in use."""

    current: RoutingSnapshot
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def of(cls, table: RouteTable, providers: Mapping[str, Provider] | None = None) -> Snapshots:
        return cls(RoutingSnapshot(table, MappingProxyType(dict(providers or {}))))

    def acquire(self) -> RoutingSnapshot:
        snap = self.current
        snap.inflight += 1
        return snap

    def release(self, snap: RoutingSnapshot) -> None:
        snap.inflight -= 1
        if snap.retired and snap.inflight == 0:
            self._close_later(snap)

    def swap(self, table: RouteTable, providers: Mapping[str, Provider]) -> RoutingSnapshot:
        old = self.current
        self.current = RoutingSnapshot(table, MappingProxyType(dict(providers)))
        old.retired = True
        if old.inflight == 0:
            self._close_later(old)
        return old

    def _close_later(self, snap: RoutingSnapshot) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # swapped outside the loop (startup): nothing is in flight
            return
        task = loop.create_task(snap.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        await self.current.close()
