"""Write the small demo scenario (3 sites, 24 h) used by the tests and the examples.

Run: python data/build/demo.py [OUT_DIR]  (default: data/demo). Every figure here is an
illustrative assumption sized for a readable plan, not a measurement; the realistic world
is the cn-edwc region pack.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.scenario import scenario_from_tables, write_scenario

START = pd.Timestamp("2025-07-15T00:00:00+08:00")
HOURS = 24
TZ = "Asia/Shanghai"

EAST_TOU = {
    **{h: 0.4 for h in range(0, 7)},
    23: 0.4,
    **{h: 1.6 for h in (8, 9, 10, 17, 18, 19, 20, 21)},
}
WEST_TOU = {**{h: 0.5 for h in range(9, 17)}, **{h: 1.5 for h in (7, 8, 17, 18, 19, 20, 21, 22)}}


def diurnal(peak: float, floor: float, peak_hour: int) -> np.ndarray:
    h = np.arange(HOURS)
    return floor + (peak - floor) * 0.5 * (1 + np.cos(2 * np.pi * (h - peak_hour) / 24))


def solar(peak_mw: float) -> np.ndarray:
    h = np.arange(HOURS)
    return np.clip(peak_mw * np.sin(np.pi * (h - 6) / 13), 0.0, None)


def tables() -> tuple[dict, dict[str, pd.DataFrame]]:
    stamps = [(START + pd.Timedelta(hours=h)).isoformat() for h in range(HOURS)]
    sites = pd.DataFrame(
        [
            (
                "sh-east",
                "Shanghai East",
                "east",
                "shanghai",
                "cn-east",
                31.05,
                120.90,
                1.25,
                0.6,
                0,
                0,
                0.9,
                0.5,
                0.0,
            ),
            (
                "nx-west",
                "Ningxia West",
                "west",
                "ningxia",
                "cn-west",
                37.51,
                105.19,
                1.15,
                0.6,
                0.2,
                0.1,
                0.85,
                0.5,
                0.0,
            ),
            (
                "gz-west",
                "Guizhou West",
                "west",
                "guizhou",
                "cn-west",
                26.40,
                106.40,
                1.18,
                0.5,
                0,
                0,
                0.9,
                0.5,
                0.0,
            ),
        ],
        columns=[
            "site_id",
            "name",
            "hub",
            "zone",
            "residency_region",
            "lat",
            "lon",
            "pue",
            "grid_limit_mw",
            "battery_mwh",
            "battery_mw",
            "battery_efficiency",
            "battery_initial_soc",
            "min_green_share",
        ],
    )
    accelerators = pd.DataFrame(
        [("H100", 1.05, 0.25, 1.0), ("A100", 0.60, 0.15, 0.4), ("H20", 0.60, 0.15, 0.25)],
        columns=["accelerator", "busy_kw", "idle_kw", "relative_throughput"],
    )
    fleets = pd.DataFrame(
        [
            ("sh-east", "H100", 64),
            ("sh-east", "H20", 96),
            ("nx-west", "H100", 128),
            ("nx-west", "A100", 64),
            ("gz-west", "H100", 64),
            ("gz-west", "A100", 128),
        ],
        columns=["site_id", "accelerator", "devices"],
    )
    hours = np.arange(HOURS)
    series = []
    wind = 0.12 + 0.08 * np.cos(2 * np.pi * hours / 24)  # night-heavy wind
    for site, flat, tou, carbon, green, gprice in (
        ("sh-east", 650.0, EAST_TOU, 585.0, solar(0.02), 400.0),
        ("nx-west", 510.0, WEST_TOU, 642.0, wind + solar(0.10), 250.0),
        ("gz-west", 600.0, WEST_TOU, 499.0, np.full(HOURS, 0.05), 300.0),
    ):
        mult = np.array([tou.get(h, 1.0) for h in hours])
        series.append(
            pd.DataFrame(
                {
                    "site_id": site,
                    "timestamp": stamps,
                    "grid_price_cny_per_mwh": flat * mult,
                    "grid_carbon_kg_per_mwh": carbon,
                    "green_available_mw": np.round(green, 4),
                    "green_price_cny_per_mwh": gprice,
                }
            )
        )
    latency = pd.DataFrame(
        [
            ("sh-east", "east-users", 5),
            ("sh-east", "south-users", 30),
            ("nx-west", "east-users", 35),
            ("nx-west", "south-users", 45),
            ("gz-west", "east-users", 30),
            ("gz-west", "south-users", 20),
        ],
        columns=["site_id", "demand_region", "latency_ms"],
    )
    # where the users are, for maps only (the planner does not read it): the regions' cities
    demand_regions = pd.DataFrame(
        [
            ("east-users", "East (Shanghai)", 31.23, 121.47),
            ("south-users", "South (Guangzhou)", 23.13, 113.26),
        ],
        columns=["demand_region", "name", "lat", "lon"],
    )

    def at(h: int) -> str:
        return (START + pd.Timedelta(hours=h)).isoformat()

    jobs = pd.DataFrame(
        [
            (
                "train-llm-a",
                "training",
                "H100",
                32,
                320,
                at(0),
                at(24),
                True,
                "",
                "sh-east",
                2000,
                "",
                1,
                1,
                "",
            ),
            (
                "train-llm-b",
                "training",
                "H100;A100",
                16,
                160,
                at(0),
                at(20),
                False,
                "",
                "sh-east",
                500,
                "",
                1,
                1,
                "",
            ),
            (
                "finetune-1",
                "finetune",
                "H100",
                8,
                24,
                at(6),
                at(18),
                True,
                "",
                "sh-east",
                50,
                "",
                1,
                1,
                "",
            ),
            (
                "finetune-2",
                "finetune",
                "A100;H100",
                8,
                16,
                at(0),
                at(12),
                False,
                "",
                "nx-west",
                50,
                "",
                1,
                1,
                "",
            ),
            (
                "batch-embed",
                "batch",
                "H20;A100",
                4,
                20,
                at(0),
                at(24),
                True,
                "",
                "sh-east",
                20,
                "",
                1,
                1,
                "",
            ),
            (
                "batch-etl",
                "batch",
                "A100",
                8,
                12.8,
                at(2),
                at(22),
                True,
                "cn-west",
                "gz-west",
                100,
                "",
                1,
                1,
                "",
            ),
            (
                "train-resident",
                "training",
                "H100",
                16,
                96,
                at(0),
                at(24),
                True,
                "cn-east",
                "sh-east",
                300,
                "",
                1,
                2,
                "",
            ),
            (
                "running-1",
                "training",
                "H100",
                16,
                128,
                at(-5),
                at(24),
                True,
                "",
                "sh-east",
                800,
                "sh-east",
                1,
                1,
                "",
            ),
            (
                "running-2",
                "finetune",
                "H100",
                8,
                40,
                at(-2),
                at(16),
                False,
                "",
                "nx-west",
                40,
                "nx-west",
                1,
                1,
                "",
            ),
            (
                "urgent-eval",
                "batch",
                "H100",
                8,
                48,
                at(0),
                at(3),
                True,
                "",
                "sh-east",
                10,
                "",
                1,
                1,
                "",
            ),
            (
                "long-train",
                "training",
                "H100",
                64,
                3840,
                at(0),
                at(72),
                True,
                "",
                "sh-east",
                5000,
                "",
                2,
                1,
                "",
            ),
            (
                "batch-night",
                "batch",
                "A100;H100",
                16,
                32,
                at(18),
                at(24),
                True,
                "",
                "",
                0,
                "",
                1,
                1,
                "",
            ),
        ],
        columns=[
            "job_id",
            "kind",
            "accelerators",
            "gang",
            "work_device_hours",
            "release",
            "deadline",
            "preemptible",
            "allowed_regions",
            "data_origin_site",
            "data_gb",
            "current_site",
            "lost_hours_on_move",
            "priority",
            "unplaced_penalty_cny",
        ],
    )
    services = pd.DataFrame(
        [("chat-large", 25, ""), ("code-assist", 40, ""), ("batch-summarise", 200, "")],
        columns=["service_id", "latency_limit_ms", "unmet_penalty_cny_per_mtoken"],
    )
    throughput = pd.DataFrame(
        [
            ("chat-large", "H100", 2500),
            ("chat-large", "H20", 1500),
            ("code-assist", "H100", 3000),
            ("code-assist", "A100", 1200),
            ("batch-summarise", "H100", 4000),
            ("batch-summarise", "A100", 1600),
            ("batch-summarise", "H20", 2000),
        ],
        columns=["service_id", "accelerator", "tokens_per_s_per_device"],
    )
    demand = []
    for svc, region, peak, floor, ph in (
        ("chat-large", "east-users", 60000, 15000, 14),
        ("chat-large", "south-users", 30000, 8000, 15),
        ("code-assist", "east-users", 40000, 5000, 11),
        ("batch-summarise", "east-users", 20000, 20000, 0),
    ):
        demand.append(
            pd.DataFrame(
                {
                    "service_id": svc,
                    "demand_region": region,
                    "timestamp": stamps,
                    "tokens_per_s": np.round(diurnal(peak, floor, ph)),
                }
            )
        )
    manifest = {
        "name": "demo",
        "timezone": TZ,
        "start": START.isoformat(),
        "hours": HOURS,
        "description": "3 sites, 24 h: an expensive eastern site near users and two cheap, greener western sites.",
        "policy": {"carbon_price_cny_per_t": 0.0},
    }
    return manifest, {
        "sites": sites,
        "accelerators": accelerators,
        "fleets": fleets,
        "site_series": pd.concat(series, ignore_index=True),
        "latency": latency,
        "demand_regions": demand_regions,
        "jobs": jobs,
        "services": services,
        "service_throughput": throughput,
        "service_demand": pd.concat(demand, ignore_index=True),
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "demo"
    manifest, t = tables()
    sc = scenario_from_tables(manifest, t)
    write_scenario(sc, out)
    print(f"wrote {out} ({sc.fingerprint})")


if __name__ == "__main__":
    main()
