"""Where the marketplace keeps its data: the registry's signing identity,
listings (its own and those pulled from peers), peers, subscriptions granted
(publisher side) and listings used (consumer side).

Every record is a small JSON document under a kind and an id; listings pulled
from a peer also carry ``via`` (the peer's URL), so one poll can replace all
of that peer's listings at once. Memory (tests), SQLite (all-in-one, the
shared gateway.db) and PostgreSQL (mesh, market_store_pg.py) implement the
same ``MarketStore``. Secrets in documents (the private key, peer tokens,
minted keys) are sealed before they get here."""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

import orjson

from tokgateway.common.sqlite import SQLiteDB, transaction

IDENTITY = "identity"
LISTING = "listing"
PEER = "peer"
SUBSCRIPTION = "subscription"
USE = "use"

Doc = dict[str, Any]


class MarketStore(Protocol):
    async def migrate(self) -> None: ...

    async def get(self, kind: str, id_: str) -> Doc | None: ...

    async def list(self, kind: str) -> list[tuple[str, str, Doc]]:
        """(id, via, doc) of every record of ``kind``, ordered by id."""

    async def put(self, kind: str, id_: str, doc: Doc, via: str = "") -> None: ...

    async def delete(self, kind: str, id_: str) -> bool: ...

    async def replace_via(self, kind: str, via: str, docs: dict[str, Doc]) -> None:
        """Make the records of ``kind`` that came ``via`` exactly ``docs``."""

    async def close(self) -> None: ...


class MemoryMarketStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[str, Doc]] = {}

    async def migrate(self) -> None:
        return None

    async def get(self, kind: str, id_: str) -> Doc | None:
        row = self._rows.get((kind, id_))
        return dict(row[1]) if row else None

    async def list(self, kind: str) -> list[tuple[str, str, Doc]]:
        return sorted((i, via, dict(d)) for (k, i), (via, d) in self._rows.items() if k == kind)

    async def put(self, kind: str, id_: str, doc: Doc, via: str = "") -> None:
        self._rows[(kind, id_)] = (via, dict(doc))

    async def delete(self, kind: str, id_: str) -> bool:
        return self._rows.pop((kind, id_), None) is not None

    async def replace_via(self, kind: str, via: str, docs: dict[str, Doc]) -> None:
        for key in [k for k, (v, _) in self._rows.items() if k[0] == kind and v == via]:
            del self._rows[key]
        for id_, doc in docs.items():
            self._rows[(kind, id_)] = (via, dict(doc))

    async def close(self) -> None:
        return None


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS market_docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    via TEXT NOT NULL DEFAULT '',
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS market_docs_via ON market_docs (kind, via);
"""

_PUT = "INSERT OR REPLACE INTO market_docs (kind, id, via, doc) VALUES (?, ?, ?, ?)"


class SQLiteMarketStore:
    def __init__(self, db: SQLiteDB) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.run(lambda conn: conn.executescript(SQLITE_SCHEMA))

    async def get(self, kind: str, id_: str) -> Doc | None:
        def op(conn: sqlite3.Connection) -> Doc | None:
            row = conn.execute(
                "SELECT doc FROM market_docs WHERE kind = ? AND id = ?", (kind, id_)
            ).fetchone()
            return dict(orjson.loads(row[0])) if row else None

        return await self.db.run(op)

    async def list(self, kind: str) -> list[tuple[str, str, Doc]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str, Doc]]:
            rows = conn.execute(
                "SELECT id, via, doc FROM market_docs WHERE kind = ? ORDER BY id", (kind,)
            ).fetchall()
            return [(r[0], r[1], dict(orjson.loads(r[2]))) for r in rows]

        return await self.db.run(op)

    async def put(self, kind: str, id_: str, doc: Doc, via: str = "") -> None:
        def op(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(_PUT, (kind, id_, via, orjson.dumps(doc).decode()))

        await self.db.run(op)

    async def delete(self, kind: str, id_: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                cur = conn.execute("DELETE FROM market_docs WHERE kind = ? AND id = ?", (kind, id_))
            return cur.rowcount > 0

        return await self.db.run(op)

    async def replace_via(self, kind: str, via: str, docs: dict[str, Doc]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM market_docs WHERE kind = ? AND via = ?", (kind, via))
                conn.executemany(
                    _PUT, [(kind, i, via, orjson.dumps(d).decode()) for i, d in docs.items()]
                )

        await self.db.run(op)

    async def close(self) -> None:
        await self.db.close()
