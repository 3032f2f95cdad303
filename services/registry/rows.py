"""How registry records map to table rows, for the SQLite and the PostgreSQL
store alike: the column values of each record, in the order both stores'
INSERT statements name the columns (route targets as JSON text), and the
record a fetched row stands for (a ``sqlite3.Row`` or an asyncpg ``Record``,
both read by column name)."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from tokgateway.registry.store import Definitions, ModelRecord, ProviderRecord, RouteRecord

# What ``load`` reads, in the order ``Definitions`` keeps.
SELECT_PROVIDERS = "SELECT * FROM registry_providers ORDER BY name"
SELECT_ROUTES = "SELECT * FROM registry_routes ORDER BY position, pattern"
SELECT_MODELS = "SELECT * FROM registry_models ORDER BY name"


class Row(Protocol):
    def __getitem__(self, column: str, /) -> Any: ...


def provider_values(r: ProviderRecord) -> tuple[Any, ...]:
    return (
        r.name,
        r.kind,
        r.base_url,
        r.api_key_sealed,
        r.timeout,
        r.anthropic_version,
        r.api_version,
        r.source,
    )


def route_values(r: RouteRecord) -> tuple[Any, ...]:
    return (r.pattern, orjson.dumps([[p, m] for p, m in r.targets]).decode(), r.position, r.source)


def model_values(r: ModelRecord) -> tuple[Any, ...]:
    return (r.name, r.input, r.output, r.cached, r.alias_of, r.source)


def provider_record(r: Row) -> ProviderRecord:
    return ProviderRecord(
        name=r["name"],
        kind=r["kind"],
        base_url=r["base_url"],
        api_key_sealed=r["api_key_sealed"],
        timeout=r["timeout"],
        anthropic_version=r["anthropic_version"],
        api_version=r["api_version"],
        source=r["source"],
    )


def route_record(r: Row) -> RouteRecord:
    return RouteRecord(
        pattern=r["pattern"],
        targets=tuple((p, m) for p, m in orjson.loads(r["targets"])),
        position=r["position"],
        source=r["source"],
    )


def model_record(r: Row) -> ModelRecord:
    return ModelRecord(
        name=r["name"],
        input=r["input"],
        output=r["output"],
        cached=r["cached"],
        alias_of=r["alias_of"],
        source=r["source"],
    )


def definitions(providers: list[Row], routes: list[Row], models: list[Row]) -> Definitions:
    """The records of the three tables' rows (in the order fetched)."""
    return Definitions(
        tuple(provider_record(r) for r in providers),
        tuple(route_record(r) for r in routes),
        tuple(model_record(r) for r in models),
    )


def config_keys(config: Definitions) -> tuple[tuple[str, str, list[str]], ...]:
    """(table, key column, the keys ``config`` defines) of each table: what a
    config sync keeps of the config-sourced rows."""
    return (
        ("registry_providers", "name", [r.name for r in config.providers]),
        ("registry_routes", "pattern", [r.pattern for r in config.routes]),
        ("registry_models", "name", [r.name for r in config.models]),
    )
