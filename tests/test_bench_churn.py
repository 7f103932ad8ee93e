"""bench.churn's figures on micro plans whose churn is worked out by hand (issue 12)."""

from __future__ import annotations

from bench.churn import churn, churn_cost_at, demand_following_starts
from tests.micro import scenario, site, solve

POLICY = {"unmet_penalty_cny_per_mtoken": 10000.0, "replica_warmup_min": 60.0}
SERVICE = {
    "services": [{"service_id": "s", "latency_limit_ms": 20}],
    "throughput": [{"service_id": "s", "accelerator": "G", "tokens_per_s_per_device": 400}],
}


def test_a_service_that_follows_its_demand_grows_by_its_starts() -> None:
    # demand 2, 1, 2 devices; stopping one in the dip saves 20 > its restart (15 CNY): the
    # plan's one start is the service growing back, the one a plan without idle devices needs
    sc = scenario(
        [site("A")], prices={"A": [100, 20, 100]}, policy=POLICY, **SERVICE,
        demand={("s", "R"): [800, 400, 800]}, latency={("A", "R"): 10},
    )  # fmt: skip
    got = churn(solve(sc), sc)
    assert (got["replica_starts"], got["replica_stops"], got["inference_changes"]) == (1, 1, 2)
    assert got["service_growth_starts"] == 1 and demand_following_starts(sc) == 1
    assert got["placements_started"] == 0 and got["pauses"] == 0


def test_a_service_that_moves_starts_devices_without_growing() -> None:
    # flat demand of one device; B is cheaper by 150 in hour 1, more than two starts (30): the
    # plan goes A, B, A. Two starts (B in hour 1, A again in hour 2), none of them growth
    sc = scenario(
        [site("A"), site("B")], prices={"A": [100, 100, 100], "B": [200, 50, 200]},
        policy=POLICY, **SERVICE, demand={("s", "R"): [400, 400, 400]},
        latency={("A", "R"): 10, ("B", "R"): 10},
    )  # fmt: skip
    plan = solve(sc)
    got = churn(plan, sc)
    assert (got["replica_starts"], got["service_growth_starts"]) == (2, 0)
    assert demand_following_starts(sc) == 0 and got["placements_started"] == 2
    assert churn_cost_at(plan, sc) == 30.0  # two starts at 15 CNY
