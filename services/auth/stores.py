"""Where keys and users live: the ``AuthStore`` protocol, and its SQLite
implementation (all-in-one). The PostgreSQL one (mesh) is in store_pg.py."""

from __future__ import annotations

import sqlite3
from typing import Protocol

from tokgateway.auth import store
from tokgateway.auth.store import KeyRecord
from tokgateway.common.keys import new_id
from tokgateway.common.sqlite import SQLiteDB, transaction


class AuthStore(Protocol):
    async def migrate(self) -> None: ...

    async def ensure_user(self, email: str, is_admin: bool) -> str:
        """The id of the user with this email, created when missing."""

    async def create_key(
        self,
        *,
        name: str,
        key_hash: str,
        hint: str,
        user_id: str,
        user_email: str | None,
        models: tuple[str, ...],
        rpm: int | None,
        expires_at: float | None,
    ) -> KeyRecord:
        """Insert a key owned by ``user_email`` (created if new) or ``user_id``."""

    async def replace_admin_key(self, *, key_hash: str, hint: str, user_id: str) -> None: ...

    async def has_admin_key(self) -> bool: ...

    async def by_hash(self, key_hash: str) -> KeyRecord | None: ...

    async def hash_of(self, key_id: str) -> str | None: ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def revoke(self, key_id: str) -> KeyRecord | None: ...

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        """(key id, revoked at) of keys revoked after ``since``, oldest first."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class SQLiteAuthStore:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.run(store.migrate)

    async def ensure_user(self, email: str, is_admin: bool) -> str:
        return await self.db.run(lambda c: store.ensure_user(c, new_id("usr"), email, is_admin))

    async def create_key(
        self,
        *,
        name: str,
        key_hash: str,
        hint: str,
        user_id: str,
        user_email: str | None,
        models: tuple[str, ...],
        rpm: int | None,
        expires_at: float | None,
    ) -> KeyRecord:
        def op(conn: sqlite3.Connection) -> KeyRecord:
            with transaction(conn):
                owner = user_id
                if user_email:
                    owner = store.ensure_user(conn, new_id("usr"), user_email, False)
                return store.insert_key(
                    conn,
                    key_id=new_id("key"),
                    name=name,
                    key_hash=key_hash,
                    hint=hint,
                    user_id=owner,
                    models=models,
                    rpm=rpm,
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

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self.db.run(lambda c: store.by_hash(c, key_hash))

    async def hash_of(self, key_id: str) -> str | None:
        return await self.db.run(lambda c: store.hash_of(c, key_id))

    async def list_keys(self) -> list[KeyRecord]:
        return await self.db.run(store.list_keys)

    async def revoke(self, key_id: str) -> KeyRecord | None:
        return await self.db.run(lambda c: store.revoke(c, key_id))

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        return await self.db.run(lambda c: store.revoked_since(c, since))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        await self.db.close()
