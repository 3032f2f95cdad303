"""The marketplace's documents on PostgreSQL (mesh); see market_store.py."""

from __future__ import annotations

from typing import Any

import orjson

from tokgateway.common.postgres import Migration, affected, migrate
from tokgateway.registry.market_store import Doc

MIGRATIONS = (
    Migration(
        1,
        "market documents",
        """
        CREATE TABLE IF NOT EXISTS market_docs (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            via TEXT NOT NULL DEFAULT '',
            doc JSONB NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, id)
        );
        CREATE INDEX IF NOT EXISTS market_docs_via ON market_docs (kind, via);
        """,
    ),
)

_PUT = """
INSERT INTO market_docs (kind, id, via, doc) VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (kind, id) DO UPDATE SET via = EXCLUDED.via, doc = EXCLUDED.doc, updated_at = now()
"""


class PgMarketStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def migrate(self) -> None:
        await migrate(self.pool, "market", MIGRATIONS)

    async def get(self, kind: str, id_: str) -> Doc | None:
        raw = await self.pool.fetchval(
            "SELECT doc::text FROM market_docs WHERE kind = $1 AND id = $2", kind, id_
        )
        return dict(orjson.loads(raw)) if raw is not None else None

    async def list(self, kind: str) -> list[tuple[str, str, Doc]]:
        rows = await self.pool.fetch(
            "SELECT id, via, doc::text AS doc FROM market_docs WHERE kind = $1 ORDER BY id", kind
        )
        return [(r["id"], r["via"], dict(orjson.loads(r["doc"]))) for r in rows]

    async def put(self, kind: str, id_: str, doc: Doc, via: str = "") -> None:
        await self.pool.execute(_PUT, kind, id_, via, orjson.dumps(doc).decode())

    async def delete(self, kind: str, id_: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM market_docs WHERE kind = $1 AND id = $2", kind, id_
        )
        return affected(status) > 0

    async def replace_via(self, kind: str, via: str, docs: dict[str, Doc]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM market_docs WHERE kind = $1 AND via = $2", kind, via)
            await conn.executemany(
                _PUT, [(kind, i, via, orjson.dumps(d).decode()) for i, d in docs.items()]
            )

    async def close(self) -> None:
        return None
