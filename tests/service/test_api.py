"""The HTTP API over a real server (uvicorn + httpx), on SQLite and on PostgreSQL: every
route, roles, bad input, limits, runs and their lifecycle, plans and their exports."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from optimizer import SolverSettings, load_scenario, optimize
from optimizer.plan import BUNDLE_TABLES, Plan
from optimizer.validate import validate_plan
from service.db import Database
from service.logs import JsonFormatter
from tests.service.helpers import DEMO, LiveServer, slow_run_body, wait_run, wait_until
from tests.slurm_grammar import parse as parse_slurm

NO_RUN = 999_999


# ----------------------------------------------------------------------------- helpers
def version_id(c: httpx.Client) -> int:
    r = c.get("/data")
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def table_csv(c: httpx.Client, table: str) -> str:
    r = c.get(f"/data/{table}", headers={"Accept": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return r.text


def solve(c: httpx.Client, body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    r = c.post("/runs", json=body or {}, **kw)
    assert r.status_code == 202, r.text
    run = wait_run(c, r.json()["id"])
    assert run["state"] == "succeeded", run
    return run


@pytest.fixture(scope="module")
def base_plan(server: LiveServer) -> dict[str, Any]:
    """A plan of scenario version 1 (the demo as loaded), made active."""
    with server.client("planner") as c:
        return solve(c, {"activate": True, "scenario_version_id": 1, "note": "base"})


# ----------------------------------------------------------------------------- operations
def test_health_ready_and_metrics(server: LiveServer, base_plan: dict[str, Any]) -> None:
    with server.client(None) as anon:
        assert anon.get("/healthz").json()["status"] == "ok"
        r = anon.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["database"]["ok"] and r.json()["checks"]["solver"]["ok"]
        assert anon.get("/metrics").status_code == 401
    with server.client("viewer") as viewer:
        m = viewer.get("/metrics")
        assert m.status_code == 200
        text = m.text
    for name in (
        'greenopt_runs{state="succeeded"}',
        "greenopt_queue_depth",
        'greenopt_solve_duration_seconds_bucket{kind="run",le="+Inf",state="succeeded"}',
        "greenopt_active_plan_cost_cny",
        "greenopt_active_plan_emissions_t",
        "greenopt_active_plan_green_share",
        'greenopt_http_requests_total{method="GET",route="/healthz",status="200"}',
    ):
        assert name in text, name
    succeeded = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('greenopt_runs{state="succeeded"}')
    )
    assert succeeded >= 1


def test_readyz_is_503_when_the_database_is_unreachable(server: LiveServer) -> None:
    good = server.app.state.db
    server.app.state.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    try:
        with server.client(None) as anon:
            r = anon.get("/readyz")
    finally:
        server.app.state.db.dispose()
        server.app.state.db = good
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert not r.json()["checks"]["database"]["ok"]
    assert r.json()["checks"]["solver"]["ok"]


def test_request_id_in_and_out_and_one_json_log_line_per_request(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="greenopt.http"), server.client("viewer") as c:
        r = c.get("/data", headers={"X-Request-ID": "trace-42.a"})
        assert r.headers["X-Request-ID"] == "trace-42.a"
        generated = c.get("/data").headers["X-Request-ID"]
        assert len(generated) == 32 and generated != "trace-42.a"
        # a request id that could break a log line is replaced
        assert (
            c.get("/data", headers={"X-Request-ID": "a b\tc"}).headers["X-Request-ID"] != "a b\tc"
        )
        err = c.get("/plans/0")
        assert err.json()["request_id"] == err.headers["X-Request-ID"]
    lines = [rec for rec in caplog.records if getattr(rec, "request_id", None) == "trace-42.a"]
    assert len(lines) == 1
    out = json.loads(JsonFormatter().format(lines[0]))
    assert out["request_id"] == "trace-42.a"
    assert (out["method"], out["path"], out["route"], out["status"]) == (
        "GET",
        "/data",
        "/data",
        200,
    )
    assert out["duration_ms"] >= 0 and out["key"].startswith("key:test-viewer")


def test_every_route_has_a_response_model_and_an_example(server: LiveServer) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    comps = doc["components"]["schemas"]

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        return comps[s["$ref"].split("/")[-1]] if "$ref" in s else s

    missing = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = [c for c in op["responses"] if c.startswith("2")]
            assert ok, f"{method} {path} documents no success response"
            for code in ok:
                if code == "204":
                    continue
                content = op["responses"][code].get("content", {})
                assert content, f"{method} {path} {code} has no content"
                for ctype, spec in content.items():
                    schema = spec.get("schema")
                    assert schema, f"{method} {path} {code} {ctype} has no schema"
                    if ctype in ("application/zip",):
                        continue  # a binary download has no meaningful example
                    has_example = (
                        "example" in spec or "examples" in spec or "examples" in resolve(schema)
                    )
                    if not has_example:
                        missing.append(f"{method.upper()} {path} {code} {ctype}")
            if method in ("post", "put", "patch") and "requestBody" in op:
                for ctype, spec in op["requestBody"]["content"].items():
                    if ctype == "multipart/form-data":
                        continue
                    has = (
                        "example" in spec
                        or "examples" in spec
                        or "examples" in resolve(spec["schema"])
                    )
                    if not has:
                        missing.append(f"{method.upper()} {path} request {ctype}")
    assert not missing, "no example: " + ", ".join(missing)
    assert {"X-API-Key", "HTTPBearer"} <= set(doc["components"]["securitySchemes"]) | {
        s.get("name") for s in doc["components"]["securitySchemes"].values()
    }


# ----------------------------------------------------------------------------- roles
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/data", "viewer"),
    ("GET", "/data/versions", "viewer"),
    ("POST", "/data/versions/{version_id}/restore", "admin"),
    ("GET", "/data/policy", "viewer"),
    ("PUT", "/data/policy", "admin"),
    ("GET", "/data/{table}", "viewer"),
    ("PUT", "/data/{table}", "admin"),
    ("PATCH", "/data/{table}", "admin"),
    ("DELETE", "/data/jobs/{job_id}", "admin"),
    ("POST", "/runs", "planner"),
    ("GET", "/runs", "viewer"),
    ("GET", "/runs/{run_id}", "viewer"),
    ("DELETE", "/runs/{run_id}", "planner"),
    ("GET", "/plans", "viewer"),
    ("GET", "/plans/active", "viewer"),
    ("GET", "/plans/{plan_id}", "viewer"),
    ("GET", "/plans/{plan_id}/assignments", "viewer"),
    ("GET", "/plans/{plan_id}/site-hours", "viewer"),
    ("GET", "/plans/{plan_id}/workloads", "viewer"),
    ("GET", "/plans/{plan_id}/explain", "viewer"),
    ("GET", "/plans/{plan_id}/links", "viewer"),
    ("GET", "/plans/{plan_id}/bundle", "viewer"),
    ("GET", "/plans/{plan_id}/actions", "viewer"),
    ("GET", "/plans/{plan_id}/actions/slurm", "viewer"),
    ("GET", "/plans/{plan_id}/actions/kubernetes", "viewer"),
    ("PUT", "/jobs/{job_id}", "planner"),
    ("GET", "/jobs", "viewer"),
    ("GET", "/jobs/{job_id}", "viewer"),
    ("DELETE", "/jobs/{job_id}", "planner"),
    ("POST", "/jobs/{job_id}/progress", "planner"),
    ("POST", "/jobs/progress", "planner"),
    ("PUT", "/services/{service_id}", "planner"),
    ("GET", "/services", "viewer"),
    ("GET", "/services/{service_id}", "viewer"),
    ("DELETE", "/services/{service_id}", "planner"),
    ("POST", "/feeds", "admin"),  # forecast feeds are data
    ("GET", "/feeds", "viewer"),
    ("POST", "/plans/{plan_id}/activate", "planner"),
    ("GET", "/plans/{plan_a}/diff/{plan_b}", "viewer"),
    ("POST", "/what-if", "planner"),
    ("GET", "/what-if/{run_id}", "viewer"),
    ("POST", "/what-if/sweep", "planner"),
    ("GET", "/what-if/sweeps", "viewer"),
    ("GET", "/what-if/sweep/{sweep_id}", "viewer"),
    ("GET", "/schedule", "viewer"),
    ("PUT", "/schedule", "admin"),
    ("POST", "/schedule/run-now", "admin"),
    ("GET", "/schedule/history", "viewer"),
    ("GET", "/metrics", "viewer"),  # it shows the active plan's cost, emissions and gap
    ("POST", "/keys", "admin"),
    ("GET", "/keys", "admin"),
    ("DELETE", "/keys/{key_id}", "admin"),
    ("GET", "/ui/whoami", "viewer"),  # the dashboard's key check (service/ui/)
]
OPEN = {("GET", "/healthz"), ("GET", "/readyz")}
ORDER = ("viewer", "planner", "admin")


def _concrete(path: str) -> str:
    return (
        path.replace("{table}", "jobs")
        .replace("{job_id}", "no-such-job")
        .replace("{run_id}", str(NO_RUN))
        .replace("{plan_id}", str(NO_RUN))
        .replace("{plan_a}", str(NO_RUN))
        .replace("{plan_b}", str(NO_RUN))
        .replace("{key_id}", str(NO_RUN))
        .replace("{version_id}", str(NO_RUN))
        .replace("{sweep_id}", str(NO_RUN))
        .replace("{service_id}", "no-such-service")
    )


def test_the_role_table_covers_every_route(server: LiveServer) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == {(m, p) for m, p, _ in ROUTES} | OPEN


@pytest.mark.parametrize(("method", "path", "role"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_roles(server: LiveServer, method: str, path: str, role: str) -> None:
    url = _concrete(path)
    before = None
    with server.client("viewer") as v:
        before = version_id(v)
    with server.client(None) as anon:
        r = anon.request(method, url, json={})
        assert r.status_code == 401, r.text
        assert r.headers.get("WWW-Authenticate")
        assert r.json()["error"] == "unauthenticated"
        r = anon.request(method, url, json={}, headers={"X-API-Key": "gok_deadbeef_not-a-real-key"})
        assert r.status_code == 401
        r = anon.request(method, url, json={}, headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401
    for lower in ORDER[: ORDER.index(role)]:
        with server.client(lower) as c:
            r = c.request(method, url, json={})
            assert r.status_code == 403, (lower, r.text)
            assert role in r.json()["message"]
    # the key as a bearer token works as well as the header, and the role suffices (the
    # body is invalid on purpose, so nothing is changed by it)
    assert server.keys is not None
    key = getattr(server.keys, role)
    with server.client(None, headers={"Authorization": f"Bearer {key}"}) as c:
        r = c.request(method, url, json={"bogus": 1})
        assert r.status_code not in (401, 403), r.text
        assert r.status_code < 500, r.text
    with server.client("viewer") as v:
        assert version_id(v) == before


# ----------------------------------------------------------------------------- keys
def test_keys_create_list_use_and_revoke(server: LiveServer) -> None:
    with server.client("admin") as admin:
        r = admin.post("/keys", json={"role": "planner", "name": "ci"})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["key"].startswith(f"gok_{made['prefix']}_") and made["role"] == "planner"
        listed = admin.get("/keys").json()["items"]
        mine = [k for k in listed if k["id"] == made["id"]]
        assert mine and "key" not in mine[0] and mine[0]["prefix"] == made["prefix"]
        assert admin.post("/keys", json={"role": "root"}).status_code == 422
        with server.client(None, headers={"X-API-Key": made["key"]}) as ci:
            assert ci.get("/runs").status_code == 200
            assert ci.get("/keys").status_code == 403
            assert admin.delete(f"/keys/{made['id']}").status_code == 204
            r = ci.get("/runs")
            assert r.status_code == 401 and "revoked" in r.json()["message"]
        assert admin.delete(f"/keys/{made['id']}").status_code == 404
        assert all(k["id"] != made["id"] for k in admin.get("/keys").json()["items"])
        # the last admin key stays: without it nobody could manage the service over HTTP
        admins = [k for k in admin.get("/keys").json()["items"] if k["role"] == "admin"]
        assert len(admins) == 1
        r = admin.delete(f"/keys/{admins[0]['id']}")
        assert r.status_code == 409, r.text
        assert admin.get("/keys").status_code == 200


# ----------------------------------------------------------------------------- data
def test_data_current_versions_and_tables_as_json_and_csv(viewer: httpx.Client) -> None:
    d = viewer.get("/data").json()
    assert d["fingerprint"] and d["sizes"]["sites"] == 3 and d["sizes"]["hours"] == 24
    assert d["manifest"]["timezone"] == "Asia/Shanghai"
    vs = viewer.get("/data/versions", params={"limit": 500}).json()
    assert vs["items"][0]["id"] == d["id"] and vs["total"] == len(vs["items"])
    assert vs["items"][-1]["id"] == 1 and vs["items"][-1]["created_by"] == "bootstrap"
    js = viewer.get("/data/fleets", params={"version_id": 1}).json()
    assert js["version_id"] == 1 and js["columns"] == ["site_id", "accelerator", "devices"]
    assert js["rows"][0] == {"site_id": "sh-east", "accelerator": "H100", "devices": 64}
    csv = viewer.get("/data/fleets", params={"version_id": 1}, headers={"Accept": "text/csv"})
    assert csv.text == (DEMO / "fleets.csv").read_text()
    assert csv.headers["X-Total-Count"] == "6"
    # JSON wins unless CSV is preferred
    both = viewer.get("/data/fleets", headers={"Accept": "application/json, text/csv;q=0.5"})
    assert both.headers["content-type"].startswith("application/json")
    page = viewer.get(
        "/data/site_series", params={"version_id": 1, "offset": 70, "limit": 5}
    ).json()
    assert page["total"] == 72 and len(page["rows"]) == 2
    assert viewer.get("/data/nonsense").status_code == 422
    assert viewer.get("/data/jobs", params={"version_id": 99999}).status_code == 404


def test_bad_upload_lists_every_problem_and_changes_nothing(admin: httpx.Client) -> None:
    before_v, before_csv = version_id(admin), table_csv(admin, "jobs")
    jobs = pd.read_csv(io.StringIO(before_csv), dtype=str, keep_default_na=False)
    jobs.loc[1, "gang"] = "-4"
    jobs.loc[2, "work_device_hours"] = "NaN"
    jobs.loc[3, "accelerators"] = "TPU-v9"
    jobs.loc[4, "deadline"] = "2025-07-14T00:00:00+08:00"
    bad = jobs.to_csv(index=False)
    r = admin.put("/data/jobs", content=bad, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_input"
    found = {(p["table"], p["row"], p["column"]) for p in body["problems"]}
    assert ("jobs", 2, "gang") in found
    assert ("jobs", 3, "work_device_hours") in found
    assert any(p["row"] == 4 and "TPU-v9" in p["message"] for p in body["problems"])
    assert any(p["row"] == 5 and "deadline" in p["message"] for p in body["problems"])
    assert all(
        p["key"]["job_id"] == jobs.loc[p["row"] - 1, "job_id"] for p in body["problems"] if p["row"]
    )
    # a series with a NaN and a missing hour: both reported, the hour named
    series = pd.read_csv(
        io.StringIO(table_csv(admin, "site_series")), dtype=str, keep_default_na=False
    )
    series.loc[3, "grid_price_cny_per_mwh"] = "nan"
    series = series.drop(index=5)
    r = admin.put("/data/site_series", json=series.to_dict(orient="records"))
    assert r.status_code == 422, r.text
    probs = r.json()["problems"]
    assert any(p["row"] == 4 and p["column"] == "grid_price_cny_per_mwh" for p in probs)
    assert any(
        p["hour"] == "2025-07-15T05:00:00+08:00" and "missing" in p["message"] for p in probs
    )
    # not JSON (a documented 400 since issue 10, row 9), not CSV, wrong shapes
    r = admin.put("/data/jobs", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "malformed_body", r.text
    assert admin.put("/data/jobs", json={"a": 1}).status_code == 422
    assert admin.put("/data/jobs", json=[1, 2]).status_code == 422
    assert (
        admin.put("/data/jobs", content=b"x", headers={"Content-Type": "image/png"}).status_code
        == 415
    )
    assert admin.patch("/data/jobs", json=[{"gang": 3}]).status_code == 422  # no key column
    assert version_id(admin) == before_v
    assert table_csv(admin, "jobs") == before_csv


def test_put_table_as_csv_body_and_as_upload(admin: httpx.Client) -> None:
    before = version_id(admin)
    fleets = pd.read_csv(io.StringIO(table_csv(admin, "fleets")))
    fleets.loc[0, "devices"] = 80
    r = admin.put(
        "/data/fleets", content=fleets.to_csv(index=False), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == before + 1 and r.json()["parent_id"] == before
    assert admin.get("/data/fleets").json()["rows"][0]["devices"] == 80
    fleets.loc[0, "devices"] = 64
    r = admin.put(
        "/data/fleets",
        files={"file": ("fleets.csv", fleets.to_csv(index=False).encode(), "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert admin.get("/data/fleets").json()["rows"][0]["devices"] == 64
    # the same content as version 1 gives the same fingerprint and shares the stored table
    v = admin.get("/data").json()
    v1 = admin.get("/data/versions", params={"offset": 0, "limit": 500}).json()["items"][-1]
    assert v["tables"]["fleets"] == v1["tables"]["fleets"]


def test_patch_adds_and_updates_rows_by_key(admin: httpx.Client) -> None:
    before = version_id(admin)
    n_jobs = admin.get("/data/jobs").json()["total"]
    new = {
        "job_id": "batch-extra",
        "kind": "batch",
        "accelerators": ["A100", "H100"],
        "gang": 4,
        "work_device_hours": 8,
        "deadline": "2025-07-15T20:00:00+08:00",
        "preemptible": True,
    }
    r = admin.patch("/data/jobs", json=[new, {"job_id": "batch-night", "priority": 3}])
    assert r.status_code == 200, r.text
    assert "1 row(s) updated, 1 added" in r.json()["note"]
    rows = {j["job_id"]: j for j in admin.get("/data/jobs").json()["rows"]}
    assert len(rows) == n_jobs + 1
    assert rows["batch-extra"]["accelerators"] == "A100;H100" and rows["batch-extra"]["gang"] == 4
    assert rows["batch-night"]["priority"] == 3.0 and rows["batch-night"]["gang"] == 16  # untouched
    # a forecast update of some hours; the hour named in UTC matches the stored local time
    series = admin.get("/data/site_series").json()
    old = next(
        x
        for x in series["rows"]
        if x["site_id"] == "nx-west" and x["timestamp"] == "2025-07-15T00:00:00+08:00"
    )
    r = admin.patch(
        "/data/site_series",
        json=[
            {"site_id": "nx-west", "timestamp": "2025-07-14T16:00:00Z", "green_available_mw": 0.55}
        ],
    )
    assert r.status_code == 200, r.text
    after = admin.get("/data/site_series").json()
    assert after["total"] == series["total"]
    row = next(
        x
        for x in after["rows"]
        if x["site_id"] == "nx-west" and x["timestamp"] == "2025-07-15T00:00:00+08:00"
    )
    assert row["green_available_mw"] == 0.55
    assert row["grid_price_cny_per_mwh"] == old["grid_price_cny_per_mwh"]
    # the same key twice in one request is refused
    r = admin.patch("/data/jobs", json=[{"job_id": "a", "gang": 1}, {"job_id": "a", "gang": 2}])
    assert r.status_code == 422 and r.json()["problems"][0]["row"] == 2
    # delete the job again; an unknown job is a 404
    r = admin.delete("/data/jobs/batch-extra")
    assert r.status_code == 200, r.text
    assert admin.get("/data/jobs").json()["total"] == n_jobs
    assert admin.delete("/data/jobs/batch-extra").status_code == 404
    assert version_id(admin) == before + 3


def test_policy_get_and_put(admin: httpx.Client) -> None:
    before = version_id(admin)
    pol = admin.get("/data/policy").json()
    assert pol["values"]["unplaced_penalty_cny_per_device_hour"] == 200.0
    r = admin.put("/data/policy", json={"carbon_price_cny_per_t": 120.0, "carbon_budget_t": None})
    assert r.status_code == 200, r.text
    assert r.json()["values"]["carbon_price_cny_per_t"] == 120.0
    assert r.json()["values"]["carbon_budget_t"] is None
    assert r.json()["explicit"] == ["carbon_price_cny_per_t"]
    assert r.json()["version_id"] == before + 1
    r = admin.put("/data/policy", json={"carbon_price_cny_per_t": -5, "min_green_share": 2})
    assert r.status_code == 422
    cols = {p["column"] for p in r.json()["problems"]}
    assert cols == {"policy.carbon_price_cny_per_t", "policy.min_green_share"}
    assert admin.put("/data/policy", json={"bogus": 1}).status_code == 422
    assert version_id(admin) == before + 1
    # put the demo's policy back
    r = admin.put(
        "/data/policy", json={k: v for k, v in pol["values"].items() if k in pol["explicit"]}
    )
    assert r.status_code == 200
    assert admin.get("/data/policy").json()["values"] == pol["values"]


def test_bodies_over_the_limit_are_refused_with_413(
    server: LiveServer, admin: httpx.Client
) -> None:
    before = version_id(admin)
    big = b"job_id,gang\n" + b"x,1\n" * (server.settings.max_request_bytes // 4 + 10)
    r = admin.put("/data/jobs", content=big, headers={"Content-Type": "text/csv"})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large" and r.headers["X-Request-ID"]

    def chunks() -> Any:  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = admin.put("/data/jobs", content=chunks(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"
    assert version_id(admin) == before


# ----------------------------------------------------------------------------- runs
def test_a_run_solves_validates_stores_and_activates(
    planner: httpx.Client, base_plan: dict[str, Any]
) -> None:
    run = base_plan
    assert run["plan_id"] and run["progress"]["phase"] == "done" and run["progress"]["activated"]
    assert run["timings"]["queued_s"] >= 0 and run["timings"]["running_s"] > 0
    assert run["timings"]["solver"]["solve"] > 0 and "check" in run["timings"]["solver"]
    assert run["settings"] == {
        "time_limit_s": 30.0,
        "mip_rel_gap": SolverSettings.mip_rel_gap,  # the library's default, the server's too
        "threads": 1,
        "seed": 0,
        "finish_by_limit": False,
    }
    plan = planner.get(f"/plans/{run['plan_id']}").json()
    assert plan["run_id"] == run["id"] and plan["status"] in ("optimal", "feasible")
    # the gap it was asked for, unless the 30 s ran out first (a loaded machine): then
    # the plan says so and still has a bound
    assert run["gap"] is not None
    if plan["status"] == "optimal":
        assert run["gap"] <= SolverSettings.mip_rel_gap + 1e-9
    else:
        assert plan["summary"]["solver"]["termination"] == "Time limit reached", plan["summary"]
    assert plan["summary"]["validation"]["ok"] is True
    assert set(plan["baselines"]) == {"greedy", "carbon_agnostic"}
    assert plan["scenario_fingerprint"] == load_scenario(DEMO).fingerprint


def test_idempotency_key_gives_the_same_run(planner: httpx.Client) -> None:
    # asked to finish by its limit, the solver is told so (its settings in the summary)
    body = {"settings": {"time_limit_s": 20, "finish_by_limit": True}, "note": "idem"}
    key = f"idem-{time.time_ns()}"
    r1 = planner.post("/runs", json=body, headers={"Idempotency-Key": key})
    assert r1.status_code == 202, r1.text
    r2 = planner.post("/runs", json=body, headers={"Idempotency-Key": key})
    assert r2.status_code == 200 and r2.headers["Idempotent-Replayed"] == "true"
    assert r2.json()["id"] == r1.json()["id"]
    r3 = planner.post("/runs", json={**body, "note": "other"}, headers={"Idempotency-Key": key})
    assert r3.status_code == 409
    done = wait_run(planner, r1.json()["id"])
    runs = planner.get("/runs", params={"limit": 500}).json()["items"]
    assert sum(1 for r in runs if r["idempotency_key"] == key) == 1
    assert done["settings"]["finish_by_limit"] is True
    plan = planner.get(f"/plans/{done['plan_id']}").json()
    assert plan["summary"]["solver"]["settings"]["finish_by_limit"] is True


def test_bad_run_requests_are_422(planner: httpx.Client) -> None:
    n = planner.get("/runs").json()["total"]
    cases = [
        {"overrides": {"price_changes": [{"multiplier": 2, "sites": ["atlantis"]}]}},
        {"overrides": {"carbon_price_cny_per_t": -1}},
        {
            "overrides": {
                "capacity_changes": [{"site": "sh-east", "start": "2030-01-01T00:00:00+08:00"}]
            }
        },
        {"overrides": {"no_such_override": 1}},
        {"settings": {"time_limit_s": 10**6}},
        {"settings": {"threads": 64}},
        {"settings": {"finish_by_limit": "yes"}},
        {"scenario_version_id": 10**6},
        {"scenario_version_id": 2**40},  # found by Schemathesis: overflowed PostgreSQL's integer
    ]
    for body in cases:
        r = planner.post("/runs", json=body)
        assert r.status_code in (404, 422), (body, r.text)
        assert r.json()["message"]
    r = planner.post("/runs", json=cases[0])
    assert r.json()["problems"][0]["message"] == "unknown site 'atlantis'"
    assert planner.get("/runs").json()["total"] == n


def test_a_window_override_with_iso_timestamps_solves(planner: httpx.Client) -> None:
    run = solve(
        planner,
        {
            "scenario_version_id": 1,
            "overrides": {
                "price_changes": [
                    {
                        "multiplier": 3.0,
                        "start": "2025-07-15T08:00:00+08:00",
                        "end": "2025-07-15T20:00:00+08:00",
                    }
                ]
            },
        },
    )
    assert run["overrides"]["price_changes"][0]["start"] == "2025-07-15T08:00:00+08:00"


def test_runs_list_filters_and_pages(viewer: httpx.Client, base_plan: dict[str, Any]) -> None:
    everything = viewer.get("/runs", params={"limit": 500}).json()
    assert everything["total"] == len(everything["items"]) >= 1
    ids = [r["id"] for r in everything["items"]]
    assert ids == sorted(ids, reverse=True)
    paged = []
    for offset in range(0, everything["total"], 2):
        page = viewer.get("/runs", params={"offset": offset, "limit": 2}).json()
        assert page["total"] == everything["total"] and page["offset"] == offset
        paged += [r["id"] for r in page["items"]]
    assert paged == ids
    ok = viewer.get("/runs", params={"state": "succeeded", "kind": "run"}).json()
    assert ok["items"] and all(
        r["state"] == "succeeded" and r["kind"] == "run" for r in ok["items"]
    )
    assert viewer.get("/runs", params={"kind": "nightly"}).json()["total"] == 0
    assert viewer.get("/runs", params={"state": "bogus"}).status_code == 422
    assert viewer.get(f"/runs/{NO_RUN}").status_code == 404


@pytest.mark.slow  # solves the deliberately hard model, twice at once
def test_cancel_queued_at_once_and_running_mid_solve(
    planner: httpx.Client, server: LiveServer
) -> None:
    plans_before = planner.get("/plans").json()["total"]
    slow = [
        planner.post("/runs", json=slow_run_body()).json()["id"]
        for _ in range(server.settings.max_concurrent_solves)
    ]
    queued = planner.post("/runs", json={"note": "waits behind the slow ones"}).json()["id"]
    for rid in slow:
        wait_until(
            lambda rid=rid: planner.get(f"/runs/{rid}").json()["progress"].get("phase") == "solve",
            what=f"run {rid} solving",
        )
    assert planner.get(f"/runs/{queued}").json()["state"] == "queued"
    r = planner.delete(f"/runs/{queued}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert planner.delete(f"/runs/{queued}").status_code == 200  # again: no change
    r = planner.delete(f"/runs/{slow[0]}")
    assert r.status_code == 202 and r.json()["cancel_requested"] and r.json()["state"] == "running"
    # HiGHS is interrupted: the run ends long before the solve's own limit would stop it
    time_limit_s = slow_run_body()["settings"]["time_limit_s"]
    done = wait_run(planner, slow[0], timeout=time_limit_s / 5)
    assert done["state"] == "cancelled" and done["plan_id"] is None
    assert planner.delete(f"/runs/{slow[1]}").status_code == 202
    assert wait_run(planner, slow[1], timeout=time_limit_s / 5)["state"] == "cancelled"
    assert wait_run(planner, queued)["state"] == "cancelled"  # never ran
    assert planner.get("/plans").json()["total"] == plans_before
    succeeded = planner.get("/runs", params={"state": "succeeded"}).json()["items"][0]["id"]
    assert planner.delete(f"/runs/{succeeded}").status_code == 409


def test_a_run_on_an_older_scenario_version(planner: httpx.Client, admin: httpx.Client) -> None:
    admin.patch("/data/jobs", json=[{"job_id": "batch-night", "priority": 1.5}]).raise_for_status()
    run = solve(planner, {"scenario_version_id": 1})
    plan = planner.get(f"/plans/{run['plan_id']}").json()
    assert plan["scenario_version_id"] == 1
    assert plan["scenario_fingerprint"] == load_scenario(DEMO).fingerprint
    assert version_id(admin) > 1


# ----------------------------------------------------------------------------- plans
def test_plans_list_get_active_and_activate(
    planner: httpx.Client, base_plan: dict[str, Any]
) -> None:
    other = solve(planner, {"scenario_version_id": 1, "overrides": {"carbon_price_cny_per_t": 300}})
    listing = planner.get("/plans", params={"limit": 500}).json()
    assert listing["total"] >= 2 and {p["id"] for p in listing["items"]} >= {
        base_plan["plan_id"],
        other["plan_id"],
    }
    assert sum(p["active"] for p in listing["items"]) == 1
    r = planner.post(f"/plans/{other['plan_id']}/activate")
    assert r.status_code == 200, r.text
    active = planner.get("/plans/active").json()
    assert active["id"] == other["plan_id"] and active["active"]
    back = planner.post(f"/plans/{base_plan['plan_id']}/activate").json()
    assert back["previous_plan_id"] == other["plan_id"]
    assert planner.get("/plans/active").json()["id"] == base_plan["plan_id"]
    assert planner.get(f"/plans/{NO_RUN}").status_code == 404
    assert planner.post(f"/plans/{NO_RUN}/activate").status_code == 404


def test_assignments_and_site_hours_page_filter_and_csv(
    viewer: httpx.Client, base_plan: dict[str, Any]
) -> None:
    pid = base_plan["plan_id"]
    full = viewer.get(f"/plans/{pid}/assignments", params={"limit": 10000}).json()
    assert full["total"] == len(full["items"]) > 10
    pages = []
    for offset in range(0, full["total"], 37):
        page = viewer.get(
            f"/plans/{pid}/assignments", params={"offset": offset, "limit": 37}
        ).json()
        assert page["total"] == full["total"]
        pages += page["items"]
    assert pages == full["items"]
    site = viewer.get(
        f"/plans/{pid}/assignments", params={"site_id": "nx-west", "limit": 10000}
    ).json()
    assert site["items"] and all(a["site_id"] == "nx-west" for a in site["items"])
    assert site["total"] == sum(a["site_id"] == "nx-west" for a in full["items"])
    job = full["items"][0]["workload_id"]
    mine = viewer.get(f"/plans/{pid}/assignments", params={"workload_id": job}).json()
    assert mine["total"] == sum(a["workload_id"] == job for a in full["items"])
    csv = viewer.get(
        f"/plans/{pid}/assignments",
        params={"offset": 3, "limit": 4},
        headers={"Accept": "text/csv"},
    )
    assert csv.headers["X-Total-Count"] == str(full["total"])
    df = pd.read_csv(io.StringIO(csv.text), keep_default_na=False, na_values=[""])
    assert list(df["workload_id"]) == [a["workload_id"] for a in full["items"][3:7]]
    assert list(df["hour"]) == [a["hour"] for a in full["items"][3:7]]
    sh = viewer.get(f"/plans/{pid}/site-hours", params={"site_id": "gz-west"}).json()
    assert sh["total"] == 24 and [r["hour"] for r in sh["items"]] == list(range(24))
    assert all(r["facility_mw"] >= r["it_mw"] for r in sh["items"])
    sh_csv = viewer.get(
        f"/plans/{pid}/site-hours", params={"limit": 10000}, headers={"Accept": "text/csv"}
    ).text
    assert len(sh_csv.strip().splitlines()) == 3 * 24 + 1
    assert viewer.get(f"/plans/{pid}/assignments", params={"limit": 0}).status_code == 422
    assert viewer.get(f"/plans/{NO_RUN}/site-hours").status_code == 404


def test_bundle_is_byte_for_byte_what_write_bundle_wrote(
    viewer: httpx.Client, base_plan: dict[str, Any], tmp_path: Path
) -> None:
    pid = base_plan["plan_id"]
    r = viewer.get(f"/plans/{pid}/bundle")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    files = {n: zf.read(n) for n in zf.namelist()}
    assert set(files) == {"summary.json", *(f"{t}.csv" for t in BUNDLE_TABLES)}
    digests = viewer.get(f"/plans/{pid}").json()["bundle_sha256"]
    assert {n: hashlib.sha256(b).hexdigest() for n, b in files.items()} == digests
    assert viewer.get(f"/plans/{pid}/bundle").content == r.content  # same bytes every time
    # it is a complete, valid bundle of the demo scenario ...
    (tmp_path / "b").mkdir()
    zf.extractall(tmp_path / "b")
    back = Plan.read_bundle(tmp_path / "b")
    assert back.summary["plan_id"] == pid and back.summary["run_id"] == base_plan["id"]
    sc = load_scenario(DEMO)
    assert validate_plan(sc, back).ok
    # ... and its tables are what the optimizer writes for the same solve in this process
    # (same scenario, threads=1, seed 0, warm-started from the same stored plan as the run
    # was, the server's first plan: HiGHS is deterministic, and the start decides between
    # plans of equal objective)
    warm = None
    if back.summary.get("warm_start", {}).get("loaded"):
        wz = viewer.get(f"/plans/{back.summary['warm_start']['plan_id']}/bundle").content
        zipfile.ZipFile(io.BytesIO(wz)).extractall(tmp_path / "warm")
        warm = Plan.read_bundle(tmp_path / "warm")
    mine = optimize(
        sc,
        SolverSettings(time_limit_s=30, threads=1, seed=0),  # the server's default gap
        warm_start=warm,
    )
    mine.write_bundle(tmp_path / "mine")
    if "optimal" not in (mine.summary["status"], back.summary["status"]):
        # a loaded machine stopped a solve at its 30 s: where it stopped is not deterministic
        assert "Time limit reached" in (
            mine.summary["solver"]["termination"],
            back.summary["solver"]["termination"],
        )
        return
    for t in BUNDLE_TABLES:
        assert (tmp_path / "mine" / f"{t}.csv").read_bytes() == files[f"{t}.csv"], t


def test_actions_window_as_json_csv_slurm_and_kubernetes(
    viewer: httpx.Client, base_plan: dict[str, Any]
) -> None:
    """GET /plans/{id}/actions?from=...&hours=... gives the rows of the stored actions.csv
    for that window; the exports cover the same window; a start off the plan is a 422."""
    pid = base_plan["plan_id"]
    zf = zipfile.ZipFile(io.BytesIO(viewer.get(f"/plans/{pid}/bundle").content))
    stored = pd.read_csv(io.BytesIO(zf.read("actions.csv")), keep_default_na=False)
    every = viewer.get(f"/plans/{pid}/actions").json()["items"]
    assert [a["seq"] for a in every] == list(stored["seq"]) and len(every) > 0
    first = every[0]["timestamp"]  # the demo starts services at its first hour
    start = pd.Timestamp(first) + pd.Timedelta(hours=6)
    r = viewer.get(f"/plans/{pid}/actions", params={"from": start.isoformat(), "hours": 3})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and items == [a for a in every if 6 <= a["hour"] < 9]
    csv = viewer.get(
        f"/plans/{pid}/actions",
        params={"from": start.isoformat(), "hours": 3},
        headers={"Accept": "text/csv"},
    )
    assert len(pd.read_csv(io.StringIO(csv.text))) == len(items)
    slurm = viewer.get(f"/plans/{pid}/actions/slurm", params={"from": start.isoformat()})
    assert slurm.headers["content-type"].startswith("text/plain")
    for line in slurm.text.splitlines():
        if not line.startswith("#"):
            parse_slurm(line)
    k8s = viewer.get(f"/plans/{pid}/actions/kubernetes", params={"hours": 1}).json()["items"]
    assert k8s and all(p["at"] == first for p in k8s)
    bad = viewer.get(f"/plans/{pid}/actions", params={"from": "2020-01-01T00:30:00+00:00"})
    assert bad.status_code == 422 and "from=" in bad.json()["message"]
    assert viewer.get(f"/plans/{NO_RUN}/actions").status_code == 404


def test_workloads_and_explain(viewer: httpx.Client, base_plan: dict[str, Any]) -> None:
    pid = base_plan["plan_id"]
    wl = viewer.get(f"/plans/{pid}/workloads").json()["items"]
    sc = load_scenario(DEMO)
    assert {w["workload_id"] for w in wl} == {j.job_id for j in sc.jobs} | {
        k.service_id for k in sc.services
    }
    ex = viewer.get(f"/plans/{pid}/explain").json()
    unplaced = {w["workload_id"] for w in wl if w["status"] == "unplaced"}
    explained = {u["workload_id"]: u for u in ex["unplaced"]}
    assert unplaced <= set(explained)
    assert all(explained[u]["reason"] for u in unplaced)
    summary = viewer.get(f"/plans/{pid}").json()["summary"]
    assert len(unplaced) == summary["unplaced"]
    assert set(ex["binding_hours"]) <= {"sh-east", "nx-west", "gz-west"}
    for hours in ex["binding_hours"].values():
        assert set(hours) == {"capacity", "power", "green_supply"}
    assert ex["policy_violations"] == summary["policy_violations"]
    # churn.csv over HTTP: one row per decision, its net saving the difference of its costs
    assert ex["churn"] and {c["decision"] for c in ex["churn"]} <= {"stop", "hold", "pause"}
    for c in ex["churn"]:
        if c["energy_cost"] is not None:
            sign = -1.0 if c["decision"] == "hold" else 1.0
            assert c["net_saving"] == pytest.approx(sign * (c["energy_cost"] - c["churn_cost"]))


def test_links_carry_the_served_demand(viewer: httpx.Client, base_plan: dict[str, Any]) -> None:
    """The map's links: every token served goes over one (demand - unmet, in Mtoken), each
    over a latency the scenario has, and none that the plan leaves unused."""
    pid = base_plan["plan_id"]
    links = viewer.get(f"/plans/{pid}/links").json()["items"]
    sc = load_scenario(DEMO)
    demand_mtok = float(sc.demand_tokens_per_s.sum()) * 3600 / 1e6
    unmet = viewer.get(f"/plans/{pid}").json()["kpis"]["unmet_mtokens"]
    assert sum(x["mtokens"] for x in links) == pytest.approx(demand_mtok - unmet, rel=1e-6)
    for x in links:
        assert x["latency_ms"] == sc.latency_ms[(x["site_id"], x["demand_region"])]
        assert x["mtokens"] > 0 and 1 <= x["hours"] <= sc.hours and x["services"] >= 1
    assert viewer.get(f"/plans/{NO_RUN}/links").status_code == 404


def test_diff_of_two_plans(planner: httpx.Client, base_plan: dict[str, Any]) -> None:
    a = base_plan["plan_id"]
    b = solve(planner, {"scenario_version_id": 1, "overrides": {"carbon_price_cny_per_t": 800}})[
        "plan_id"
    ]
    d = planner.get(f"/plans/{a}/diff/{b}").json()
    pa, pb = planner.get(f"/plans/{a}").json(), planner.get(f"/plans/{b}").json()
    assert (d["plan_a"], d["plan_b"]) == (a, b)
    assert d["same_scenario"] is False  # the carbon price is part of the scenario
    for key in ("total_cost", "emissions_t", "green_share"):
        t = d["totals"][key]
        assert t["a"] == pytest.approx(pa[key]) and t["b"] == pytest.approx(pb[key])
        assert t["delta"] == pytest.approx(pb[key] - pa[key])
    assert set(d["sites"]) == {"sh-east", "nx-west", "gz-west"}
    same = planner.get(f"/plans/{a}/diff/{a}").json()
    assert same["same_scenario"] and all(
        v["delta"] in (0, 0.0, None) for v in same["totals"].values()
    )
    assert not any(same["jobs"].values())
    assert planner.get(f"/plans/{a}/diff/{NO_RUN}").status_code == 404
