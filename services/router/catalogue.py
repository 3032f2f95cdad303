"""The model list behind ``GET /v1/models``.

Route patterns such as ``llama3*`` are not models, so the list asks each
OpenAI-format upstream what it serves (``GET /models``) and shows every
reported id the route table sends back to that same provider, besides the
exact route names and the aliases. Reports are cached per provider for
``ttl`` seconds; a stale one is still served while a refresh runs in the
background, so only the first listing after start waits for an upstream (at
most ``timeout``). An upstream that fails to answer contributes nothing and
is asked again after ``retry`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokgateway.common.errors import GatewayError, NotFound
from tokgateway.common.routing import RouteTable
from tokgateway.router.providers import Provider

log = logging.getLogger("tokgateway.router")

# Neither API says when a routed model was made: both get the same fixed date.
EPOCH = 1_700_000_000
EPOCH_RFC3339 = "2023-11-14T22:13:20Z"


def openai_model(model_id: str, owner: str) -> dict[str, Any]:
    """One entry of ``GET /v1/models`` in OpenAI's shape."""
    return {"id": model_id, "object": "model", "created": EPOCH, "owned_by": owner}


def anthropic_model(model_id: str) -> dict[str, Any]:
    """One ``ModelInfo`` in Anthropic's shape. The SDKs add required fields in
    minor releases (``lifecycle`` since 2.15): what the gateway routes is
    ``active``, and the optional fields it cannot know are null."""
    return {
        "id": model_id,
        "type": "model",
        "display_name": model_id,
        "created_at": EPOCH_RFC3339,
        "lifecycle": "active",
        "deprecated_at": None,
        "retires_at": None,
        "capabilities": None,
        "max_input_tokens": None,
        "max_tokens": None,
    }


LISTING_KINDS = frozenset({"openai", "openai-compatible"})
MAX_REPORTED = 5000  # ids kept per provider: a listing is for people and SDKs


@dataclass(frozen=True, slots=True)
class _Report:
    ids: tuple[str, ...]
    fetched: float
    ok: bool


class ModelCatalogue:
    def __init__(self, *, ttl: float = 300.0, retry: float = 30.0, timeout: float = 5.0) -> None:
        self.ttl = ttl
        self.retry = retry
        self.timeout = timeout
        self._reports: dict[tuple[str, str], _Report] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}

    @staticmethod
    def _key(provider: Provider) -> tuple[str, str]:
        return (provider.name, provider.config.base_url)

    async def _fetch(self, provider: Provider) -> None:
        key = self._key(provider)
        try:
            async with asyncio.timeout(self.timeout):
                ids = await provider.list_upstream_models()
            self._reports[key] = _Report(tuple(ids[:MAX_REPORTED]), time.monotonic(), True)
        except (GatewayError, TimeoutError) as exc:
            log.warning("model list of provider %s unavailable: %s", provider.name, exc)
            old = self._reports.get(key)
            self._reports[key] = _Report(old.ids if old else (), time.monotonic(), False)
        finally:
            self._refreshing.pop(key, None)

    def _fresh(self, report: _Report) -> bool:
        return time.monotonic() - report.fetched < (self.ttl if report.ok else self.retry)

    async def reported(self, providers: Mapping[str, Provider]) -> dict[str, tuple[str, ...]]:
        """Provider name -> the ids it reported, from the cache where there is one."""
        first: list[asyncio.Task[None]] = []
        for provider in providers.values():
            if provider.kind not in LISTING_KINDS:
                continue
            key = self._key(provider)
            report = self._reports.get(key)
            if report is not None and self._fresh(report):
                continue
            task = self._refreshing.get(key)
            if task is None:
                task = asyncio.create_task(self._fetch(provider), name=f"models-{provider.name}")
                self._refreshing[key] = task
            if report is None:
                first.append(task)
        if first:
            await asyncio.gather(*first)
        out: dict[str, tuple[str, ...]] = {}
        for provider in providers.values():
            report = self._reports.get(self._key(provider))
            if report is not None:
                out[provider.name] = report.ids
        return out

    async def listed(
        self, table: RouteTable, providers: Mapping[str, Provider]
    ) -> list[tuple[str, str]]:
        """(model id, owner): the table's exact names and aliases, plus every
        reported id that resolves to the provider reporting it."""
        seen = dict(table.listed_models())
        for name, ids in (await self.reported(providers)).items():
            for model in ids:
                if model in seen:
                    continue
                try:
                    res = table.resolve(model)
                except NotFound:
                    continue
                if res.deployments[0].provider.name == name:
                    seen[model] = name
        return sorted(seen.items())

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._refreshing.clear()
