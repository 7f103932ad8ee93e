"""Fixtures of the service tests: a live server per module and backend (SQLite and
PostgreSQL), and clients holding a key of each role."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.service.helpers import BACKENDS, LiveServer, fresh_database, make_settings


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server per test module and backend, on the demo scenario."""
    tmp = tmp_path_factory.mktemp(f"server-{backend}")
    url = fresh_database(backend, tmp, "api")
    srv = LiveServer(make_settings(url)).start()
    yield srv
    srv.stop()


@pytest.fixture()
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client("admin") as c:
        yield c


@pytest.fixture()
def planner(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client("planner") as c:
        yield c


@pytest.fixture()
def viewer(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client("viewer") as c:
        yield c
