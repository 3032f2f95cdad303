"""PostgreSQL through asyncpg: pools and versioned schema migrations.

Each service owns its tables and a list of numbered migrations. ``migrate``
applies the missing ones in order, in one transaction, under one
advisory lock so replicas starting together never race."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger("tokgateway.postgres")

MIGRATION_LOCK = 0x746F6B67  # 'tokg'

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""

# What a database outage looks like from asyncpg: retry later, never crash.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    init: Callable[[Any], Awaitable[None]] | None = None,
) -> Any:
    """A pool that opens its connections lazily and checks them on acquire;
    ``init`` runs on each new server connection."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        max_inactive_connection_lifetime=60,
        timeout=5,
        init=init,
    )


async def migrate(pool: Any, component: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations of ``component`` not applied yet; returns their versions."""
    applied: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(MIGRATIONS_TABLE)
        rows = await conn.fetch(
            "SELECT version FROM schema_migrations WHERE component = $1", component
        )
        done = {r["version"] for r in rows}
        for m in sorted(migrations, key=lambda m: m.version):
            if m.version in done:
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                component,
                m.version,
                m.name,
            )
            applied.append(m.version)
            log.info("migration applied", extra={"component": component, "version": m.version})
    return applied


async def ping(pool: Any, within: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(within):
            await pool.fetchval("SELECT 1")
    except UNAVAILABLE:
        return False
    except asyncpg.PostgresError:
        return False
    return True


def affected(status: str) -> int:
    """Rows touched, from a command status such as 'INSERT 0 42'."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


ReadyHook = Callable[[], Awaitable[None]]


class LazyPool:
    """An asyncpg pool that may not exist yet: the service starts (and answers
    /healthz) while PostgreSQL is still down, connects in the background, then
    runs its ready hooks (migrations, seeding) once, retrying until they pass.
    Queries before that fail with ``ConnectionRefusedError`` (an OSError, like
    any other outage, so callers retry the same way)."""

    def __init__(self, url: str, factory: Callable[..., Awaitable[Any]] = create_pool) -> None:
        self.url = url
        # For /metrics: server connections opened (the first ones and every
        # reconnect after an outage or an idle timeout) and failed pool starts.
        self.connections_opened = 0
        self.connect_failures = 0
        self._factory = factory
        self._pool: Any = None
        self._hooks: list[ReadyHook] = []
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._closed = False

    def on_ready(self, hook: ReadyHook) -> None:
        self._hooks.append(hook)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name="postgres-connect")

    async def _connect(self) -> None:
        delay = 0.2
        pending = list(self._hooks)
        while not self._closed:
            try:
                if self._pool is None:
                    self._pool = await self._factory(self.url, init=self._opened)
                while pending:
                    await pending[0]()
                    pending.pop(0)
                self.ready.set()
                log.info("PostgreSQL ready")
                return
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                self.connect_failures += 1
                log.warning("PostgreSQL not ready, retrying", extra={"err": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _opened(self, conn: Any) -> None:
        self.connections_opened += 1

    def _get(self) -> Any:
        if self._pool is None:
            raise ConnectionRefusedError("PostgreSQL is not connected yet")
        return self._pool

    def acquire(self) -> Any:
        return self._get().acquire()

    async def execute(self, *args: Any, **kw: Any) -> Any:
        return await self._get().execute(*args, **kw)

    async def executemany(self, *args: Any, **kw: Any) -> Any:
        return await self._get().executemany(*args, **kw)

    async def fetch(self, *args: Any, **kw: Any) -> Any:
        return await self._get().fetch(*args, **kw)

    async def fetchrow(self, *args: Any, **kw: Any) -> Any:
        return await self._get().fetchrow(*args, **kw)

    async def fetchval(self, *args: Any, **kw: Any) -> Any:
        return await self._get().fetchval(*args, **kw)

    async def ping(self) -> bool:
        return self._pool is not None and self.ready.is_set() and await ping(self._pool)

    async def close(self, grace: float = 5.0) -> None:
        """Idempotent: stop connecting, close gracefully, terminate after ``grace``."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), grace)
        except UNAVAILABLE:
            pool.terminate()
