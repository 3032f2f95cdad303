"""Credential sealing and the registry service over its in-memory store."""

from __future__ import annotations

import orjson
import pytest

from tokgateway.common.bus import InProcessBus
from tokgateway.common.clients import table_from_snapshot
from tokgateway.common.contracts import REGISTRY_CHANGED_SUBJECT
from tokgateway.common.crypto import CredentialBox, SecretError, service_token, token_matches
from tokgateway.common.errors import BadRequest, NotFound
from tokgateway.common.settings import load_settings
from tokgateway.registry.service import RegistryService

SECRET = "unit-test-secret-key"


def test_sealed_credentials_open_only_with_the_same_key() -> None:
    box = CredentialBox(SECRET)
    sealed = box.seal("sk-upstream-123")
    assert "sk-upstream-123" not in sealed
    assert box.open(sealed) == "sk-upstream-123"
    assert box.seal("") == "" and box.open("") == ""
    with pytest.raises(SecretError):
        CredentialBox("another-key").open(sealed)
    with pytest.raises(SecretError):
        CredentialBox("")


def test_service_token_is_derived_and_compared_safely() -> None:
    token = service_token(SECRET)
    assert token.startswith("tgs-") and token == service_token(SECRET)
    assert token != service_token(SECRET + "x")
    assert token_matches(token, token)
    assert not token_matches(None, token)
    assert not token_matches("tgs-wrong", token)


@pytest.fixture
def settings(tmp_path: pytest.TempPathFactory) -> object:
    cfg = tmp_path / "config"  # type: ignore[operator]
    cfg.mkdir()
    (cfg / "setting.ini").write_text(
        "[provider.up]\nkind = openai-compatible\nbase_url = http://127.0.0.1:9/v1\n"
        "api_key = sk-config-secret\n\n[routes]\nup-* = up\n\n[aliases]\nfast = up-small\n\n"
        "[prices]\nup-small = 1.0, 2.0\n"
    )
    return load_settings(cfg, environ={})


async def test_registry_loads_config_seals_and_announces_changes(settings: object) -> None:
    bus = InProcessBus()
    events: list[dict[str, object]] = []
    bus.subscribe(REGISTRY_CHANGED_SUBJECT, lambda s, p: events.append(orjson.loads(p)))
    box = CredentialBox(SECRET)
    registry = RegistryService(settings, bus, box=box)  # type: ignore[arg-type]
    await registry.start()
    table = registry.snapshot()
    assert table.resolve("fast").deployments[0].upstream_model == "up-small"
    assert table.providers["up"].api_key == "sk-config-secret"
    assert all(p["has_credential"] for p in registry.providers_public() if p["name"] == "up")
    assert "sk-config-secret" not in orjson.dumps(registry.providers_public()).decode()

    wire = await registry.wire_snapshot()
    assert "sk-config-secret" not in orjson.dumps(wire).decode()
    rebuilt = table_from_snapshot(wire, box)
    assert rebuilt.providers["up"].api_key == "sk-config-secret"
    price = rebuilt.prices.lookup("up-small")
    assert price is not None and price.cost(1_000_000, 0) == 1.0

    await registry.put_provider(
        {"name": "second", "kind": "openai-compatible", "base_url": "http://h/v1", "api_key": "k2"}
    )
    route = await registry.put_route({"pattern": "up-special", "targets": "second:real"})
    assert route.position < min(
        r.position for r in (await registry.store.load()).routes if r.source == "config"
    )
    assert registry.snapshot().resolve("up-special").deployments[0].provider.name == "second"
    assert [e["what"] for e in events] == ["providers", "routes"]

    # Changing a provider without a key keeps its stored credential.
    await registry.put_provider(
        {"name": "second", "kind": "openai-compatible", "base_url": "http://h2/v1"}
    )
    assert registry.snapshot().providers["second"].api_key == "k2"

    with pytest.raises(BadRequest):
        await registry.delete_provider("second")  # a route still uses it
    with pytest.raises(BadRequest):
        await registry.put_route({"pattern": "x", "targets": "nope"})
    with pytest.raises(BadRequest):
        await registry.put_model({"name": "m", "input": 1.0})
    await registry.delete_route("up-special")
    await registry.delete_provider("second")
    with pytest.raises(NotFound):
        await registry.delete_provider("second")

    # A restart with the same INI keeps API records and refreshes config ones.
    await registry.put_model({"name": "api-model", "input": 0.5, "output": 1.0})
    await registry.start()
    names = {m["name"] for m in registry.models_public()}
    assert {"api-model", "up-small", "fast"} <= names
