"""The side-by-side table of workload statistics: greenopt's generators against the
published trace figures in data/workloads/trace_statistics.csv.

`python -m bench.workload_stats` prints the Markdown table kept in
data/workloads/SOURCES.md (regenerate it there when a generator changes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.generator import build_scenario
from optimizer.rules import work_in_horizon
from optimizer.scenario import Scenario, load_scenario
from service.settings import DEFAULT_SCENARIO_DIR  # trace-calibrated since issue 17

STATS = Path(__file__).resolve().parents[1] / "data" / "workloads" / "trace_statistics.csv"
START = "2025-07-15T00:00+08:00"  # the default scenario's start
GANG_EDGES = (1.5, 8.5, 64.5)  # classes 1 / 2-8 / 9-64 / >64
SHORT_H = 1.0
INFERENCE_SHARE_OF_JOB_FLEET = 0.73  # arrivals are counted per device of the job share
RUNS = (  # (label, hours, jobs, workload)
    (
        "generator default, 48 h x 300 jobs (the default scenario's until issue 17)",
        48,
        300,
        "default",
    ),
    ("generator default, 168 h x 3,000 jobs", 168, 3000, "default"),
    ("trace-calibrated, 48 h (rate-derived jobs)", 48, None, "trace-calibrated"),
    ("trace-calibrated, 168 h (rate-derived jobs)", 168, None, "trace-calibrated"),
)


def pct(parts: np.ndarray) -> str:
    return " / ".join(f"{100 * p / parts.sum():.0f}" if parts.sum() else "-" for p in parts)


def stats(sc: Scenario) -> dict[str, str]:
    """One table row of a generated scenario."""
    tp = {a.accelerator: a.relative_throughput for a in sc.accelerators}
    gang = np.array([j.gang for j in sc.jobs])
    work = np.array([j.work_device_hours for j in sc.jobs])
    run = work / gang / np.array([max(tp[a] for a in j.accelerators) for j in sc.jobs])
    cls = np.digitize(gang, GANG_EDGES)
    days = sc.hours / 24.0
    job_devices = sc.installed_devices.sum() * (1 - INFERENCE_SHARE_OF_JOB_FLEET)
    local = sc.timestamps.hour.to_numpy()
    released = np.array([j.release for j in sc.jobs if 0 < j.release < sc.hours], dtype=int)
    # per hour of day the arrivals over the hours that can have any: hour 0 is left out of
    # both (its jobs include the ones queued or running at the start)
    by_hour = np.bincount(local[released], minlength=24) / np.bincount(local[1:], minlength=24)
    # inference demand in reference device-hours: tokens over the best throughput per device
    best = np.array([max(s.throughput_tokens_per_s.values()) for s in sc.services])
    inf_h = sc.demand_tokens_per_s.sum(axis=1) / best[:, None]  # [service, hour]
    due = sum(work_in_horizon(sc, j) for j in sc.jobs)
    tiers = {}
    for prefix, label in (("ia", "interactive"), ("bi", "batch")):
        rows = [k for k, s in enumerate(sc.services) if s.service_id.startswith(prefix)]
        curve = inf_h[rows].sum(axis=0)
        tiers[label] = f"{curve.max() / max(curve.min(), 1e-9):.1f}"
    return {
        "jobs by gang 1 / 2-8 / 9-64 / >64 (%)": pct(np.bincount(cls, minlength=4).astype(float)),
        "device-h by gang class (%)": pct(np.bincount(cls, weights=gang * run, minlength=4)),
        "run time median / p90 / p99 (h)": " / ".join(
            f"{np.quantile(run, q):.3g}" for q in (0.5, 0.9, 0.99)
        ),
        "jobs < 1 h (%)": f"{100 * (run < SHORT_H).mean():.0f}",
        "jobs per 1,000 job devices per day": f"{len(sc.jobs) / (job_devices / 1000) / days:.0f}",
        "arrivals peak / trough by hour": f"{by_hour.max() / by_hour.min():.1f}"
        if released.size and by_hour.min() > 0
        else "no trough (an hour without arrivals)",
        "inference share of device demand (%)": f"{100 * inf_h.sum() / (inf_h.sum() + due):.0f}",
        "inference peak / trough: interactive, batch": f"{tiers['interactive']}, {tiers['batch']}",
    }


def trace_rows() -> list[tuple[str, dict[str, str]]]:
    """The traces' rows, from the cited figures."""
    df = pd.read_csv(STATS)
    out = []
    for trace, g in df.groupby("trace", sort=False):
        v = dict(zip(g["statistic"], g["value"].astype(str), strict=True))

        def join(*keys: str, v: dict[str, str] = v) -> str:
            return " / ".join(v.get(k, "-") for k in keys) if any(k in v for k in keys) else "-"

        row = {
            "jobs by gang 1 / 2-8 / 9-64 / >64 (%)": join(
                "jobs_gang_1", "jobs_gang_2_8", "jobs_gang_9_64", "jobs_gang_over_64"
            ),
            "device-h by gang class (%)": join(
                "devh_gang_1", "devh_gang_2_8", "devh_gang_9_64", "devh_gang_over_64"
            ),
            "run time median / p90 / p99 (h)": join("run_median_h", "run_p90_h", "run_p99_h"),
            "jobs < 1 h (%)": v.get("jobs_under_1h", "-"),
            "jobs per 1,000 job devices per day": v.get("jobs_per_kdevice_day", "-"),
            "arrivals peak / trough by hour": v.get("arrival_peak_to_trough_by_hour", "-"),
            "inference share of device demand (%)": v.get("inference_share_of_device_demand", "-"),
            "inference peak / trough: interactive, batch": _inference_cited(v),
        }
        if "mean_gang" in v:
            row["jobs by gang 1 / 2-8 / 9-64 / >64 (%)"] = f"mean gang {v['mean_gang']}"
        out.append((f"{trace} (cited)", row))
    return out


def _inference_cited(v: dict[str, str]) -> str:
    if "peak_to_trough" in v:
        return f"{v['peak_to_trough']}, -"
    if "gpu_instances_max" in v:
        return f"-, {float(v['gpu_instances_max']) / float(v['gpu_instances_min']):.2f}"
    return "-"


def main() -> None:
    rows = [
        (
            "the default scenario (data/scenarios/cn-edwc-48h: trace-calibrated, seed 2025)",
            stats(load_scenario(DEFAULT_SCENARIO_DIR)),
        )
    ]
    rows += [
        (label, stats(build_scenario("cn-edwc", START, hours, jobs, 30, 7, workload=wl)))
        for label, hours, jobs, wl in RUNS
    ] + trace_rows()
    cols = list(rows[0][1])
    print("| workload | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for label, r in rows:
        print(f"| {label} | " + " | ".join(r.get(c, "-") for c in cols) + " |")


if __name__ == "__main__":
    main()
