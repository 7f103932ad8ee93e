"""What-ifs and sweeps over a real server (uvicorn + httpx), on SQLite and PostgreSQL: the
answer and its diff, the overrides really applied (prices, outages, fleets, jobs, carbon
price), the active plan never touched, the 202 path, every bad override listed, size and
body limits, roles, and sweeps (the curve, the queue bound), and how often a what-if's
overrides are read and applied on the way in. Every test solves on a live server: all are
`slow`; the pure functions are tested in test_whatif_units.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import httpx
import pandas as pd
import pytest

import optimizer.whatif
from optimizer.whatif import Overrides
from service.whatif import pareto_front
from tests.service.helpers import (
    LiveServer,
    fresh_database,
    make_settings,
    slow_run_body,
    wait_run,
    wait_until,
)

QUEUE_LIMIT = 8
MAX_JOBS = 30  # the demo has 12
MAX_MODEL_CELLS = 1500  # the demo has 995; each job of test_a_too_large_... adds 144
WEST = ["nx-west", "gz-west"]
DAY = "2025-07-15T{:02d}:00:00+08:00"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """This module's own server (it replaces conftest's): limits small enough for the demo
    to reach them, and a short run queue."""
    tmp = tmp_path_factory.mktemp(f"whatif-{backend}")
    url = fresh_database(backend, tmp, "whatif")
    settings = make_settings(
        url,
        queue_limit=QUEUE_LIMIT,
        whatif_max_jobs=MAX_JOBS,
        whatif_max_model_cells=MAX_MODEL_CELLS,
    )
    srv = LiveServer(settings).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def base(server: LiveServer) -> dict[str, Any]:
    """The active plan every what-if is compared with (the demo as loaded)."""
    with server.client("planner") as c:
        r = c.post("/runs", json={"activate": True, "note": "base"})
        assert r.status_code == 202, r.text
        run = wait_run(c, r.json()["id"])
        assert run["state"] == "succeeded", run
        plan = c.get(f"/plans/{run['plan_id']}").json()
        assert plan["active"]
        return plan


# ----------------------------------------------------------------------------- helpers
def ask(c: httpx.Client, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A what-if answered with its plan (200)."""
    r = c.post("/what-if", json=body, **kw)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["state"] == "succeeded", out
    return out


def run_count(c: httpx.Client) -> int:
    return int(c.get("/runs").json()["total"])


def rows(c: httpx.Client, plan_id: int, table: str, **params: Any) -> pd.DataFrame:
    r = c.get(f"/plans/{plan_id}/{table}", params={"limit": 10_000, **params})
    assert r.status_code == 200, r.text
    return pd.DataFrame(r.json()["items"])


def abs_gap(plan: dict[str, Any]) -> float:
    """How far the plan's objective may be above the optimum: objective - bound, CNY, plus
    a millionth of the objective for rounding in the stored numbers."""
    assert plan["objective"] is not None and plan["bound"] is not None, plan
    return max(0.0, plan["objective"] - plan["bound"]) + 1e-6 * abs(plan["objective"])


def emissions_bound(
    low: dict[str, Any], high: dict[str, Any], p_low: float, p_high: float
) -> float:
    """The most the contract-based emissions at carbon price `p_high` may exceed those at
    `p_low` for plans within their gaps: each plan is within its absolute gap d of its
    optimum, and adding the two optimality conditions gives
    (p_high - p_low) (E_high - E_low) <= d_low + d_high."""
    return (abs_gap(low) + abs_gap(high)) / (p_high - p_low)


def problem_columns(r: httpx.Response) -> set[str]:
    return {p["column"] for p in r.json()["problems"]}


def batch_job(job_id: str, **changes: Any) -> dict[str, Any]:
    row = {
        "job_id": job_id,
        "kind": "batch",
        "accelerators": "H100",
        "gang": 8,
        "work_device_hours": 16,
        "release": DAY.format(0),
        "deadline": "2025-07-16T00:00:00+08:00",
        "preemptible": True,
        "data_origin_site": "sh-east",
        "data_gb": 10,
    }
    return row | changes


