"""The registry: providers, models (prices, aliases) and routes.

Definitions come from the INI layers at every start (``source: config``) and
from the admin API (``source: api``); both live in a ``RegistryStore`` (memory
all-in-one, PostgreSQL in the mesh). From them the registry builds the route
snapshot routers hold in memory, and announces every change on
``registry.v1.changed``. Provider credentials are sealed before they reach a
store; the admin API never returns them; the internal snapshot hands them to
routers still sealed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway.common.contracts import REGISTRY_CHANGED_SUBJECT, Bus
from tokgateway.common.crypto import token_matches
from tokgateway.common.errors import BadRequest, GatewayError, NotFound, Unauthenticated
from tokgateway.common.http import AdminGuard, JSONResponse, error_response, read_json
from tokgateway.common.keys import bearer_token
from tokgateway.common.pricing import Price, PriceTable
from tokgateway.common.routing import RouteTable
from tokgateway.common.settings import (
    DEFAULT_BASE_URLS,
    PROVIDER_KINDS,
    PriceOverride,
    ProviderConfig,
    RouteRule,
    RouteTarget,
    Settings,
)
from tokgateway.registry.store import (
    Definitions,
    MemoryRegistryStore,
    ModelRecord,
    ProviderRecord,
    RegistryStore,
    RouteRecord,
)

KEYED_KINDS = frozenset({"openai", "anthropic", "gemini", "azure"})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Sealer(Protocol):
    def seal(self, plaintext: str) -> str: ...

    def open(self, token: str) -> str: ...


class ClearBox:
    """For the all-in-one gateway without GATEWAY_SECRET_KEY: its registry store
    is process memory, never written to disk."""

    def seal(self, plaintext: str) -> str:
        return plaintext

    def open(self, token: str) -> str:
        return token


def config_definitions(settings: Settings, box: Sealer) -> Definitions:
    providers = tuple(
        ProviderRecord(
            name=p.name,
            kind=p.kind,
            base_url=p.base_url,
            api_key_sealed=box.seal(p.api_key),
            timeout=p.timeout,
            anthropic_version=p.anthropic_version,
            api_version=p.api_version,
            source="config",
        )
        for p in settings.providers.values()
    )
    routes = tuple(
        RouteRecord(
            pattern=r.pattern,
            targets=tuple((t.provider, t.upstream_model) for t in r.targets),
            position=float(i),
            source="config",
        )
        for i, r in enumerate(settings.routes)
    )
    models: dict[str, ModelRecord] = {}
    for name, price in settings.prices.items():
        models[name] = ModelRecord(
            name=name, input=price.input, output=price.output, cached=price.cached, source="config"
        )
    for alias, target in settings.aliases.items():
        base = models.get(alias)
        models[alias] = ModelRecord(
            name=alias,
            input=base.input if base else None,
            output=base.output if base else None,
            cached=base.cached if base else None,
            alias_of=target,
            source="config",
        )
    return Definitions(providers, routes, tuple(models.values()))


def build_table(
    defs: Definitions,
    primary: str | None,
    box: Sealer,
    strategies: Mapping[str, tuple[str, Mapping[str, float]]] | None = None,
    base: Mapping[str, Price] | None = None,
    scoped: Mapping[tuple[str, str], Price] | None = None,
) -> RouteTable:
    providers = {
        p.name: ProviderConfig(
            name=p.name,
            kind=p.kind,
            base_url=p.base_url,
            api_key=box.open(p.api_key_sealed),
            timeout=p.timeout,
            anthropic_version=p.anthropic_version,
            api_version=p.api_version,
        )
        for p in defs.providers
    }
    rules = [
        RouteRule(r.pattern, tuple(RouteTarget(p, m) for p, m in r.targets)) for r in defs.routes
    ]
    return RouteTable(
        rules=rules,
        aliases={m.name: m.alias_of for m in defs.models if m.alias_of},
        providers=providers,
        primary=primary if primary in providers else None,
        prices=PriceTable.default(_overrides(defs), base, scoped),
        strategies=strategies,
    )


def _overrides(defs: Definitions) -> dict[str, PriceOverride]:
    return {
        m.name: PriceOverride(m.input, m.output, m.cached)
        for m in defs.models
        if m.input is not None and m.output is not None
    }


class RegistryService:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        *,
        store: RegistryStore | None = None,
        box: Sealer | None = None,
    ) -> None:
        self.bus = bus
        self.store: RegistryStore = store or MemoryRegistryStore()
        self.box: Sealer = box or ClearBox()
        self._settings = settings
        self.version = 0
        self._defs = config_definitions(settings, self.box)
        # a refreshed price table (`gateway prices refresh`), else the shipped one
        self.base_prices: Mapping[str, Price] | None = None
        # (provider, upstream model) -> price: listings in use (market_access.py)
        self.scoped_prices: Mapping[tuple[str, str], Price] = {}
        self._table = build_table(self._defs, self._primary(), self.box, settings.strategies)
        # the router's breaker states by deployment ("provider:model"), where
        # the wiring can see the router (all-in-one); see router/strategies.py
        self.routing_health: Callable[[], dict[str, dict[str, Any]]] = dict
        # the router's last health check of each provider (router/prober.py),
        # by provider name, where the wiring can see the router
        self.probe_health: Callable[[], dict[str, dict[str, Any]]] = dict

    def _primary(self) -> str | None:
        return str(self._settings.get("gateway.primary_provider")) or None

    async def start(self) -> None:
        """Schema, then the INI definitions into the store, then the snapshot."""
        await self.store.migrate()
        await self.store.sync_config(config_definitions(self._settings, self.box))
        await self.refresh()

    async def close(self) -> None:
        await self.store.close()

    async def refresh(self) -> Definitions:
        self._defs = await self.store.load()
        self._table = build_table(
            self._defs,
            self._primary(),
            self.box,
            self._settings.strategies,
            self.base_prices,
            self.scoped_prices,
        )
        self.version += 1
        return self._defs

    def snapshot(self) -> RouteTable:
        return self._table

    async def reload(self, settings: Settings) -> None:
        self._settings = settings
        await self.store.sync_config(config_definitions(settings, self.box))
        await self._changed("config")

    async def set_base_prices(self, prices: Mapping[str, Price] | None) -> None:
        """Use a refreshed price table (None: the shipped one) from now on."""
        self.base_prices = prices
        await self._changed("prices")

    async def set_scoped_prices(self, prices: Mapping[tuple[str, str], Price]) -> None:
        """Prices of providers' own models (listings in use) from now on."""
        self.scoped_prices = dict(prices)
        await self._changed("prices")

    def unpriced(self) -> list[str]:
        """Models clients can ask for by name that no price covers: they would be
        metered at 0. Echo-served names are free on purpose."""
        table = self._table
        out = []
        for model, owner in table.listed_models():
            provider = table.providers.get(owner)
            if provider is not None and provider.kind == "echo":
                continue
            try:
                res = table.resolve(model)
            except NotFound:
                continue
            if all(
                table.prices.provider_price(d.provider.name, d.upstream_model) is None
                and table.prices.lookup(model) is None
                for d in res.deployments
            ):
                out.append(model)
        return out

    async def _changed(self, what: str) -> None:
        await self.refresh()
        event = {"v": 1, "what": what, "version": self.version}
        await self.bus.publish(REGISTRY_CHANGED_SUBJECT, orjson.dumps(event))

    # -- reads ------------------------------------------------------------------------
    def providers_public(self) -> list[dict[str, Any]]:
        breakers = self.routing_health()
        probes = self.probe_health()
        out = []
        for p in self._defs.providers:
            health: dict[str, Any] = dict(self.provider_health(p))
            cooling = sorted(
                k for k, s in breakers.items() if k.split(":")[0] == p.name and s["cooling"]
            )
            check = probes.get(p.name)
            if check is not None and not check["healthy"] and health["status"] == "ok":
                health = {"status": "down", "problem": "health check failed: " + check["error"]}
            elif cooling and health["status"] == "ok":
                health = {
                    "status": "cooldown",
                    "problem": "circuit breaker open after failures: " + ", ".join(cooling),
                }
            health["check"] = check
            out.append({**p.public(), "health": health})
        return out

    def provider_health(self, rec: ProviderRecord) -> dict[str, str]:
        """What can be known without calling the provider: a key that was
        meant to come from an unset variable, or no key where the kind needs
        one, fails; anything else is ``ok`` (configured)."""
        configured = self._settings.providers.get(rec.name)
        if rec.source == "config" and configured is not None and configured.missing_key:
            return {
                "status": "fail",
                "problem": f"api_key_env names {configured.missing_key}, which is not set",
            }
        if not rec.api_key_sealed and rec.kind in KEYED_KINDS:
            return {"status": "fail", "problem": f"no API key ({rec.kind} needs one)"}
        return {"status": "ok"}

    def routes_public(self) -> list[dict[str, Any]]:
        return [r.public() for r in self._defs.routes]

    def models_public(self) -> list[dict[str, Any]]:
        return [m.public() for m in self._defs.models]

    async def wire_snapshot(self) -> dict[str, Any]:
        """The snapshot routers load, read fresh from the store (any replica
        answers the same); credentials stay sealed."""
        defs = await self.refresh()
        table = self._table
        return {
            "v": 1,
            "version": self.version,
            "providers": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "base_url": p.base_url,
                    "api_key_sealed": p.api_key_sealed,
                    "timeout": p.timeout,
                    "anthropic_version": p.anthropic_version,
                    "api_version": p.api_version,
                }
                for p in defs.providers
            ],
            "routes": [
                {
                    "pattern": r.pattern,
                    "targets": [{"provider": p, "upstream_model": m} for p, m in r.targets],
                }
                for r in defs.routes
            ],
            "aliases": table.aliases,
            "primary_provider": table.primary,
            "prices": {
                name: {
                    "input": p.input,
                    "output": p.output,
                    "cached": p.cached,
                    "cache_write": p.cache_write,
                }
                for name, p in table.prices.models().items()
            },
            "price_overrides": sorted(table.prices.overridden),
            "provider_prices": [
                {
                    "provider": provider,
                    "model": model,
                    "input": p.input,
                    "output": p.output,
                    "cached": p.cached,
                    "cache_write": p.cache_write,
                }
                for (provider, model), p in sorted(table.prices.scoped.items())
            ],
            "strategies": {
                pattern: {"strategy": strategy, "weights": dict(weights)}
                for pattern, (strategy, weights) in table.strategies.items()
            },
        }

    # -- writes -----------------------------------------------------------------------
    async def put_provider(self, data: dict[str, Any]) -> ProviderRecord:
        name = _name(data.get("name"), "name")
        kind = data.get("kind")
        if kind not in PROVIDER_KINDS:
            raise BadRequest(f"'kind' must be one of {', '.join(PROVIDER_KINDS)}.", param="kind")
        base_url = data.get("base_url") or DEFAULT_BASE_URLS.get(kind, "")
        if not isinstance(base_url, str) or (
            kind in ("openai-compatible", "azure") and not base_url
        ):
            raise BadRequest(f"'base_url' is required for {kind}.", param="base_url")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise BadRequest("'base_url' must be an http(s) URL.", param="base_url")
        timeout = data.get("timeout")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise BadRequest("'timeout' must be a positive number.", param="timeout")
        existing = next((p for p in self._defs.providers if p.name == name), None)
        api_key = data.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise BadRequest("'api_key' must be a string.", param="api_key")
        sealed = (
            self.box.seal(api_key)
            if api_key is not None
            else (existing.api_key_sealed if existing else "")
        )
        rec = ProviderRecord(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            api_key_sealed=sealed,
            timeout=float(timeout) if timeout is not None else None,
            anthropic_version=str(data.get("anthropic_version") or "2023-06-01"),
            api_version=str(data.get("api_version") or ""),
        )
        await self.store.put_provider(rec)
        await self._changed("providers")
        return rec

    async def delete_provider(self, name: str) -> None:
        users = [r.pattern for r in self._defs.routes if any(p == name for p, _ in r.targets)]
        if users:
            raise BadRequest(
                f"Provider {name!r} is used by routes: {', '.join(users)}; change them first."
            )
        if not await self.store.delete_provider(name):
            raise NotFound(f"No provider {name!r}.", code="provider_not_found")
        await self._changed("providers")

    async def put_route(self, data: dict[str, Any]) -> RouteRecord:
        pattern = data.get("pattern")
        if not isinstance(pattern, str) or not pattern.strip():
            raise BadRequest("'pattern' must be a model name or glob.", param="pattern")
        targets = _targets(data.get("targets"))
        known = {p.name for p in self._defs.providers}
        unknown = [p for p, _ in targets if p not in known]
        if unknown:
            raise BadRequest(f"Unknown provider {', '.join(unknown)}.", param="targets")
        position = data.get("position")
        if position is None:
            # A route added at run time takes precedence over the configured ones.
            position = min((r.position for r in self._defs.routes), default=0.0) - 1.0
        elif not isinstance(position, int | float):
            raise BadRequest("'position' must be a number.", param="position")
        rec = RouteRecord(pattern=pattern.strip(), targets=targets, position=float(position))
        await self.store.put_route(rec)
        await self._changed("routes")
        return rec

    async def delete_route(self, pattern: str) -> None:
        if not await self.store.delete_route(pattern):
            raise NotFound(f"No route {pattern!r}.", code="route_not_found")
        await self._changed("routes")

    async def put_model(self, data: dict[str, Any]) -> ModelRecord:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("'name' must be a model name.", param="name")
        prices = {k: data.get(k) for k in ("input", "output", "cached")}
        for key, value in prices.items():
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise BadRequest(f"'{key}' must be a non-negative number.", param=key)
        if (prices["input"] is None) != (prices["output"] is None):
            raise BadRequest("Give both 'input' and 'output' prices, or neither.")
        alias_of = data.get("alias_of")
        if alias_of is not None and (not isinstance(alias_of, str) or not alias_of.strip()):
            raise BadRequest("'alias_of' must be a model name.", param="alias_of")
        if prices["input"] is None and alias_of is None:
            raise BadRequest("A model needs prices ('input', 'output') or 'alias_of'.")
        rec = ModelRecord(
            name=name.strip(),
            input=_num(prices["input"]),
            output=_num(prices["output"]),
            cached=_num(prices["cached"]),
            alias_of=alias_of.strip() if alias_of else None,
        )
        await self.store.put_model(rec)
        await self._changed("models")
        return rec

    async def delete_model(self, name: str) -> None:
        if not await self.store.delete_model(name):
            raise NotFound(f"No model {name!r}.", code="model_not_found")
        await self._changed("models")


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _name(value: Any, param: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise BadRequest(f"'{param}' must be 1-64 letters, digits, '_', '.' or '-'.", param=param)
    return value


def _targets(raw: Any) -> tuple[tuple[str, str | None], ...]:
    """'a:model, b' or [{"provider": "a", "upstream_model": "model"}, ...]."""
    out: list[tuple[str, str | None]] = []
    if isinstance(raw, str):
        for piece in raw.split(","):
            provider, _, model = piece.strip().partition(":")
            if provider.strip():
                out.append((provider.strip(), model.strip() or None))
    elif isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("provider"), str):
                raise BadRequest("Each target needs a 'provider'.", param="targets")
            upstream = item.get("upstream_model")
            out.append(
                (item["provider"], upstream if isinstance(upstream, str) and upstream else None)
            )
    if not out:
        raise BadRequest("'targets' must name at least one provider.", param="targets")
    return tuple(out)


