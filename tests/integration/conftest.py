from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Mesh, Postgres

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_mesh(tmp_path: Path) -> Iterator[Mesh]:
    """A mesh of its own (NATS, PostgreSQL, Redis, four services, two routers)
    for a test that stops or kills parts of it."""
    mesh = Mesh(tmp_path / "mesh", routers=2)
    try:
        mesh.start()
        yield mesh
    except BaseException:
        print(mesh.logs())
        raise
    finally:
        mesh.close()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster for the tests of one module."""
    pg = Postgres(tmp_path_factory.mktemp("pg"))
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        pg.remove()
