"""Keys for marketplace subscribers, minted by the auth service in the same
process (all-in-one): scoped to the listing's models, with the rpm and budget
the operator set for subscribers."""

from __future__ import annotations

from tokgateway.auth.service import AuthService
from tokgateway.common.contracts import Limits


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
