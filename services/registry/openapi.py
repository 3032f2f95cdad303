"""The OpenAPI 3.1 document of the registry, marketplace and admin HTTP APIs,
served at ``/openapi.json``. Written by hand next to the handlers it
describes; tests/e2e/test_openapi.py checks it against a running gateway with
schemathesis. The OpenAI- and Anthropic-compatible /v1 API is described by
those vendors' own documents (see WIRE_FORMAT.md)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokgateway import __version__
from tokgateway.common.http import JSONResponse

Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
OBJ: Schema = {"type": "object"}
NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 64}


def _list(item: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": item}},
    }


def _obj(required: list[str], **props: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": props}


PROVIDER = _obj(
    ["name", "kind", "has_credential", "source"],
    name={"type": "string"},
    kind={"type": "string"},
    base_url={"type": "string"},
    has_credential={"type": "boolean"},
    source={"type": "string"},
    health=OBJ,
    network=_obj(
        [],
        proxy={"type": ["string", "null"], "description": "user:password masked"},
        ca_file={"type": "string"},
        tls_verify={"type": "boolean"},
        cert_file={"type": "string"},
        key_file={"type": "string"},
        headers={"type": "array", "items": {"type": "string"}, "description": "names only"},
        max_connections={"type": "integer"},
        forward_org_headers={"type": "boolean"},
    ),
)
ROUTE = _obj(
    ["pattern", "targets", "position"],
    pattern={"type": "string"},
    targets=OBJ | {"type": "array"},
    position={"type": "number"},
)
MODEL = _obj(["name"], name={"type": "string"})
MARKET_MODEL = _obj(
    ["name", "input", "output"],
    name={"type": "string"},
    input={"type": "number"},
    output={"type": "number"},
    cached={"type": ["number", "null"]},
    context_window={"type": ["integer", "null"]},
)
LISTING = _obj(
    ["id", "publisher", "name", "endpoint", "models", "status", "expires_at", "origin"],
    id={"type": "string"},
    publisher=OBJ,
    name={"type": "string"},
    endpoint={"type": "string"},
    api_format={"enum": ["openai", "anthropic"]},
    models={"type": "array", "items": MARKET_MODEL},
    status={"type": "string"},
    created_at={"type": "number"},
    expires_at={"type": "number"},
    origin={"type": "string"},
    via={"type": ["string", "null"]},
    age_s={"type": "number"},
    signature={"type": "string"},
)
PEER = _obj(["id", "url", "registry_id", "public_key"], url={"type": "string"})
SUBSCRIPTION = _obj(["id", "listing_id", "status"], status={"type": "string"})
IDENTITY = _obj(
    ["object", "access", "can_write", "sees_all"],
    object={"const": "identity"},
    access={"enum": ["admin", "viewer", "member"]},
    can_write={"type": "boolean"},
    sees_all={"type": "boolean"},
    key_id={"type": ["string", "null"]},
    user_id={"type": ["string", "null"]},
    team_id={"type": ["string", "null"]},
)
KEY = _obj(["id", "name", "status"], id={"type": "string"}, name={"type": "string"})
USAGE_ROW = _obj(
    ["group", "requests", "prompt_tokens", "completion_tokens", "cost_usd"],
    requests={"type": "integer"},
    cost_usd={"type": "number"},
)


def _op(
    summary: str,
    ok: Schema | None,
    *,
    status: str = "200",
    body: Schema | None = None,
    params: list[Schema] | None = None,
    public: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        status: {"description": "OK"}
        | ({"content": {"application/json": {"schema": ok}}} if ok is not None else {}),
        "default": {
            "description": "An error in the OpenAI shape",
            "content": {"application/json": {"schema": ERROR}},
        },
    }
    responses.update(extra or {})
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def _path(name: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema or NAME}


def _query(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def document() -> dict[str, Any]:
    provider_in = _obj(
        ["name", "kind"],
        name={"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
        kind={"enum": ["openai", "anthropic", "openai-compatible", "gemini", "azure", "echo"]},
        base_url={"type": "string", "format": "uri"},
        api_key={"type": "string"},
        timeout={"type": "number", "exclusiveMinimum": 0},
        proxy={"type": ["string", "null"], "pattern": "^(none|(http|socks5|socks5h)://.+)$"},
        ca_file={"type": ["string", "null"]},
        tls_verify={"type": ["boolean", "null"]},
        cert_file={"type": ["string", "null"]},
        key_file={"type": ["string", "null"]},
        headers={"type": ["string", "object", "null"], "additionalProperties": {"type": "string"}},
        max_connections={"type": ["integer", "null"], "minimum": 0},
        forward_org_headers={"type": ["boolean", "null"]},
    )
    route_in = _obj(
        ["pattern", "targets"],
        pattern={"type": "string", "minLength": 1},
        targets={"type": "string", "minLength": 1},
        position={"type": "number"},
    )
    model_in = _obj(
        ["name", "input", "output"],
        name={"type": "string", "minLength": 1},
        input={"type": "number", "minimum": 0},
        output={"type": "number", "minimum": 0},
        cached={"type": "number", "minimum": 0},
        cache_write={"type": "number", "minimum": 0},
    )
    publish_in = _obj(
        [],
        models={"type": "array", "items": {"type": "string"}},
        price_in={"type": "number", "minimum": 0},
        price_out={"type": "number", "minimum": 0},
        price_cached={"type": "number", "minimum": 0},
        name={"type": "string"},
        region={"type": "string"},
        api_format={"enum": ["openai", "anthropic"]},
    )
    paths: dict[str, Any] = {
        "/admin/providers": {
            "get": _op("Providers (credentials never shown)", _list(PROVIDER)),
            "post": _op("Add or change a provider", PROVIDER, status="201", body=provider_in),
        },
        "/admin/providers/{name}": {
            "delete": _op("Delete a provider", OBJ, params=[_path("name")]),
        },
        "/admin/routes": {
            "get": _op("Routes", _list(ROUTE)),
            "post": _op("Add or change a route", ROUTE, status="201", body=route_in),
        },
        "/admin/models": {
            "get": _op("Model prices and aliases", _list(MODEL)),
            "post": _op("Set a model's price", MODEL, status="201", body=model_in),
        },
        "/admin/models/{name}": {"delete": _op("Delete a model", OBJ, params=[_path("name")])},
        "/market/feed": {
            "get": _op(
                "Signed public listings for peer registries (ETag / If-None-Match)",
                _obj(["registry", "listings"], registry=OBJ, listings={"type": "array"}),
                public=True,
                extra={"304": {"description": "Not modified"}},
            )
        },
        "/market/subscribe": {
            "post": _op(
                "A consumer registry asks for access to a listing",
                SUBSCRIPTION,
                body=_obj(
                    ["listing_id", "claim"],
                    listing_id={"type": "string"},
                    claim={"type": "string", "minLength": 16},
                    consumer=OBJ,
                ),
                public=True,
                extra={
                    "202": {
                        "description": "Pending approval",
                        "content": {"application/json": {"schema": SUBSCRIPTION}},
                    }
                },
            )
        },
        "/admin/market/identity": {"get": _op("This registry's id and public key", OBJ)},
        "/admin/market/listings": {
            "get": _op(
                "Listings of this registry and its peers",
                _list(LISTING),
                params=[
                    _query("model", {"type": "string"}),
                    _query("sort", {"enum": ["price", "latency", "uptime"]}),
                ],
            ),
            "post": _op("Publish a listing", LISTING, status="201", body=publish_in),
        },
        "/admin/market/listings/{listing_id}": {
            "delete": _op("Unpublish a listing", OBJ, params=[_path("listing_id")])
        },
        "/admin/market/compare/{model}": {
            "get": _op("Listings of one model, cheapest first", _list(OBJ), params=[_path("model")])
        },
        "/admin/market/use": {
            "post": _op(
                "Subscribe to a listing and route its models to it",
                OBJ,
                body=_obj(
                    ["listing_id"], listing_id={"type": "string"}, **{"as": {"type": "string"}}
                ),
            )
        },
        "/admin/market/uses": {"get": _op("Listings this gateway uses", _list(OBJ))},
        "/admin/market/subscriptions": {
            "get": _op("Subscriptions to this gateway's listings", _list(SUBSCRIPTION))
        },
        "/admin/market/subscriptions/{sub_id}/approve": {
            "post": _op("Grant a pending subscription", SUBSCRIPTION, params=[_path("sub_id")])
        },
        "/admin/market/peers": {
            "get": _op("Followed registries", _list(PEER)),
            "post": _op(
                "Follow a registry (its key is pinned)",
                PEER,
                status="201",
                body=_obj(
                    ["url"], url={"type": "string", "format": "uri"}, token={"type": "string"}
                ),
            ),
        },
        "/admin/market/peers/remove": {
            "post": _op(
                "Stop following a registry", OBJ, body=_obj(["url"], url={"type": "string"})
            )
        },
        "/admin/market/peers/poll": {"post": _op("Pull every peer now", _list(PEER))},
        "/admin/prices": {
            "get": _op(
                "The price table in force, its date, and unpriced routed models",
                _list(
                    _obj(
                        ["model", "input", "output", "source"],
                        # set on a listing's price: the provider `market use` made
                        provider={"type": "string"},
                    )
                ),
            )
        },
        "/admin/prices/table": {
            "post": _op(
                "Replace the price table",
                _obj(["as_of", "models"], as_of={"type": "string"}, models={"type": "integer"}),
                body=_obj(
                    ["as_of", "models"],
                    as_of={"type": "string", "minLength": 1},
                    models={
                        "type": "object",
                        "additionalProperties": {
                            "type": "array",
                            "items": {"type": "number", "minimum": 0},
                            "minItems": 2,
                            "maxItems": 4,
                        },
                    },
                ),
            )
        },
        "/admin/keys": {
            "get": _op("API keys (secrets never shown)", _list(KEY)),
            "post": _op(
                "Create a key; its secret is in the answer once",
                KEY,
                status="201",
                body=_obj(
                    ["name"],
                    name={"type": "string", "minLength": 1},
                    models={"type": "array", "items": {"type": "string"}},
                    rpm={"type": "integer", "minimum": 1},
                ),
            ),
        },
        "/admin/keys/{key_id}": {
            "get": _op("One key", KEY, params=[_path("key_id")]),
        },
        "/admin/keys/{key_id}/revoke": {
            "post": _op("Revoke a key", KEY, params=[_path("key_id")]),
        },
        "/admin/whoami": {"get": _op("Who the calling key is and what it may do", IDENTITY)},
        "/admin/users": {"get": _op("Users", _list(OBJ))},
        "/admin/teams": {"get": _op("Teams", _list(OBJ))},
        "/admin/usage": {
            "get": _op(
                "Tokens and cost from the ledger",
                _list(USAGE_ROW),
                params=[
                    _query(
                        "group_by", {"enum": ["model", "provider", "key", "day", "user", "team"]}
                    ),
                    _query("key", {"type": "string"}),
                ],
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tokligence Gateway registry, marketplace and admin API",
            "version": __version__,
        },
        "components": {
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Listing": LISTING},
        },
        "security": [{"admin": []}],
        "paths": paths,
    }


def routes() -> list[Route]:
    body = document()

    async def serve(request: Request) -> Response:
        return JSONResponse(body)

    return [Route("/openapi.json", serve, methods=["GET"])]
