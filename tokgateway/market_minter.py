"""Keys for marketplace subscribers, scoped to the listing's models, with the
rpm and budget the operator set for subscribers. The auth service mints them:
in the same process all-in-one (``AuthMinter``), over its internal API in the
mesh (``HttpMinter``: the registry already calls auth over HTTP with the
service token, the way routers verify keys)."""

from __future__ import annotations

from tokgateway.auth.service import AuthService
from tokgateway.common.clients import ServiceClient, ServiceUnavailable
from tokgateway.common.contracts import Limits
from tokgateway.common.errors import NotFound


class AuthMinter:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    async def mint(
        self, *, name: str, models: tuple[str, ...], rpm: int | None, budget_usd: float | None
    ) -> tuple[str, str]:
        rec, secret = await self.auth.create_key(
            name=name, models=models, limits=Limits(rpm=rpm, budget_usd=budget_usd)
        )
        return rec.id, secret

    async def revoke(self, key_id: str) -> None:
        await self.auth.revoke(key_id)


class HttpMinter:
    """``KeyMinter`` over the auth service's ``/internal/keys`` endpoints."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def mint(
        self, *, name: str, models: tuple[str, ...], rpm: int | None, budget_usd: float | None
    ) -> tuple[str, str]:
        body = {
            "name": name,
            "models": list(models),
            "limits": Limits(rpm=rpm, budget_usd=budget_usd).to_dict(),
        }
        resp = await self.client.request("POST", "/internal/keys", json=body)
        if resp.status_code != 201:
            raise ServiceUnavailable("auth", f"key mint answered HTTP {resp.status_code}")
        data = resp.json()
        return str(data["id"]), str(data["key"])

    async def revoke(self, key_id: str) -> None:
        resp = await self.client.request("POST", f"/internal/keys/{key_id}/revoke")
        if resp.status_code == 404:
            raise NotFound(f"No key {key_id!r} at the auth service.", code="key_not_found")
        if resp.status_code != 200:
            raise ServiceUnavailable("auth", f"key revoke answered HTTP {resp.status_code}")
