"""The same SDK script (tests/support/sdk_drive.py: strict validation,
streaming) against the gateway under the newest SDK releases (this venv) and
a pinned older pair (a cached venv), so drift in either shows here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support import sdk_drive
from tests.support.gateway_proc import GatewayProcess
from tests.support.sdk_pinned import PINNED, pinned_python

pytestmark = pytest.mark.e2e

SCRIPT = Path(sdk_drive.__file__)


def _drive(python: Path | str, gateway: GatewayProcess, api_key: str) -> dict[str, object]:
    done = subprocess.run(
        [str(python), str(SCRIPT), gateway.url, api_key],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report = dict(orjson.loads(done.stdout.strip().splitlines()[-1]))
    assert not report["failed"], report["failed"]
    assert done.returncode == 0
    return report


def test_newest_sdks(gateway: GatewayProcess, api_key: str) -> None:
    import anthropic
    import openai

    report = _drive(sys.executable, gateway, api_key)
    assert (report["openai"], report["anthropic"]) == (openai.__version__, anthropic.__version__)
    assert len(report["passed"]) == 10  # type: ignore[arg-type]


def test_pinned_older_sdks(gateway: GatewayProcess, api_key: str) -> None:
    report = _drive(pinned_python(), gateway, api_key)
    assert (report["openai"], report["anthropic"]) == (PINNED["openai"], PINNED["anthropic"])
    assert len(report["passed"]) == 10  # type: ignore[arg-type]
