"""The auth service: users, teams and keys, verification, lifecycle events.
The admin HTTP API is in admin_api.py; the internal verify endpoint is here."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.auth.outbox import Outbox, outbox_for
from tokgateway.auth.store import KeyRecord, TeamRecord, UserRecord
from tokgateway.auth.stores import AuthStore, SQLiteAuthStore
from tokgateway.auth.validate import parse_key_request
from tokgateway.common.contracts import AuthEvent, Bus, KeyInfo, Limits
from tokgateway.common.crypto import token_matches
from tokgateway.common.errors import BadRequest, GatewayError, NotFound, Unauthenticated
from tokgateway.common.http import JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token, hash_key, key_hint, new_key
from tokgateway.common.sqlite import SQLiteDB

log = logging.getLogger("tokgateway.auth")

__all__ = ["AuthInternalAPI", "AuthService", "parse_key_request"]


class AuthService:
    """Keys and users over an ``AuthStore``: SQLite all-in-one (a ``SQLiteDB`` is
    wrapped), PostgreSQL in the mesh."""

    def __init__(
        self,
        db: SQLiteDB | AuthStore,
        bus: Bus,
        *,
        admin_email: str,
        outbox: Outbox | None = None,
    ) -> None:
        self.store: AuthStore = SQLiteAuthStore(db) if isinstance(db, SQLiteDB) else db
        self.bus = bus
        self.admin_email = admin_email
        self._admin_user = ""
        # Every event is written here first (see outbox.py); None only for
        # stores without a database (tests with an in-memory store).
        self.outbox: Outbox | None = outbox if outbox is not None else outbox_for(self.store)
        # Names this process's rows in the outbox, so its poll skips them.
        self.origin = "p_" + secrets.token_hex(6)
        # Set in the mesh: a relay publishes stored events to JetStream.
        self.relay_wake: Callable[[], None] | None = None

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
        if self.outbox is not None:
            await self.outbox.migrate()
        self._admin_user = await self.store.ensure_user(self.admin_email, True)

    async def close(self) -> None:
        await self.store.close()

    async def emit(self, type_: str, data: dict[str, Any], actor: str | None = None) -> AuthEvent:
        """Announce a lifecycle event: stored in the outbox first (a restart
        loses nothing; other workers and the hook deliverer read it there),
        then published on ``auth.v1.<type>``: directly on this process's bus,
        or, in the mesh, by the relay that publishes stored events to
        JetStream. The admin call that caused it waits for neither hooks nor
        NATS."""
        event = AuthEvent(type=type_, data=data, actor=actor)
        stored = False
        if self.outbox is not None:
            try:
                await self.outbox.append(event, self.origin)
                stored = True
            except Exception:  # the change itself is committed; still announce it
                log.exception("event not stored in the outbox", extra={"event_id": event.id})
        if stored and self.relay_wake is not None:
            self.relay_wake()
        else:
            await self.bus.publish(event.subject, event.to_json())
        return event

    async def republish_foreign(self, after: int) -> int:
        """Publish on this process's bus the events other processes (workers of
        the same gateway, a CLI on the same file) stored after sequence number
        ``after``; returns the newest sequence number seen."""
        if self.outbox is None:
            return after
        newest = after
        while True:
            rows = await self.outbox.since(newest)
            for row in rows:
                if row.origin != self.origin:
                    await self.bus.publish(row.event.subject, row.body)
            if not rows:
                return newest
            newest = rows[-1].seq

    async def sweep_expired(self, now: float | None = None) -> int:
        """Emit ``key.expired`` once for each key whose expiry has passed (no
        request or admin call marks that moment, so a periodic sweep does)."""
        if self.outbox is None:
            return 0
        now = time.time() if now is None else now
        due = [
            k
            for k in await self.store.list_keys()
            if k.expires_at is not None and k.expires_at <= now and k.revoked_at is None
        ]
        fresh = set(await self.outbox.claim_expired([k.id for k in due]))
        for rec in due:
            if rec.id in fresh:
                await self.emit("key.expired", rec.public(), "system")
        return len(fresh)

    # -- the KeyVerifier protocol -------------------------------------------------
    async def verify(self, key_hash: str) -> KeyInfo | None:
        return await self.store.verify(key_hash)

    # -- keys ---------------------------------------------------------------------
    async def create_key(
        self,
        *,
        name: str,
        models: tuple[str, ...] = (),
        expires_days: float | None = None,
        rpm: int | None = None,
        user_email: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        limits: Limits | None = None,
        actor: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """A key of ``user_id`` (or of the user with ``user_email``, made when
        new; the admin user by default), optionally in one of its teams."""
        if limits is None:
            limits = Limits(rpm=rpm)
        secret = new_key()
        expires_at = time.time() + expires_days * 86400 if expires_days else None
        rec = await self.store.create_key(
            name=name,
            key_hash=hash_key(secret),
            hint=key_hint(secret),
            user_id=user_id or self._admin_user,
            user_email=user_email,
            team_id=team_id,
            models=models,
            limits=limits,
            expires_at=expires_at,
        )
        await self.emit("key.created", rec.public(), actor)
        return rec, secret

    async def list_keys(self, user_id: str | None = None) -> list[KeyRecord]:
        return await self.store.list_keys(user_id)

    async def get_key(self, key_id: str) -> KeyRecord:
        rec = await self.store.by_id(key_id)
        if rec is None:
            raise _no_key(key_id)
        return rec

    async def update_key(
        self, key_id: str, changes: dict[str, Any], actor: str | None = None
    ) -> KeyRecord:
        rec = await self.store.update_key(key_id, changes)
        if rec is None:
            raise _no_key(key_id)
        await self.emit("key.updated", rec.public(), actor)
        return rec

    async def rotate_key(self, key_id: str, actor: str | None = None) -> tuple[KeyRecord, str]:
        """A new secret for the key (shown once); the old one stops working at once."""
        old = await self.get_key(key_id)
        if old.is_admin:
            raise BadRequest(
                "The admin key is replaced by setting GATEWAY_ADMIN_KEY and restarting.",
                code="admin_key",
            )
        secret = new_key()
        rec = await self.store.rotate_key(key_id, hash_key(secret), key_hint(secret))
        if rec is None:
            raise BadRequest(f"Key {key_id!r} is revoked; create a new one.", code="key_revoked")
        await self.emit("key.rotated", rec.public(), actor)
        return rec, secret

    async def revoke(self, key_id: str, actor: str | None = None) -> KeyRecord:
        rec = await self.store.revoke(key_id)
        if rec is None:
            raise _no_key(key_id)
        await self.emit("key.revoked", rec.public(), actor)
        log.info("key revoked", extra={"key_id": key_id})
        return rec

    # -- users --------------------------------------------------------------------
    async def create_user(
        self,
        *,
        email: str,
        role: str = "member",
        limits: Limits | None = None,
        actor: str | None = None,
    ) -> UserRecord:
        rec = await self.store.create_user(email=email, role=role, limits=limits or Limits())
        await self.emit("user.created", rec.public(), actor)
        return rec

    async def list_users(self) -> list[UserRecord]:
        return await self.store.list_users()

    async def get_user(self, user_id: str) -> UserRecord:
        rec = await self.store.get_user(user_id)
        if rec is None:
            raise _no_user(user_id)
        return rec

    async def update_user(
        self, user_id: str, changes: dict[str, Any], actor: str | None = None
    ) -> UserRecord:
        """Change role, status or limits. ``status: disabled`` announces
        ``user.disabled`` (its keys are refused from then on)."""
        before = await self.get_user(user_id)
        if before.is_admin and ("role" in changes or changes.get("status") == "disabled"):
            raise BadRequest(
                "The admin user keeps its role and cannot be disabled.", code="admin_user"
            )
        rec = await self.store.update_user(user_id, changes)
        if rec is None:
            raise _no_user(user_id)
        disabled = changes.get("status") == "disabled" and before.status != "disabled"
        await self.emit("user.disabled" if disabled else "user.updated", rec.public(), actor)
        return rec

    async def disable_user(self, user_id: str, actor: str | None = None) -> UserRecord:
        return await self.update_user(user_id, {"status": "disabled"}, actor)

    async def delete_user(self, user_id: str, actor: str | None = None) -> UserRecord:
        """Remove the user and its memberships; its keys are revoked first."""
        if (await self.get_user(user_id)).is_admin:
            raise BadRequest("The admin user cannot be deleted.", code="admin_user")
        done = await self.store.delete_user(user_id)
        if done is None:
            raise _no_user(user_id)
        user, keys = done
        for key in keys:
            await self.emit("key.revoked", key.public(), actor)
        await self.emit("user.deleted", user.public(), actor)
        return user

    # -- teams --------------------------------------------------------------------
    async def create_team(
        self, *, name: str, limits: Limits | None = None, actor: str | None = None
    ) -> TeamRecord:
        rec = await self.store.create_team(name=name, limits=limits or Limits())
        await self.emit("team.created", rec.public(), actor)
        return rec

    async def list_teams(self) -> list[TeamRecord]:
        return await self.store.list_teams()

    async def get_team(self, team_id: str) -> TeamRecord:
        rec = await self.store.get_team(team_id)
        if rec is None:
            raise _no_team(team_id)
        return rec

    async def update_team(
        self, team_id: str, changes: dict[str, Any], actor: str | None = None
    ) -> TeamRecord:
        rec = await self.store.update_team(team_id, changes)
        if rec is None:
            raise _no_team(team_id)
        await self.emit("team.updated", rec.public(), actor)
        return rec

    async def delete_team(self, team_id: str, actor: str | None = None) -> TeamRecord:
        done = await self.store.delete_team(team_id)
        if done is None:
            raise _no_team(team_id)
        team, keys = done
        for key in keys:
            await self.emit("key.updated", key.public(), actor)
        await self.emit("team.deleted", team.public(), actor)
        return team

    async def add_member(self, team_id: str, user_id: str, actor: str | None = None) -> TeamRecord:
        await self.get_team(team_id)
        await self.get_user(user_id)
        if await self.store.add_member(team_id, user_id):
            await self.emit("team.member_added", {"team_id": team_id, "user_id": user_id}, actor)
        return await self.get_team(team_id)

    async def remove_member(
        self, team_id: str, user_id: str, actor: str | None = None
    ) -> TeamRecord:
        """The user leaves the team, and so do its keys in that team."""
        await self.get_team(team_id)
        was_member, keys = await self.store.remove_member(team_id, user_id)
        if not was_member:
            raise NotFound(
                f"User {user_id!r} is not a member of team {team_id!r}.", code="member_not_found"
            )
        for key in keys:
            await self.emit("key.updated", key.public(), actor)
        await self.emit("team.member_removed", {"team_id": team_id, "user_id": user_id}, actor)
        return await self.get_team(team_id)


def _no_key(key_id: str) -> NotFound:
    return NotFound(f"No key with id {key_id!r}.", code="key_not_found")


def _no_user(user_id: str) -> NotFound:
    return NotFound(f"No user with id {user_id!r}.", code="user_not_found")


def _no_team(team_id: str) -> NotFound:
    return NotFound(f"No team with id {team_id!r}.", code="team_not_found")


class AuthInternalAPI:
    """What other mesh services call: key verification by hash, and the keys
    the registry's marketplace mints for its subscribers (scoped to a
    listing's models) and revokes when the listing goes. Guarded by the
    service token derived from GATEWAY_SECRET_KEY."""

    def __init__(self, service: AuthService, service_token: str) -> None:
        self.service = service
        self.token = service_token

    def routes(self) -> list[Route]:
        return [
            Route("/internal/verify", self.verify, methods=["POST"]),
            Route("/internal/keys", self.mint, methods=["POST"]),
            Route("/internal/keys/{key_id}/revoke", self.revoke, methods=["POST"]),
        ]

    def _admit(self, request: Request) -> None:
        given = bearer_token(request.headers.get("authorization"), None)
        if not token_matches(given, self.token):
            raise Unauthenticated("Missing or wrong service token.")

    async def mint(self, request: Request) -> Response:
        try:
            self._admit(request)
            data = await read_json(request, 16384)
            name, models = data.get("name"), data.get("models")
            if not isinstance(name, str) or not name:
                raise BadRequest("'name' must be a non-empty string.", param="name")
            if not isinstance(models, list) or not models:
                raise BadRequest("'models' must be a non-empty list.", param="models")
            if not all(isinstance(m, str) and m for m in models):
                raise BadRequest("'models' must hold model names.", param="models")
            limits = data.get("limits")
            if limits is not None and not isinstance(limits, dict):
                raise BadRequest("'limits' must be an object.", param="limits")
            rec, secret = await self.service.create_key(
                name=name[:120], models=tuple(models), limits=Limits.from_dict(limits)
            )
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"id": rec.id, "key": secret}, status_code=201)

    async def revoke(self, request: Request) -> Response:
        try:
            self._admit(request)
            rec = await self.service.revoke(request.path_params["key_id"])
        except GatewayError as err:
            return error_response(err)
        return JSONResponse(rec.public())

    async def verify(self, request: Request) -> Response:
        try:
            self._admit(request)
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
