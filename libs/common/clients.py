"""HTTP clients the mesh services use to reach each other. They implement the
contracts the router depends on (``KeyVerifier``, a route source), carry the
trace context and the service token, and turn transport trouble into one
exception type at this boundary."""

from __future__ import annotations

from typing import Any

import httpx

from tokgateway.common.contracts import KeyInfo
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.pricing import Price, PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import ProviderConfig, RouteRule, RouteTarget
from tokgateway.common.tracing import inject


class ServiceUnavailable(Exception):
    """Another mesh service did not answer, or answered with a server error."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service} unavailable: {detail}")
        self.service = service
        self.detail = detail


class ServiceClient:
    """One pooled HTTP/1.1 client per peer service."""

    def __init__(self, service: str, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = inject(kw.pop("headers", None))
        try:
            resp = await self._client.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(self.service, f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise ServiceUnavailable(self.service, f"HTTP {resp.status_code}")
        return resp

    async def healthy(self) -> bool:
        try:
            resp = await self.request("GET", "/healthz")
        except ServiceUnavailable:
            return False
        return resp.status_code == 200

    async def close(self) -> None:
        await self._client.aclose()


class HttpKeyVerifier:
    """``KeyVerifier`` over the auth service's internal verify endpoint."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def verify(self, key_hash: str) -> KeyInfo | None:
        resp = await self.client.request("POST", "/internal/verify", json={"key_hash": key_hash})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ServiceUnavailable("auth", f"verify answered HTTP {resp.status_code}")
        return KeyInfo.from_dict(resp.json())


class HttpSpendSource:
    """``SpendSource`` over the ledger service's internal spend endpoints."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        resp = await self.client.request("POST", path, json=body)
        if resp.status_code != 200:
            raise ServiceUnavailable("ledger", f"{path} answered HTTP {resp.status_code}")
        return resp.json()

    async def spend_since(self, kind: str, id: str, since: float) -> float:
        data = await self._post("/internal/spend", {"kind": kind, "id": id, "since": since})
        return float(data["spend_usd"])

    async def spend_by_scope(
        self, since_by_period: dict[str, float]
    ) -> dict[tuple[str, str, str], float]:
        data = await self._post("/internal/spend_by_scope", {"since_by_period": since_by_period})
        return {
            (str(r["kind"]), str(r["id"]), str(r["period"])): float(r["spend_usd"])
            for r in data["data"]
        }


class RegistryClient:
    """Fetches the route snapshot; credentials arrive sealed and are opened here,
    in the router's memory only."""

    def __init__(self, client: ServiceClient, box: CredentialBox) -> None:
        self.client = client
        self.box = box
        self.version: int | None = None

    async def snapshot(self) -> RouteTable:
        resp = await self.client.request("GET", "/internal/snapshot")
        if resp.status_code != 200:
            raise ServiceUnavailable("registry", f"snapshot answered HTTP {resp.status_code}")
        data = resp.json()
        self.version = data.get("version")
        return table_from_snapshot(data, self.box)


def table_from_snapshot(data: dict[str, Any], box: CredentialBox) -> RouteTable:
    providers = {
        p["name"]: ProviderConfig(
            name=p["name"],
            kind=p["kind"],
            base_url=p.get("base_url") or "",
            api_key=box.open(p.get("api_key_sealed") or ""),
            timeout=p.get("timeout"),
            anthropic_version=p.get("anthropic_version") or "2023-06-01",
            api_version=p.get("api_version") or "",
        )
        for p in data.get("providers", [])
    }
    rules = [
        RouteRule(
            r["pattern"],
            tuple(RouteTarget(t["provider"], t.get("upstream_model")) for t in r["targets"]),
        )
        for r in data.get("routes", [])
    ]
    prices = {
        name: Price(p["input"], p["output"], p.get("cached"), p.get("cache_write"))
        for name, p in (data.get("prices") or {}).items()
    }
    scoped = {
        (s["provider"], s["model"]): Price(
            s["input"], s["output"], s.get("cached"), s.get("cache_write")
        )
        for s in data.get("provider_prices") or ()
    }
    return RouteTable(
        rules=rules,
        aliases=dict(data.get("aliases") or {}),
        providers=providers,
        primary=data.get("primary_provider"),
        prices=PriceTable(prices, data.get("price_overrides") or (), scoped),
        strategies={
            pattern: (s["strategy"], dict(s.get("weights") or {}))
            for pattern, s in (data.get("strategies") or {}).items()
        },
    )
