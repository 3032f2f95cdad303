"""The auth service: keys and users, verification, lifecycle events, admin API."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.auth import store
from tokgateway.auth.stores import AuthStore, SQLiteAuthStore
from tokgateway.common.contracts import AuthEvent, Bus, KeyInfo
from tokgateway.common.crypto import token_matches
from tokgateway.common.errors import BadRequest, GatewayError, NotFound, Unauthenticated
from tokgateway.common.http import AdminGuard, JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token, hash_key, key_hint, new_key
from tokgateway.common.sqlite import SQLiteDB

log = logging.getLogger("tokgateway.auth")


class AuthService:
    """Keys and users over an ``AuthStore``: SQLite all-in-one (a ``SQLiteDB`` is
    wrapped), PostgreSQL in the mesh."""

    def __init__(self, db: SQLiteDB | AuthStore, bus: Bus, *, admin_email: str) -> None:
        self.store: AuthStore = SQLiteAuthStore(db) if isinstance(db, SQLiteDB) else db
        self.bus = bus
        self.admin_email = admin_email
        self._admin_user = ""

    async def start(self, admin_key: str | None) -> str | None:
        """Migrate, make sure the admin exists. Returns a newly generated admin key
        (to be shown once) or None when one existed or was given."""
        await self.prepare()
        if admin_key:
            await self.store.replace_admin_key(
                key_hash=hash_key(admin_key), hint=key_hint(admin_key), user_id=self._admin_user
            )
            return None
        if await self.store.has_admin_key():
            return None
        generated = new_key(admin=True)
        await self.store.replace_admin_key(
            key_hash=hash_key(generated), hint=key_hint(generated), user_id=self._admin_user
        )
        return generated

    async def prepare(self) -> None:
        """Schema and admin user, without touching keys (the CLI on a stopped gateway)."""
        await self.store.migrate()
        self._admin_user = await self.store.ensure_user(self.admin_email, True)

    async def close(self) -> None:
        await self.store.close()

    async def publish_revocations_since(self, since: float) -> float:
        """Announce keys revoked after ``since`` (by another process sharing the
        store) on the bus; returns the newest revocation time seen."""
        newest = since
        for key_id, at in await self.store.revoked_since(since):
            event = AuthEvent(type="key.revoked", data={"id": key_id}, actor="system")
            await self.bus.publish(event.subject, event.to_json())
            newest = max(newest, at)
        return newest

    async def emit(self, type_: str, data: dict[str, Any], actor: str | None = None) -> AuthEvent:
        """Announce a lifecycle event on the bus (``auth.v1.<type>``)."""
        event = AuthEvent(type=type_, data=data, actor=actor)
        await self.bus.publish(event.subject, event.to_json())
        return event

    # -- the KeyVerifier protocol -------------------------------------------------
    async def verify(self, key_hash: str) -> KeyInfo | None:
        rec = await self.store.by_hash(key_hash)
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
        rec = await self.store.create_key(
            name=name,
            key_hash=hash_key(secret),
            hint=key_hint(secret),
            user_id=self._admin_user,
            user_email=user_email,
            models=models,
            rpm=rpm,
            expires_at=expires_at,
        )
        await self.emit("key.created", rec.public())
        return rec, secret

    async def list_keys(self) -> list[store.KeyRecord]:
        return await self.store.list_keys()

    async def revoke(self, key_id: str) -> store.KeyRecord:
        rec = await self.store.revoke(key_id)
        if rec is None:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        await self.emit("key.revoked", rec.public())
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


class AuthInternalAPI:
    """What other mesh services call: key verification by hash. Guarded by the
    service token derived from GATEWAY_SECRET_KEY."""

    def __init__(self, service: AuthService, service_token: str) -> None:
        self.service = service
        self.token = service_token

    def routes(self) -> list[Route]:
        return [Route("/internal/verify", self.verify, methods=["POST"])]

    async def verify(self, request: Request) -> Response:
        try:
            given = bearer_token(request.headers.get("authorization"), None)
            if not token_matches(given, self.token):
                raise Unauthenticated("Missing or wrong service token.")
            data = await read_json(request, 4096)
            key_hash = data.get("key_hash")
            if not isinstance(key_hash, str) or len(key_hash) != 64:
                raise BadRequest("'key_hash' must be a SHA-256 hex digest.", param="key_hash")
            info = await self.service.verify(key_hash)
        except GatewayError as err:
            return error_response(err)
        if info is None:
            return JSONResponse({"error": {"message": "no such key"}}, status_code=404)
        return JSONResponse(info.to_dict())
