"""Where users, teams and keys live: the ``AuthStore`` protocol, and its SQLite
implementation (all-in-one). The PostgreSQL one (mesh) is in store_pg.py.

Both raise ``BadRequest`` for a taken email or team name, a missing owner or a
team the owner is not a member of, and return None for an unknown id."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from tokgateway.auth import store
from tokgateway.auth.store import KeyRecord, TeamRecord, UserRecord
from tokgateway.common.contracts import KeyInfo, Limits
from tokgateway.common.errors import BadRequest
from tokgateway.common.keys import new_id
from tokgateway.common.sqlite import SQLiteDB, transaction


class AuthStore(Protocol):
    async def migrate(self) -> None: ...

    async def ensure_user(self, email: str, is_admin: bool) -> str:
        """The id of the user with this email, created when missing."""

    # users
    async def create_user(self, *, email: str, role: str, limits: Limits) -> UserRecord: ...
    async def get_user(self, user_id: str) -> UserRecord | None: ...
    async def list_users(self) -> list[UserRecord]: ...
    async def update_user(self, user_id: str, changes: dict[str, Any]) -> UserRecord | None:
        """Set the given columns (role, status, rpm, tpm, budget_usd, budget_period)."""

    async def delete_user(self, user_id: str) -> tuple[UserRecord, list[KeyRecord]] | None:
        """Remove the user; revoke its keys (returned)."""

    # teams
    async def create_team(self, *, name: str, limits: Limits) -> TeamRecord: ...
    async def get_team(self, team_id: str) -> TeamRecord | None: ...
    async def list_teams(self) -> list[TeamRecord]: ...
    async def update_team(self, team_id: str, changes: dict[str, Any]) -> TeamRecord | None: ...
    async def delete_team(self, team_id: str) -> tuple[TeamRecord, list[KeyRecord]] | None:
        """Remove the team; its keys (returned) stay with their users, teamless."""

    async def add_member(self, team_id: str, user_id: str) -> bool:
        """True when added, False when already a member."""

    async def remove_member(self, team_id: str, user_id: str) -> tuple[bool, list[KeyRecord]]:
        """(was a member, the user's keys that left the team with it)."""

    # keys
    async def create_key(
        self,
        *,
        name: str,
        key_hash: str,
        hint: str,
        user_id: str,
        user_email: str | None,
        team_id: str | None = None,
        models: tuple[str, ...],
        limits: Limits | None = None,
        expires_at: float | None,
    ) -> KeyRecord:
        """Insert a key owned by ``user_email`` (created if new) or ``user_id``,
        in ``team_id`` (the owner must be a member)."""

    async def replace_admin_key(self, *, key_hash: str, hint: str, user_id: str) -> None: ...
    async def has_admin_key(self) -> bool: ...

    async def verify(self, key_hash: str) -> KeyInfo | None:
        """The key with its user's role and status and the key, user and team
        limits, in one query."""

    async def by_hash(self, key_hash: str) -> KeyRecord | None: ...
    async def by_id(self, key_id: str) -> KeyRecord | None: ...
    async def hash_of(self, key_id: str) -> str | None: ...
    async def list_keys(self, user_id: str | None = None) -> list[KeyRecord]: ...
    async def update_key(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        """Set the given columns (name, models, rpm, tpm, budget_usd, budget_period)."""

    async def rotate_key(self, key_id: str, key_hash: str, hint: str) -> KeyRecord | None:
        """Replace a live key's hash; None when no live non-admin key has this id."""

    async def revoke(self, key_id: str) -> KeyRecord | None: ...

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        """(key id, revoked at) of keys revoked after ``since``, oldest first."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def owner_missing(user_id: str) -> BadRequest:
    return BadRequest(f"No user with id {user_id!r}.", param="user_id", code="user_not_found")


def not_a_member(team_id: str, user_id: str) -> BadRequest:
    return BadRequest(
        f"User {user_id!r} is not a member of team {team_id!r}; add it to the team first.",
        param="team_id",
        code="not_a_team_member",
    )


class SQLiteAuthStore:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.run(store.migrate)

    async def ensure_user(self, email: str, is_admin: bool) -> str:
        return await self.db.run(lambda c: store.ensure_user(c, new_id("usr"), email, is_admin))

    async def create_user(self, *, email: str, role: str, limits: Limits) -> UserRecord:
        uid = new_id("usr")
        return await self.db.run(
            lambda c: store.create_user(c, user_id=uid, email=email, role=role, limits=limits)
        )

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self.db.run(lambda c: store.get_user(c, user_id))

    async def list_users(self) -> list[UserRecord]:
        return await self.db.run(store.list_users)

    async def update_user(self, user_id: str, changes: dict[str, Any]) -> UserRecord | None:
        return await self.db.run(lambda c: store.update_user(c, user_id, changes))

    async def delete_user(self, user_id: str) -> tuple[UserRecord, list[KeyRecord]] | None:
        return await self.db.run(lambda c: store.delete_user(c, user_id))

    async def create_team(self, *, name: str, limits: Limits) -> TeamRecord:
        tid = new_id("team")
        return await self.db.run(
            lambda c: store.create_team(c, team_id=tid, name=name, limits=limits)
        )

    async def get_team(self, team_id: str) -> TeamRecord | None:
        return await self.db.run(lambda c: store.get_team(c, team_id))

    async def list_teams(self) -> list[TeamRecord]:
        return await self.db.run(store.list_teams)

    async def update_team(self, team_id: str, changes: dict[str, Any]) -> TeamRecord | None:
        return await self.db.run(lambda c: store.update_team(c, team_id, changes))

    async def delete_team(self, team_id: str) -> tuple[TeamRecord, list[KeyRecord]] | None:
        return await self.db.run(lambda c: store.delete_team(c, team_id))

    async def add_member(self, team_id: str, user_id: str) -> bool:
        return await self.db.run(lambda c: store.add_member(c, team_id, user_id))

    async def remove_member(self, team_id: str, user_id: str) -> tuple[bool, list[KeyRecord]]:
        return await self.db.run(lambda c: store.remove_member(c, team_id, user_id))

    async def create_key(
        self,
        *,
        name: str,
        key_hash: str,
        hint: str,
        user_id: str,
        user_email: str | None,
        team_id: str | None = None,
        models: tuple[str, ...],
        limits: Limits | None = None,
        expires_at: float | None,
    ) -> KeyRecord:
        def op(conn: sqlite3.Connection) -> KeyRecord:
            with transaction(conn):
                owner = user_id
                if user_email:
                    owner = store.ensure_user(conn, new_id("usr"), user_email, False)
                elif store.get_user(conn, owner) is None:
                    raise owner_missing(owner)
                if team_id is not None and not store.is_member(conn, team_id, owner):
                    raise not_a_member(team_id, owner)
                return store.insert_key(
                    conn,
                    key_id=new_id("key"),
                    name=name,
                    key_hash=key_hash,
                    hint=hint,
                    user_id=owner,
                    team_id=team_id,
                    models=models,
                    limits=limits,
                    is_admin=False,
                    expires_at=expires_at,
                )

        return await self.db.run(op)

    async def replace_admin_key(self, *, key_hash: str, hint: str, user_id: str) -> None:
        await self.db.run(
            lambda c: store.replace_admin_key(
                c, key_id=new_id("key"), key_hash=key_hash, hint=hint, user_id=user_id
            )
        )

    async def has_admin_key(self) -> bool:
        return await self.db.run(store.has_admin_key)

    async def verify(self, key_hash: str) -> KeyInfo | None:
        return await self.db.run(lambda c: store.verify(c, key_hash))

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self.db.run(lambda c: store.by_hash(c, key_hash))

    async def by_id(self, key_id: str) -> KeyRecord | None:
        return await self.db.run(lambda c: store.by_id(c, key_id))

    async def hash_of(self, key_id: str) -> str | None:
        return await self.db.run(lambda c: store.hash_of(c, key_id))

    async def list_keys(self, user_id: str | None = None) -> list[KeyRecord]:
        return await self.db.run(lambda c: store.list_keys(c, user_id))

    async def update_key(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        return await self.db.run(lambda c: store.update_key(c, key_id, changes))

    async def rotate_key(self, key_id: str, key_hash: str, hint: str) -> KeyRecord | None:
        return await self.db.run(lambda c: store.rotate_key(c, key_id, key_hash, hint))

    async def revoke(self, key_id: str) -> KeyRecord | None:
        return await self.db.run(lambda c: store.revoke(c, key_id))

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        return await self.db.run(lambda c: store.revoked_since(c, since))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        await self.db.close()