# ----------------------------------------------------------------------------- what-ifs
def test_a_price_shock_answers_with_the_diff_and_leaves_the_active_plan(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    out = ask(planner, {"overrides": {"price_changes": [{"multiplier": 2.0, "sites": WEST}]}})
    new_id = out["plan"]["id"]
    assert out["base_plan_id"] == base["id"] and new_id != base["id"]
    assert out["scenario_version_id"] == base["scenario_version_id"]
    new = planner.get(f"/plans/{new_id}").json()
    assert (new["kind"], new["run_id"], new["active"]) == ("whatif", out["run_id"], False)
    assert out["plan"]["total_cost"] == new["total_cost"]
    assert out["plan"]["emissions_t"] == new["emissions_t"]

    # the diff is base -> what-if, and its deltas are those of the two plans' summaries
    diff = out["diff"]
    assert (diff["plan_a"], diff["plan_b"]) == (base["id"], new_id)
    for key in ("total_cost", "energy_cost", "emissions_t", "emissions_location_t"):
        d = diff["totals"][key]
        assert d["a"] == pytest.approx(base["summary"][key], rel=1e-12)
        assert d["b"] == pytest.approx(new["summary"][key], rel=1e-12)
        assert d["delta"] == pytest.approx(new["summary"][key] - base["summary"][key], abs=1e-9)
    assert diff == planner.get(f"/plans/{base['id']}/diff/{new_id}").json()
    assert set(diff["sites"]) == {"sh-east", "nx-west", "gz-west"}
    explained = planner.get(f"/plans/{new_id}/explain").json()
    assert out["explain"]["unplaced"] == explained["unplaced"]  # the demo has one: all shown
    assert out["explain"]["unplaced_total"] == len(explained["unplaced"]) >= 1
    assert out["links"]["diff"] == f"/plans/{base['id']}/diff/{new_id}"

    # the overrides reached the solver: western grid prices doubled, eastern ones not
    for site, factor in (("nx-west", 2.0), ("gz-west", 2.0), ("sh-east", 1.0)):
        before = rows(planner, base["id"], "site-hours", site_id=site)
        after = rows(planner, new_id, "site-hours", site_id=site)
        assert list(after["grid_price_per_mwh"]) == pytest.approx(
            list(before["grid_price_per_mwh"] * factor)
        )

    run = planner.get(f"/runs/{out['run_id']}").json()
    assert (run["kind"], run["activate"], run["warm_start_plan_id"]) == (
        "whatif",
        False,
        base["id"],
    )
    assert new["summary"]["warm_start"] == {"plan_id": base["id"], "loaded": True}
    # the active plan is the base plan still, and a what-if plan cannot be made active
    assert planner.get("/plans/active").json()["id"] == base["id"]
    refused = planner.post(f"/plans/{new_id}/activate")
    assert refused.status_code == 409 and "what-if" in refused.text
    assert planner.get("/plans/active").json()["id"] == base["id"]
    # asked again later, the same answer
    again = planner.get(f"/what-if/{out['run_id']}")
    assert again.status_code == 200 and again.json() == out


def test_an_outage_moves_work_off_the_site_in_its_window(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    start, end = pd.Timestamp(DAY.format(0)), pd.Timestamp(DAY.format(12))

    def in_window(df: pd.DataFrame) -> pd.DataFrame:
        ts = pd.to_datetime(df["timestamp"], utc=True)
        return df[(ts >= start) & (ts < end)]

    before = in_window(rows(planner, base["id"], "assignments", site_id="nx-west"))
    # the base plan does use the site in the window, so there is something to move
    jobs_hit = set(before["workload_id"]) & {
        w["workload_id"]
        for w in planner.get(f"/plans/{base['id']}/workloads").json()["items"]
        if w["kind"] != "inference"
    }
    assert jobs_hit, before
    out = ask(
        planner,
        {
            "overrides": {
                "capacity_changes": [
                    {
                        "site": "nx-west",
                        "available_fraction": 0,
                        "start": DAY.format(0),
                        "end": DAY.format(12),
                    }
                ]
            }
        },
    )
    after = rows(planner, out["plan"]["id"], "assignments", site_id="nx-west")
    assert not after.empty  # the site works again after the window ...
    assert in_window(after).empty  # ... but nothing runs there during it
    changed = {
        j["workload_id"]
        for kind in ("moved", "retimed", "newly_unplaced")
        for j in out["diff"]["jobs"][kind]
    }
    assert jobs_hit <= changed


def test_a_carbon_price_does_not_raise_contract_based_emissions(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    price = 500.0
    out = ask(planner, {"overrides": {"carbon_price_cny_per_t": price}})
    plan = out["plan"]
    before = base["summary"]
    assert before["policy"]["carbon_price_cny_per_t"] == 0.0
    assert plan["carbon_cost"] == pytest.approx(price * plan["emissions_t"], rel=1e-9)
    assert plan["emissions_t"] <= before["emissions_t"] + emissions_bound(base, plan, 0.0, price)
    assert out["diff"]["totals"]["emissions_t"]["delta"] == pytest.approx(
        plan["emissions_t"] - before["emissions_t"], abs=1e-9
    )


def test_jobs_added_and_removed(planner: httpx.Client, base: dict[str, Any]) -> None:
    out = ask(
        planner,
        {"overrides": {"add_jobs": [batch_job("wi-extra")], "remove_jobs": ["finetune-1"]}},
    )
    jobs = out["diff"]["jobs"]
    assert (jobs["only_in_a"], jobs["only_in_b"]) == (["finetune-1"], ["wi-extra"])
    work = {
        w["workload_id"]: w
        for w in planner.get(f"/plans/{out['plan']['id']}/workloads").json()["items"]
    }
    assert "finetune-1" not in work
    assert work["wi-extra"]["status"] == "placed"
    extra = rows(planner, out["plan"]["id"], "assignments", workload_id="wi-extra")
    assert extra["devices"].sum() == 16  # 16 device-hours of work, 8 devices at a time


def test_accelerator_mix_changes_the_fleet(planner: httpx.Client, base: dict[str, Any]) -> None:
    before = rows(planner, base["id"], "assignments", site_id="nx-west")
    assert (before["accelerator"] == "H100").any()
    out = ask(
        planner,
        {
            "overrides": {
                "accelerator_mix": [
                    {
                        "from_accelerator": "H100",
                        "to_accelerator": "A100",
                        "share": 1.0,
                        "sites": ["nx-west"],
                    }
                ]
            }
        },
    )
    after = rows(planner, out["plan"]["id"], "assignments", site_id="nx-west")
    assert not (after["accelerator"] == "H100").any()
    # the jobs that ran there on H100s and run on nothing else had to go
    only_h100 = {
        j["job_id"] for j in planner.get("/data/jobs").json()["rows"] if j["accelerators"] == "H100"
    }
    gone = only_h100 & set(before.loc[before["accelerator"] == "H100", "workload_id"])
    assert gone
    changed = {
        j["workload_id"] for k in ("moved", "newly_unplaced") for j in out["diff"]["jobs"][k]
    }
    assert gone <= changed


def test_a_short_wait_answers_202_and_the_run_finishes_on_its_own(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    r = planner.post(
        "/what-if", params={"wait_s": 0}, json={"overrides": {"carbon_price_cny_per_t": 50}}
    )
    assert r.status_code == 202, r.text
    out = r.json()
    assert r.headers["Location"] == f"/runs/{out['run_id']}"
    assert out["state"] in ("queued", "running")
    assert out["plan"] is None and out["diff"] is None and out["base_plan_id"] == base["id"]
    pending = planner.get(f"/what-if/{out['run_id']}")
    assert pending.status_code in (200, 202)
    run = wait_run(planner, out["run_id"])
    assert (run["state"], run["kind"]) == ("succeeded", "whatif")
    plan = planner.get(f"/plans/{run['plan_id']}").json()
    assert (plan["kind"], plan["active"]) == ("whatif", False)
    diff = planner.get(f"/plans/{base['id']}/diff/{run['plan_id']}")
    assert diff.status_code == 200
    done = planner.get(f"/what-if/{out['run_id']}")
    assert done.status_code == 200 and done.json()["diff"] == diff.json()
    # the body's wait_s works too, and the query's wins over it
    r = planner.post(
        "/what-if",
        params={"wait_s": 0},
        json={"overrides": {"carbon_price_cny_per_t": 60}, "wait_s": 300},
    )
    assert r.status_code == 202, r.text
    wait_run(planner, r.json()["run_id"])
    assert planner.get("/plans/active").json()["id"] == base["id"]


def test_waiting_what_ifs_leave_the_server_responsive(
    server: LiveServer, planner: httpx.Client, viewer: httpx.Client, base: dict[str, Any]
) -> None:
    # both solver processes busy for minutes: the what-ifs stay queued while they wait
    slow = [planner.post("/runs", json=slow_run_body()).json()["id"] for _ in range(2)]

    def ask_slowly(price: float) -> httpx.Response:
        with server.client("planner") as c:
            # waits until its run ends: here, until the test cancels it
            return c.post(
                "/what-if",
                params={"wait_s": server.settings.whatif_max_wait_s},
                json={"overrides": {"carbon_price_cny_per_t": price}},
            )

    def waiting() -> list[int]:
        runs = planner.get("/runs", params={"kind": "whatif", "state": "queued"}).json()
        return [r["id"] for r in runs["items"] if r["id"] > max(slow)]

    try:
        with ThreadPoolExecutor(3) as pool:
            asked = [pool.submit(ask_slowly, p) for p in (11.0, 12.0, 13.0)]
            queued = wait_until(
                lambda: len(waiting()) == 3 and waiting(), timeout=30, what="three what-ifs queued"
            )
            slow += queued
            # while all three wait, every other request is answered
            for _ in range(5):
                assert viewer.get("/healthz").status_code == 200
                assert viewer.get(f"/runs/{slow[0]}").status_code == 200
            assert not any(f.done() for f in asked)  # the probes were answered while they waited
            # the end of their runs is what ends their waits
            for run_id in queued:
                assert planner.delete(f"/runs/{run_id}").status_code == 200
            answers = [f.result(timeout=60) for f in asked]
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        assert {r.json()["state"] for r in answers} == {"cancelled"}
        assert {r.json()["run_id"] for r in answers} == set(queued)
    finally:
        for run_id in slow:
            planner.delete(f"/runs/{run_id}")
    for run_id in slow:
        assert wait_run(planner, run_id, timeout=60)["state"] == "cancelled"


def test_the_base_of_a_what_if(
    admin: httpx.Client, planner: httpx.Client, base: dict[str, Any]
) -> None:
    r = admin.put("/data/policy", json={"carbon_price_cny_per_t": 150.0})
    assert r.status_code == 200, r.text
    version = r.json()["version_id"]
    assert version != base["scenario_version_id"]
    body = {"overrides": {"green_scaling": [{"multiplier": 1.3}]}}
    # a version nobody solved yet: the plan, but nothing to compare it with
    out = ask(planner, {**body, "scenario_version_id": version})
    assert (out["scenario_version_id"], out["base_plan_id"], out["diff"]) == (version, None, None)
    assert f"no plan of scenario version {version}" in out["message"]
    plain = wait_run(
        planner, planner.post("/runs", json={"scenario_version_id": version}).json()["id"]
    )
    # ... once it has a plan solved as it stands, that plan is the base
    out = ask(planner, {**body, "scenario_version_id": version})
    assert out["base_plan_id"] == plain["plan_id"] and out["diff"]["plan_a"] == plain["plan_id"]
    out = ask(planner, {**body, "base_plan_id": plain["plan_id"]})
    assert (out["scenario_version_id"], out["base_plan_id"]) == (version, plain["plan_id"])
    # by default, and for the active plan's version, the active plan
    for given in ({}, {"scenario_version_id": base["scenario_version_id"]}):
        out = ask(planner, {**body, **given})
        assert (out["scenario_version_id"], out["base_plan_id"]) == (
            base["scenario_version_id"],
            base["id"],
        )
    assert planner.get("/plans/active").json()["id"] == base["id"]


def test_idempotency_key_gives_the_same_what_if(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    body = {"overrides": {"carbon_price_cny_per_t": 70}, "note": "idem"}
    key = f"wi-{uuid.uuid4()}"
    first = planner.post("/what-if", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    n = run_count(planner)
    # how long the client waits is not part of the question
    again = planner.post(
        "/what-if", params={"wait_s": 5}, json=body, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["run_id"] == first.json()["run_id"]
    other = planner.post(
        "/what-if", json={**body, "note": "other"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409
    # a POST /runs cannot pass for the what-if, nor the what-if for it
    assert planner.post("/runs", json=body, headers={"Idempotency-Key": key}).status_code == 409
    assert run_count(planner) == n


def test_bad_overrides_are_422_listing_every_problem_and_create_no_run(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    n = run_count(planner)
    bad = {
        "overrides": {
            "capacity_changes": [
                {"site": "atlantis"},
                {"site": "sh-east", "start": "2030-01-01T00:00:00+08:00"},
                {"site": "nx-west", "accelerator": "TPU-9"},
            ],
            "price_changes": [
                {"multiplier": -1},
                {"multiplier": 2, "zones": ["mars"], "sites": ["nx-west", "nowhere"]},
            ],
            "green_scaling": [{"multiplier": 1.3}, {"multiplier": -0.5}],
            "accelerator_mix": [
                {"from_accelerator": "H100", "to_accelerator": "TPU-9", "share": 0.3}
            ],
            "remove_jobs": ["finetune-1", "no-such-job"],
            "add_jobs": [
                batch_job("ok-job"),
                batch_job(
                    "bad-job",
                    accelerators="H999",
                    gang=-1,
                    deadline=DAY.format(0),
                    release=DAY.format(5),
                    colour="red",
                ),
                batch_job("train-llm-a"),  # already there
            ],
            "min_green_share": 2,
            "bogus": 1,
        },
        "settings": {"time_limit_s": 10**7},
    }
    r = planner.post("/what-if", json=bad)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_input"
    assert problem_columns(r) == {
        "settings.time_limit_s",
        "overrides.capacity_changes[0].site",
        "overrides.capacity_changes[1]",
        "overrides.capacity_changes[2].accelerator",
        "overrides.price_changes[0].multiplier",
        "overrides.price_changes[1].zones",
        "overrides.price_changes[1].sites",
        "overrides.green_scaling[1].multiplier",
        "overrides.accelerator_mix[0].to_accelerator",
        "overrides.remove_jobs[1]",
        "overrides.add_jobs[1].accelerators",
        "overrides.add_jobs[1].gang",
        "overrides.add_jobs[1].deadline",
        "overrides.add_jobs[1].colour",
        "overrides.add_jobs[2]",
        "overrides.min_green_share",
        "overrides.bogus",
    }
    messages = {p["column"]: p["message"] for p in r.json()["problems"]}
    assert messages["overrides.capacity_changes[0].site"] == "unknown site 'atlantis'"
    assert messages["overrides.price_changes[1].sites"] == "unknown site 'nowhere'"
    assert "duplicate key" in messages["overrides.add_jobs[2]"]
    # each alone is refused too, and a good part next to a bad one does not hide it
    for body in (
        {"overrides": {"green_scaling": [{"multiplier": -1}]}},
        {"overrides": {"capacity_changes": [{"site": "nx-west", "end": DAY.format(0)}]}},
        {"overrides": {"add_jobs": [{"job_id": "x"}]}},
        {"overrides": {"remove_jobs": ["nope"]}},
        {"base_plan_id": base["id"], "scenario_version_id": 1},
    ):
        r = planner.post("/what-if", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["problems"], body
    assert planner.post("/what-if", json={"base_plan_id": 10**6}).status_code == 404
    assert planner.post("/what-if", json={"scenario_version_id": 10**6}).status_code == 404
    r = planner.post("/what-if", params={"wait_s": 10**6}, json={})
    assert r.status_code == 422 and problem_columns(r) == {"wait_s"}
    assert run_count(planner) == n


def test_a_too_large_what_if_is_422_naming_the_limit(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    n = run_count(planner)
    many = [
        batch_job(f"many-{i}", gang=1, work_device_hours=1, deadline=DAY.format(1))
        for i in range(MAX_JOBS)
    ]
    r = planner.post("/what-if", json={"overrides": {"add_jobs": many}})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "problem_too_large"
    (problem,) = r.json()["problems"]
    assert "42 jobs" in problem["message"] and "whatif_max_jobs" in problem["message"]
    # few jobs, but each could run on every device type everywhere all day: the model is big
    wide = [batch_job(f"wide-{i}", accelerators="H100;A100;H20") for i in range(6)]
    r = planner.post("/what-if", json={"overrides": {"add_jobs": wide}})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert "model cells" in problem["message"] and "whatif_max_model_cells" in problem["message"]
    # one of them fits
    assert planner.post(
        "/what-if", params={"wait_s": 0}, json={"overrides": {"add_jobs": wide[:1]}}
    ).status_code in (200, 202)
    assert run_count(planner) == n + 1


def test_a_huge_add_jobs_list_is_413(server: LiveServer, planner: httpx.Client) -> None:
    n = run_count(planner)
    huge = [batch_job(f"huge-{i}") for i in range(server.settings.max_request_bytes // 200)]
    r = planner.post("/what-if", json={"overrides": {"add_jobs": huge}})
    assert r.status_code == 413, r.text[:500]
    assert r.json()["error"] == "payload_too_large"
    assert run_count(planner) == n


def test_roles(server: LiveServer, viewer: httpx.Client, base: dict[str, Any]) -> None:
    sweep = {"parameter": "carbon_price_cny_per_t", "values": [0, 100]}
    with server.client(None) as anon:
        assert anon.post("/what-if", json={}).status_code == 401
        assert anon.post("/what-if/sweep", json=sweep).status_code == 401
        assert anon.get("/what-if/sweeps").status_code == 401
    with server.client("viewer") as v:
        assert v.post("/what-if", json={}).status_code == 403
        assert v.post("/what-if/sweep", json=sweep).status_code == 403
        assert v.get("/what-if/sweeps").status_code == 200
        assert v.get("/what-if/sweep/999999").status_code == 404
        assert v.get("/what-if/999999").status_code == 404


# ----------------------------------------------------------------------------- sweeps
def wait_sweep(c: httpx.Client, sweep_id: int, timeout: float = 120.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        r = c.get(f"/what-if/sweep/{sweep_id}")
        assert r.status_code == 200, r.text
        return r.json() if r.json()["state"] != "running" else None

    out: dict[str, Any] = wait_until(finished, timeout=timeout, what=f"sweep {sweep_id} done")
    return out


def test_a_carbon_price_sweep_gives_the_curve(
    server: LiveServer, planner: httpx.Client, viewer: httpx.Client, base: dict[str, Any]
) -> None:
    prices = [400.0, 0.0, 100.0, 200.0]
    r = planner.post(
        "/what-if/sweep", json={"parameter": "carbon_price_cny_per_t", "values": prices}
    )
    assert r.status_code == 202, r.text
    sweep_id = r.json()["id"]
    assert r.headers["Location"] == f"/what-if/sweep/{sweep_id}"
    assert r.json()["state"] == "running" and len(r.json()["points"]) == 4
    out = wait_sweep(viewer, sweep_id)  # viewers read sweeps
    assert out["state"] == "done" and out["counts"] == {"succeeded": 4}
    assert (out["base_plan_id"], out["values"]) == (base["id"], sorted(prices))
    points = out["points"]
    assert [p["value"] for p in points] == sorted(prices)
    assert len({p["plan_id"] for p in points}) == 4
    for p in points:
        run = viewer.get(f"/runs/{p['run_id']}").json()
        assert (run["kind"], run["priority"]) == ("sweep_point", server.settings.sweep_priority)
        assert run["overrides"]["carbon_price_cny_per_t"] == p["value"]
        plan = viewer.get(f"/plans/{p['plan_id']}").json()
        assert (plan["kind"], plan["active"]) == ("sweep_point", False)
        assert p["emissions_t"] == plan["emissions_t"]
        assert p["emissions_location_t"] == plan["emissions_location_t"]
        assert p["carbon_cost"] == pytest.approx(p["value"] * p["emissions_t"], rel=1e-9)
        assert p["cost_excl_carbon"] == pytest.approx(p["objective"] - p["carbon_cost"])
    # a higher carbon price never raises contract-based emissions beyond what the gaps allow
    for i, low in enumerate(points):
        for high in points[i + 1 :]:
            slack = emissions_bound(low, high, low["value"], high["value"])
            assert high["emissions_t"] <= low["emissions_t"] + slack, (low, high)
    assert points[-1]["emissions_t"] < points[0]["emissions_t"]  # 400 CNY/t does cut them

    # Pareto flags: those of the service's own front over the points' numbers, and the
    # cheapest and the cleanest points are on it
    for key, emissions in (("pareto", "emissions_t"), ("pareto_location", "emissions_location_t")):
        xy = [(p["cost_excl_carbon"], p[emissions]) for p in points]
        assert [p[key] for p in points] == pareto_front(xy)
        cheapest = min(points, key=lambda p: (p["cost_excl_carbon"], p[emissions]))
        cleanest = min(points, key=lambda p: (p[emissions], p["cost_excl_carbon"]))
        assert cheapest[key] and cleanest[key]
    listed = viewer.get("/what-if/sweeps").json()
    item = next(i for i in listed["items"] if i["id"] == sweep_id)
    assert item["state"] == "done" and "points" not in item
    assert planner.get("/plans/active").json()["id"] == base["id"]


def test_a_sweep_beyond_the_queue_is_429_and_creates_nothing(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    slow = planner.post("/runs", json=slow_run_body())
    assert slow.status_code == 202, slow.text
    try:
        runs, sweeps = run_count(planner), planner.get("/what-if/sweeps").json()["total"]
        # one place taken: a sweep as long as the queue no longer fits
        full = {"parameter": "price_multiplier", "values": [1 + i / 10 for i in range(QUEUE_LIMIT)]}
        r = planner.post("/what-if/sweep", json=full)
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "queue_full" and int(r.headers["Retry-After"]) >= 1
        # longer than the queue itself: it would never fit, so it is refused outright
        r = planner.post("/what-if/sweep", json={**full, "values": [*full["values"], 9.0]})
        assert r.status_code == 422 and "queue_limit" in r.json()["problems"][0]["message"]
        for body, column in (
            ({"parameter": "min_green_share", "values": [0.1, 1.5]}, "values[1]"),
            ({"parameter": "green_scaling", "values": [1.0, -1.0]}, "values[1]"),
            ({"parameter": "carbon_price_cny_per_t", "values": [10, 20, 10]}, "values[2]"),
            (
                {
                    "parameter": "carbon_budget_t",
                    "values": [1.0],
                    "overrides": {"remove_jobs": ["nope"]},
                },
                "overrides.remove_jobs[0]",
            ),
        ):
            r = planner.post("/what-if/sweep", json=body)
            assert r.status_code == 422, (body, r.text)
            assert problem_columns(r) == {column}, r.text
        assert (
            planner.post("/what-if/sweep", json={"parameter": "wind", "values": [1.0]}).status_code
            == 422
        )
        assert run_count(planner) == runs
        assert planner.get("/what-if/sweeps").json()["total"] == sweeps
    finally:
        planner.delete(f"/runs/{slow.json()['id']}")
    assert wait_run(planner, slow.json()["id"], timeout=60)["state"] == "cancelled"


# ----------------------------------------------------------------------------- the path in
def counting(target: Any, name: str, calls: list[str]) -> Any:
    """Patch `target.name` with a wrapper that records each call in `calls`."""
    real: Callable[..., Any] = getattr(target, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    return mock.patch.object(target, name, wrapper)


def test_a_what_if_reads_and_applies_its_overrides_once(
    planner: httpx.Client, base: dict[str, Any]
) -> None:
    """The request path (in this process: the server runs in a thread; solves run in the
    pool's processes, which read the stored overrides once more)."""
    import service.runs
    import service.whatif.checks

    calls: list[str] = []
    with (
        counting(Overrides, "read", calls),
        counting(service.whatif.checks, "apply_overrides", calls),
        counting(service.runs, "apply_overrides", calls),
        counting(optimizer.whatif, "scenario_from_tables", calls),
    ):
        r = planner.post(
            "/what-if", params={"wait_s": 0}, json={"overrides": {"carbon_price_cny_per_t": 42}}
        )
        assert r.status_code in (200, 202), r.text
        # a table change goes through the loader's checks, once
        t = planner.post(
            "/what-if",
            params={"wait_s": 0},
            json={"overrides": {"green_scaling": [{"multiplier": 1.1}]}},
        )
        assert t.status_code in (200, 202), t.text
    assert calls == [
        "read",
        "apply_overrides",  # policy only: a dataclasses.replace, no load
        "read",
        "apply_overrides",
        "scenario_from_tables",
    ]
    for run_id in (r.json()["run_id"], t.json()["run_id"]):
        assert wait_run(planner, run_id)["state"] == "succeeded"
