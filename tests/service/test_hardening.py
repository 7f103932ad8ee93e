"""Issue 10, over HTTP: an implausible number in an upload (row 3), loose types in a body
(row 8), malformed bodies (row 9) and a flood meeting a full queue (row 7) are each refused
with a clear answer that names the fault, and change nothing."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.json_body import MAX_JSON_DEPTH
from service.runner import SOLVER_NICENESS
from tests.service.helpers import (
    BACKENDS,
    LiveServer,
    fresh_database,
    make_settings,
    slow_run_body,
    wait_run,
    wait_until,
)


def _version(c: httpx.Client) -> int:
    r = c.get("/data")
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def _runs(c: httpx.Client) -> int:
    return int(c.get("/runs").json()["total"])


def _schedule(c: httpx.Client) -> dict[str, Any]:
    out = c.get("/schedule").json()
    del out["instances"]  # heartbeats
    return dict(out)


# ------------------------------------------------------------------ row 3: plausible bounds
def test_an_upload_with_an_implausible_price_is_refused_naming_the_cell(
    admin: httpx.Client,
) -> None:
    """Was: a grid price of 1e308 CNY/MWh became the current version (and a run on it
    "succeeded" with an objective of 4.85e307)."""
    before = _version(admin)
    rows = admin.get("/data/site_series").json()["rows"]
    rows[2]["grid_price_cny_per_mwh"] = 1e308
    r = admin.put("/data/site_series", json=rows)
    assert r.status_code == 422, r.text
    [problem] = r.json()["problems"]
    assert problem["table"] == "site_series" and problem["file"] == "site_series.csv"
    assert problem["column"] == "grid_price_cny_per_mwh" and problem["row"] == 3
    assert "out of range" in problem["message"] and "at most" in problem["message"]
    assert _version(admin) == before


# ------------------------------------------------------------------ row 8: strict types
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/schedule", {"enabled": "yes"}, "enabled"),
        ("PUT", "/schedule", {"enabled": 1}, "enabled"),
        ("PUT", "/schedule", {"time_limit_s": True}, "time_limit_s"),
        ("PUT", "/schedule", {"stability_weight": 1e308}, "stability_weight"),
        ("POST", "/runs", {"activate": "true"}, "activate"),
        ("POST", "/runs", {"priority": True}, "priority"),
        ("POST", "/runs", {"scenario_version_id": "1"}, "scenario_version_id"),
        ("POST", "/runs", {"settings": {"time_limit_s": True}}, "settings.time_limit_s"),
        ("POST", "/runs", {"settings": {"mip_rel_gap": "0.1"}}, "settings.mip_rel_gap"),
        ("POST", "/what-if", {"wait_s": 1e308}, "wait_s"),
        ("POST", "/what-if", {"base_plan_id": True}, "base_plan_id"),
        ("PUT", "/data/policy", {"carbon_price_cny_per_t": True}, "carbon_price_cny_per_t"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(
    admin: httpx.Client, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    """Was: `{"enabled": "yes"}` switched the nightly on, `"multiplier": true` became 1.0."""
    version, runs, schedule = _version(admin), _runs(admin), _schedule(admin)
    r = admin.request(method, path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_input"
    assert field in {p["column"] for p in r.json()["problems"]}, r.json()
    assert (_version(admin), _runs(admin)) == (version, runs)
    assert _schedule(admin) == schedule


# ------------------------------------------------------------------ row 9: malformed bodies
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"note": "caf\xe9"}', "body is not valid UTF-8 at byte 13"),
        (b"[" * 1000 + b"]" * 1000, f"JSON nesting deeper than {MAX_JSON_DEPTH} levels"),
        (b"[" * 65 + b"]" * 65, f"JSON nesting deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"note": "x",\n "activate": tr', "JSON ends early at line 2 column 16"),
        (b'{"note": "x', "JSON ends early: the string at line 1 column 10 is never closed"),
        (b'{"activate": yes}', "body is not valid JSON: Expecting value at line 1 column 14"),
        (b'{"priority": NaN}', "NaN is not a JSON number"),
        (b'{"priority": 1e400}', "a number is out of range"),
    ],
)
@pytest.mark.parametrize("path", ["/runs", "/data/jobs"])
def test_a_malformed_body_is_a_documented_400_naming_the_fault(
    admin: httpx.Client, path: str, body: bytes, message: str
) -> None:
    """Was: invalid UTF-8 or deep nesting gave an undocumented 400 "There was an error
    parsing the body", truncated JSON a 422 "JSON decode error"."""
    version, runs = _version(admin), _runs(admin)
    method = "POST" if path == "/runs" else "PUT"
    r = admin.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    out = r.json()
    assert out["error"] == "malformed_body" and message in out["message"]
    assert out["problems"] == [
        {
            "file": "request",
            "table": "body",
            "row": None,
            "column": None,
            "hour": None,
            "message": out["message"],
        }
    ]
    assert out["request_id"] == r.headers["X-Request-ID"]
    assert (_version(admin), _runs(admin)) == (version, runs)


def test_every_route_with_a_body_documents_the_malformed_body_answer(
    viewer: httpx.Client,
) -> None:
    doc = viewer.get("/openapi.json").json()
    with_body = [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    ]
    assert len(with_body) >= 9  # runs, what-ifs, sweeps, data, policy, schedule, keys
    for path, method, op in with_body:
        answer = op["responses"].get("400")
        assert answer is not None, (method, path)
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")


# ------------------------------------------------------------------ row 7: floods
@pytest.fixture(params=BACKENDS)
def full(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose queue of one is taken by a slow run."""
    url = fresh_database(str(request.param), tmp_path, "full")
    srv = LiveServer(make_settings(url, queue_limit=1, max_concurrent_solves=1)).start()
    with srv.client("planner") as c:
        slow = c.post("/runs", json=slow_run_body())
        assert slow.status_code == 202, slow.text
        wait_until(lambda: c.get(f"/runs/{slow.json()['id']}").json()["state"] == "running")
        yield srv
        c.delete(f"/runs/{slow.json()['id']}")
        assert wait_run(c, slow.json()["id"], timeout=30)["state"] == "cancelled"
    srv.stop()


BAD_OVERRIDES = {"overrides": {"price_changes": [{"multiplier": 2.0, "sites": ["nowhere"]}]}}


def test_a_full_queue_refuses_before_checking_the_request(full: LiveServer) -> None:
    """Was: the queue was checked after loading the scenario and applying the overrides,
    so a flood's refusals took 11-27 s. Now the queue comes first: a what-if, a run and a
    sweep with overrides that would fail their check get 429, not 422."""
    with full.client("planner") as c:
        for path, body in (
            ("/what-if", BAD_OVERRIDES),
            ("/runs", BAD_OVERRIDES),
            ("/what-if/sweep", {"parameter": "price_multiplier", "values": [1.0], **BAD_OVERRIDES}),
        ):
            r = c.post(path, json=body)
            assert r.status_code == 429, (path, r.text)
            assert r.json()["error"] == "queue_full" and "Retry-After" in r.headers
        assert c.get("/runs").json()["total"] == 1


def test_solver_processes_run_at_a_lower_cpu_priority(full: LiveServer) -> None:
    """Solves must never starve the API process: its pool's workers are niced."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    workers = wait_until(multiprocessing.active_children, what="solver processes")
    for proc in workers:
        assert proc.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(ours + SOLVER_NICENESS, 19)
