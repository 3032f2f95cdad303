"""The auth service: keys and users, verification, lifecycle events, admin API."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tokgateway.auth import store
from tokgateway.common.contracts import KEY_CREATED_SUBJECT, KEY_REVOKED_SUBJECT, Bus, KeyInfo
from tokgateway.common.errors import BadRequest, GatewayError, NotFound
from tokgateway.common.http import AdminGuard, JSONResponse, error_response, read_json
from tokgateway.common.keys import hash_key, key_hint, new_id, new_key
from tokgateway.common.sqlite import SQLiteDB, transaction

log = logging.getLogger("tokgateway.auth")


class AuthService:
    def __init__(self, db: SQLiteDB, bus: Bus, *, admin_email: str) -> None:
        self.db = db
        self.bus = bus
        self.admin_email = admin_email
        self._admin_user = ""

    async def start(self, admin_key: str | None) -> str | None:
        """Migrate, make sure the admin exists. Returns a newly generated admin key
        (to be shown once) or None when one existed or was given."""
        await self.prepare()
        if admin_key:
            await self.db.run(
                lambda c: store.replace_admin_key(
                    c,
                    key_id=new_id("key"),
                    key_hash=hash_key(admin_key),
                    hint=key_hint(admin_key),
                    user_id=self._admin_user,
                )
            )
            return None
        if await self.db.run(store.has_admin_key):
            return None
        generated = new_key(admin=True)
        await self.db.run(
            lambda c: store.replace_admin_key(
                c,
                key_id=new_id("key"),
                key_hash=hash_key(generated),
                hint=key_hint(generated),
                user_id=self._admin_user,
            )
        )
        return generated

    async def prepare(self) -> None:
        """Schema and admin user, without touching keys (the CLI on a stopped gateway)."""
        await self.db.run(store.migrate)
        self._admin_user = await self.db.run(
            lambda c: store.ensure_user(c, new_id("usr"), self.admin_email, True)
        )

    async def close(self) -> None:
        await self.db.close()

    # -- the KeyVerifier protocol -------------------------------------------------
    async def verify(self, key_hash: str) -> KeyInfo | None:
        rec = await self.db.run(lambda c: store.by_hash(c, key_hash))
        return rec.info() if rec is not None else None

    # -- operations ---------------------------------------------------------------
    async def create_key(
        self,
        *,
        name: str,
        models: tuple[str, ...] = (),
        expires_days: float | None = None,
        rpm: int | None = None,
        user_email: str | None = None,
    ) -> tuple[store.KeyRecord, str]:
        secret = new_key()
        expires_at = time.time() + expires_days * 86400 if expires_days else None

        def op(conn: Any) -> store.KeyRecord:
            with transaction(conn):
                user_id = self._admin_user
                if user_email:
                    user_id = store.ensure_user(conn, new_id("usr"), user_email, False)
                return store.insert_key(
                    conn,
                    key_id=new_id("key"),
                    name=name,
                    key_hash=hash_key(secret),
                    hint=key_hint(secret),
                    user_id=user_id,
                    models=models,
                    rpm=rpm,
                    is_admin=False,
                    expires_at=expires_at,
                )

        rec = await self.db.run(op)
        event = {"v": 1, "key_id": rec.id, "name": rec.name, "user_id": rec.user_id}
        await self.bus.publish(KEY_CREATED_SUBJECT, orjson.dumps(event))
        return rec, secret

    async def list_keys(self) -> list[store.KeyRecord]:
        return await self.db.run(store.list_keys)

    async def revoke(self, key_id: str) -> store.KeyRecord:
        key_hash = await self.db.run(lambda c: store.hash_of(c, key_id))
        if key_hash is None:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        rec = await self.db.run(lambda c: store.revoke(c, key_id))
        assert rec is not None
        event = {"v": 1, "key_id": key_id, "key_hash": key_hash}
        await self.bus.publish(KEY_REVOKED_SUBJECT, orjson.dumps(event))
        log.info("key revoked", extra={"key_id": key_id})
        return rec


def parse_key_request(data: dict[str, Any]) -> dict[str, Any]:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' must be a non-empty string.", param="name")
    models = data.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise BadRequest("'models' must be a list of model names.", param="models")
    expires = data.get("expires_days")
    if expires is not None and (not isinstance(expires, int | float) or expires <= 0):
        raise BadRequest("'expires_days' must be a positive number.", param="expires_days")
    rpm = data.get("rpm")
    if rpm is not None and (not isinstance(rpm, int) or rpm <= 0):
        raise BadRequest("'rpm' must be a positive integer.", param="rpm")
    email = data.get("user_email")
    if email is not None and not isinstance(email, str):
        raise BadRequest("'user_email' must be a string.", param="user_email")
    return {
        "name": name.strip(),
        "models": tuple(m.strip() for m in models if m.strip()),
        "expires_days": expires,
        "rpm": rpm,
        "user_email": email,
    }


class AuthAdminAPI:
    """HTTP admin API for keys. Mounted under /admin by the all-in-one gateway."""

    def __init__(self, service: AuthService, guard: AdminGuard) -> None:
        self.service = service
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/admin/keys", self.list_keys, methods=["GET"]),
            Route("/admin/keys", self.create_key, methods=["POST"]),
            Route("/admin/keys/{key_id}", self.revoke_key, methods=["DELETE"]),
            Route("/admin/keys/{key_id}/revoke", self.revoke_key, methods=["POST"]),
        ]

    async def list_keys(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            keys = await self.service.list_keys()
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "data": [k.public() for k in keys]})

    async def create_key(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            params = parse_key_request(await read_json(request, 1 << 16))
            rec, secret = await self.service.create_key(**params)
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({**rec.public(), "key": secret}, status_code=201)

    async def revoke_key(self, request: Request) -> Response:
        try:
            await self.guard.check(request)
            rec = await self.service.revoke(request.path_params["key_id"])
        except GatewayError as err:
            return error_response(err)
        return JSONResponse(rec.public())
