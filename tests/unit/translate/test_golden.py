"""Every fixture under fixtures/: translate its input and compare with the
recorded expectation (``GOLDEN_UPDATE=1`` records them anew)."""

from __future__ import annotations

import pytest

from tests.unit.translate.helpers import check_golden, fixture_names, load
from tests.unit.translate.runners import run


@pytest.mark.parametrize("name", fixture_names(""))
def test_golden(name: str) -> None:
    check_golden(name, run(load(name)))
