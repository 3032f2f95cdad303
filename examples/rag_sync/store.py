"""Identities and documents in Milvus (Milvus Lite in-process, or a Milvus
server by URI). An identity is a user, a team or an API key with the
document collections it may read; documents carry the collection they belong
to and a vector, and a search is filtered to the caller's collections inside
Milvus itself.

Vectors come from a deterministic feature-hashing embedding (words hashed into
``DIM`` buckets): real similarity search with no model to download. Swap
``embed`` for a real embedding model in production."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from pymilvus import DataType, MilvusClient

DIM = 64
IDENTITIES = "identities"
DOCUMENTS = "documents"
PUBLIC = "public"
WORD = re.compile(r"[a-z0-9]+")


def embed(text: str) -> list[float]:
    vec = [0.0] * DIM
    for word in WORD.findall(text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vec[int.from_bytes(h[:4], "little") % DIM] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Identity:
    id: str
    kind: str  # user | team | key
    name: str = ""
    user_id: str = ""
    team_id: str = ""
    hint: str = ""
    teams: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    ts: float = 0.0

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "hint": self.hint,
            "teams": ",".join(self.teams),
            "collections": ",".join(self.collections),
            "ts": self.ts,
            "vec": [0.0, 0.0],
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Identity:
        def split(v: Any) -> list[str]:
            return [p for p in str(v or "").split(",") if p]

        return cls(
            id=row["id"],
            kind=row["kind"],
            name=row.get("name", ""),
            user_id=row.get("user_id", ""),
            team_id=row.get("team_id", ""),
            hint=row.get("hint", ""),
            teams=split(row.get("teams")),
            collections=split(row.get("collections")),
            ts=float(row.get("ts") or 0.0),
        )


_IDENTITY_FIELDS = [
    "id",
    "kind",
    "name",
    "user_id",
    "team_id",
    "hint",
    "teams",
    "collections",
    "ts",
]


class RagStore:
    """Milvus collections behind one lock: the Milvus Lite client is used from
    one thread at a time."""

    def __init__(self, uri: str) -> None:
        self.client = MilvusClient(uri)
        self.lock = threading.Lock()
        self._ensure()

    def _ensure(self) -> None:
        c = self.client
        if not c.has_collection(IDENTITIES):
            schema = c.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
            for name, length in (
                ("kind", 8), ("name", 256), ("user_id", 64), ("team_id", 64), ("hint", 64),
                ("teams", 4096), ("collections", 8192),
            ):  # fmt: skip
                schema.add_field(name, DataType.VARCHAR, max_length=length)
            schema.add_field("ts", DataType.DOUBLE)
            schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one
            index = c.prepare_index_params()
            index.add_index("vec", index_type="FLAT", metric_type="L2")
            c.create_collection(IDENTITIES, schema=schema, index_params=index)
        if not c.has_collection(DOCUMENTS):
            schema = c.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=128)
            schema.add_field("collection", DataType.VARCHAR, max_length=128)
            schema.add_field("text", DataType.VARCHAR, max_length=8192)
            schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
            index = c.prepare_index_params()
            index.add_index("vec", index_type="FLAT", metric_type="IP")
            c.create_collection(DOCUMENTS, schema=schema, index_params=index)

    # -- identities ---------------------------------------------------------------------
    def get(self, identity_id: str) -> Identity | None:
        with self.lock:
            rows = self.client.query(
                IDENTITIES, filter=f"id == {_quote(identity_id)}", output_fields=_IDENTITY_FIELDS
            )
        return Identity.from_row(rows[0]) if rows else None

    def find(self, **where: str) -> list[Identity]:
        expr = " and ".join(f"{k} == {_quote(v)}" for k, v in where.items())
        with self.lock:
            rows = self.client.query(IDENTITIES, filter=expr, output_fields=_IDENTITY_FIELDS)
        return [Identity.from_row(r) for r in rows]

    def put(self, identity: Identity) -> None:
        with self.lock:
            self.client.upsert(IDENTITIES, [identity.row()])

    def delete(self, ids: list[str]) -> None:
        if ids:
            with self.lock:
                self.client.delete(IDENTITIES, ids=ids)

    # -- documents ----------------------------------------------------------------------
    def add_document(self, doc_id: str, collection: str, text: str) -> None:
        with self.lock:
            self.client.upsert(
                DOCUMENTS,
                [{"id": doc_id, "collection": collection, "text": text, "vec": embed(text)}],
            )

    def search(self, query: str, collections: list[str], k: int = 5) -> list[dict[str, Any]]:
        if not collections:
            return []
        allowed = ", ".join(_quote(c) for c in collections)
        with self.lock:
            hits = self.client.search(
                DOCUMENTS,
                data=[embed(query)],
                filter=f"collection in [{allowed}]",
                limit=k,
                output_fields=["collection", "text"],
            )
        return [
            {
                "id": h["id"],
                "score": h["distance"],
                "collection": h["entity"]["collection"],
                "text": h["entity"]["text"],
            }
            for h in hits[0]
        ]

    def close(self) -> None:
        with self.lock:
            self.client.close()