class RegistryAdminAPI:
    def __init__(self, service: RegistryService, guard: AdminGuard) -> None:
        self.service = service
        self.guard = guard

    def routes(self) -> list[Route]:
        s = self
        return [
            Route("/admin/providers", s.providers, methods=["GET"]),
            Route("/admin/providers", s.put_provider, methods=["POST", "PUT"]),
            Route("/admin/providers/{name}", s.delete_provider, methods=["DELETE"]),
            Route("/admin/routes", s.route_list, methods=["GET"]),
            Route("/admin/routes", s.put_route, methods=["POST", "PUT"]),
            Route("/admin/routes/{pattern:path}", s.delete_route, methods=["DELETE"]),
            Route("/admin/models", s.models, methods=["GET"]),
            Route("/admin/models", s.put_model, methods=["POST", "PUT"]),
            Route("/admin/models/{name:path}", s.delete_model, methods=["DELETE"]),
        ]

    async def providers(self, request: Request) -> Response:
        try:
            await self.guard.reader(request)
            await self.service.refresh()
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "data": self.service.providers_public()})

    async def route_list(self, request: Request) -> Response:
        try:
            await self.guard.reader(request)
            await self.service.refresh()
        except GatewayError as err:
            return error_response(err)
        table = self.service.snapshot()
        return JSONResponse(
            {
                "object": "list",
                "data": self.service.routes_public(),
                "aliases": table.aliases,
                "primary_provider": table.primary,
            }
        )

    async def models(self, request: Request) -> Response:
        try:
            await self.guard.reader(request)
            await self.service.refresh()
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"object": "list", "data": self.service.models_public()})

    async def _write(self, request: Request, op: Any) -> Response:
        try:
            await self.guard.check(request)
            result = await op(await read_json(request, 1 << 16))
        except GatewayError as err:
            return error_response(err)
        return JSONResponse(result.public(), status_code=201)

    async def put_provider(self, request: Request) -> Response:
        return await self._write(request, self.service.put_provider)

    async def put_route(self, request: Request) -> Response:
        return await self._write(request, self.service.put_route)

    async def put_model(self, request: Request) -> Response:
        return await self._write(request, self.service.put_model)

    async def _delete(self, request: Request, op: Any, param: str) -> Response:
        try:
            await self.guard.check(request)
            await op(request.path_params[param])
        except GatewayError as err:
            return error_response(err)
        return JSONResponse({"deleted": request.path_params[param]})

    async def delete_provider(self, request: Request) -> Response:
        return await self._delete(request, self.service.delete_provider, "name")

    async def delete_route(self, request: Request) -> Response:
        return await self._delete(request, self.service.delete_route, "pattern")

    async def delete_model(self, request: Request) -> Response:
        return await self._delete(request, self.service.delete_model, "name")


class RegistryInternalAPI:
    """The snapshot routers load; guarded by the mesh service token."""

    def __init__(self, service: RegistryService, service_token: str) -> None:
        self.service = service
        self.token = service_token

    def routes(self) -> list[Route]:
        return [Route("/internal/snapshot", self.snapshot, methods=["GET"])]

    async def snapshot(self, request: Request) -> Response:
        given = bearer_token(request.headers.get("authorization"), None)
        if not token_matches(given, self.token):
            return error_response(Unauthenticated("Missing or wrong service token."))
        return JSONResponse(await self.service.wire_snapshot())
