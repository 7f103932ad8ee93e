"""Property-based requests generated from the served OpenAPI document (Schemathesis): no
request, valid or not, may make the service answer 5xx — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from tests.service.helpers import LiveServer, fresh_database, make_settings

# hundreds of requests per backend, runs and what-ifs among them: not in the fast lane
pytestmark = pytest.mark.slow

# examples per operation: enough to hit every parameter, body shape and content type a few
# times while the whole run stays around a minute per backend
EXAMPLES_PER_OPERATION = 25

# The document is built from the app (no server needed at import time), and a test checks
# it is exactly the one the live server serves; requests then go to that server over HTTP.
# (schemathesis.pytest.from_fixture would load it from the server directly, but it relies
# on a pytest internal that pytest 9 removed.)
DOCUMENT = create_app(make_settings("sqlite://")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def fuzzed(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = fresh_database(backend, tmp_path_factory.mktemp(f"fuzz-{backend}"), "fuzz")
    srv = LiveServer(
        make_settings(
            url,
            max_concurrent_solves=1,
            queue_limit=4,
            solve_time_limit_s=5.0,
            solve_max_time_limit_s=10.0,
        )
    ).start()
    yield srv
    srv.stop()


def test_the_fuzzed_document_is_the_served_one(fuzzed: LiveServer) -> None:
    assert httpx.get(f"{fuzzed.url}/openapi.json").json() == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples every run: a failure here is reproducible
)
def test_no_request_makes_the_service_fail(case: schemathesis.Case, fuzzed: LiveServer) -> None:
    assert fuzzed.keys is not None
    case.call_and_validate(
        base_url=fuzzed.url,
        headers={"X-API-Key": fuzzed.keys.admin},
        checks=[not_a_server_error],
        timeout=60,
    )
