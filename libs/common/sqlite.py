"""An embedded SQLite database driven from asyncio through one worker thread.

One thread per database object serialises access to its connection, so no
call ever blocks the event loop. WAL mode lets the auth and ledger objects share
one file, each with its own connection. A database object doing bulk work off
the request path (the ledger's batched inserts) can run its thread at a lower
CPU priority, so the event loop sharing its core is never kept waiting."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SQLiteDB:
    def __init__(self, path: Path | str, *, nice: int = 0) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="sqlite",
            initializer=functools.partial(_lower_priority, nice) if nice > 0 else None,
        )
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # key hashes and the ledger: readable by the gateway's user only
                Path(self.path).touch(mode=0o600, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Synchronous access, for the CLI working on a stopped gateway."""
        return fn(self._connect())

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connect()))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await loop.run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)

    def close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._closed = True
        self._executor.shutdown(wait=False)


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux applies it per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


def transaction(conn: sqlite3.Connection) -> _Tx:
    return _Tx(conn)


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
