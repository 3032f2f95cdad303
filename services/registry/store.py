"""Registry records and where they live: the ``RegistryStore`` protocol, and the
in-memory implementation the all-in-one gateway uses (its definitions come from
the INI files at every start). PostgreSQL (mesh) is in store_pg.py.

Provider credentials are stored sealed (see common/crypto.py); a store never
sees them in clear."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from tokgateway.common.settings import mask_url

Source = Literal["config", "api"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRecord:
    name: str
    kind: str
    base_url: str = ""
    api_key_sealed: str = ""
    timeout: float | None = None
    anthropic_version: str = "2023-06-01"
    api_version: str = ""
    source: Source = "api"

    def public(self) -> dict[str, Any]:
        """What any API may show: never the credential."""
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": mask_url(self.base_url),
            "has_credential": bool(self.api_key_sealed),
            "timeout": self.timeout,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRecord:
    pattern: str
    targets: tuple[tuple[str, str | None], ...]
    position: float
    source: Source = "api"

    def public(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "targets": [{"provider": p, "upstream_model": m} for p, m in self.targets],
            "position": self.position,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRecord:
    """A model entry: its price (USD per million tokens) and/or the model it is
    an alias of."""

    name: str
    input: float | None = None
    output: float | None = None
    cached: float | None = None
    alias_of: str | None = None
    source: Source = "api"

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input": self.input,
            "output": self.output,
            "cached": self.cached,
            "alias_of": self.alias_of,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Definitions:
    providers: tuple[ProviderRecord, ...]
    routes: tuple[RouteRecord, ...]
    models: tuple[ModelRecord, ...]


class RegistryStore(Protocol):
    async def migrate(self) -> None: ...

    async def load(self) -> Definitions: ...

    async def sync_config(self, config: Definitions) -> None:
        """Make the config-sourced records equal ``config``: upsert them, delete
        config records no longer defined. API-made records are left alone,
        unless the config now defines the same name."""

    async def put_provider(self, rec: ProviderRecord) -> None: ...

    async def delete_provider(self, name: str) -> bool: ...

    async def put_route(self, rec: RouteRecord) -> None: ...

    async def delete_route(self, pattern: str) -> bool: ...

    async def put_model(self, rec: ModelRecord) -> None: ...

    async def delete_model(self, name: str) -> bool: ...

    async def touch(self) -> None:
        """Something the snapshot is built from changed outside these records
        (the refreshed price table): processes sharing the store reload, as
        they do after a record changed."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryRegistryStore:
    def __init__(self) -> None:
        self._providers: dict[str, ProviderRecord] = {}
        self._routes: dict[str, RouteRecord] = {}
        self._models: dict[str, ModelRecord] = {}

    async def migrate(self) -> None:
        return None

    async def load(self) -> Definitions:
        return Definitions(
            tuple(self._providers.values()),
            tuple(sorted(self._routes.values(), key=lambda r: (r.position, r.pattern))),
            tuple(self._models.values()),
        )

    async def sync_config(self, config: Definitions) -> None:
        _sync(self._providers, {r.name: r for r in config.providers})
        _sync(self._routes, {r.pattern: r for r in config.routes})
        _sync(self._models, {r.name: r for r in config.models})

    async def put_provider(self, rec: ProviderRecord) -> None:
        self._providers[rec.name] = rec

    async def delete_provider(self, name: str) -> bool:
        return self._providers.pop(name, None) is not None

    async def put_route(self, rec: RouteRecord) -> None:
        self._routes[rec.pattern] = rec

    async def delete_route(self, pattern: str) -> bool:
        return self._routes.pop(pattern, None) is not None

    async def put_model(self, rec: ModelRecord) -> None:
        self._models[rec.name] = rec

    async def touch(self) -> None:
        return None  # one process: its own refresh is the whole story

    async def delete_model(self, name: str) -> bool:
        return self._models.pop(name, None) is not None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


R = TypeVar("R", ProviderRecord, RouteRecord, ModelRecord)


def _sync(table: dict[str, R], config: dict[str, R]) -> None:
    for name in [n for n, r in table.items() if r.source == "config" and n not in config]:
        del table[name]
    table.update(config)
