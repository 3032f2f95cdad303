from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_proc import GatewayProcess
from tests.support.mock_upstream import MockUpstream, free_port, serve_in_thread

UPSTREAM_OPENAI_SECRET = "sk-upstream-secret-0123456789"
UPSTREAM_ANTHROPIC_SECRET = "sk-ant-upstream-secret-9876543210"


@pytest.fixture(scope="session")
def mock() -> Iterator[tuple[MockUpstream, str]]:
    upstream = MockUpstream()
    with serve_in_thread(upstream.app) as url:
        yield upstream, url


def gateway_config(mock_url: str, extra: str = "") -> str:
    return f"""
[gateway]
log_level = info
max_body_mb = 1
# No health checks: a probe of `dead` would hold it in cooldown from the first
# round on and change the attempts these tests count (test_health_checks.py
# runs them on purpose).
health_check_s = 0

[ledger]
flush_interval_ms = 50

[provider.mock]
kind = openai-compatible
base_url = {mock_url}/v1
api_key = {UPSTREAM_OPENAI_SECRET}

[provider.mockant]
kind = anthropic
base_url = {mock_url}
api_key = {UPSTREAM_ANTHROPIC_SECRET}

[provider.dead]
kind = openai-compatible
base_url = http://127.0.0.1:{free_port()}/v1

[routes]
claude-* = mockant
fallback-model = dead, mock:gpt-4o-mini
flaky = mock:gpt-4o-500, mock:gpt-4o
deadonly = dead
gpt-* = mock
text-embedding-* = mock

[aliases]
smart = gpt-4o
{extra}
"""


@pytest.fixture(scope="session")
def gateway(
    mock: tuple[MockUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    root: Path = tmp_path_factory.mktemp("gateway")
    gw = GatewayProcess(root, gateway_config(mock[1])).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def api_key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key("e2e")["key"])
