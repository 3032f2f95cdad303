"""/openapi.json describes the registry, marketplace and admin APIs; checked
with schemathesis against a running all-in-one gateway (every answer in a
documented status and shape, no server errors). Operations that call out to
other registries (peers add, peers poll, market use) are left out of the
generated traffic: they are covered by test_market_federation.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.support.gateway_proc import GatewayProcess

CONFIG = "[gateway]\nlog_level = warning\n[ledger]\nflush_interval_ms = 50\n"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
OUTBOUND = ("/admin/market/peers", "/admin/market/use", "/admin/market/peers/poll")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root: Path = tmp_path_factory.mktemp("openapi")
    proc = GatewayProcess(root, CONFIG, env={"GATEWAY_ENABLE_PROVIDER": "true"}).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def api_schema(gw: GatewayProcess) -> Any:
    schema = schemathesis.openapi.from_url(gw.url + "/openapi.json")
    return schema.exclude(path=list(OUTBOUND), method="POST")


def test_the_document_lists_the_market_and_admin_apis(gw: GatewayProcess) -> None:
    doc = httpx.get(gw.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/admin/market/listings", "/market/feed", "/admin/providers", "/admin/keys"):
        assert path in doc["paths"]
    # the admin side wants the admin key; the feed is public
    assert httpx.get(gw.url + "/admin/market/listings").status_code == 401
    assert httpx.get(gw.url + "/market/feed").status_code == 200


def test_api_conforms(api_schema: Any, gw: GatewayProcess) -> None:
    headers = {"authorization": f"Bearer {gw.admin_token()}"}
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.label}: {exc}"[:1500])
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
