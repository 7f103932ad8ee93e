"""A job workload calibrated to published GPU-cluster trace statistics, and inference
demand shapes after published inference traces: `build_scenario(..., workload=
"trace-calibrated")`. Every figure is in `data/workloads/trace_statistics.csv` with its
source (a test keeps the constants here equal to it); the rest is marked assumption.

Calibration (Alibaba spot-GPU 2026 unless said): the gang mix by job count, then run times
from the trace's quantiles (median 0.34 h, p90 12.7 h, p99 1,573 h: many short jobs and a
long tail), each gang class's run times scaled so its share of device-hours matches the
trace's; arrivals at the trace's rate per device of the fleet's job share (inference keeps
~73 % of device demand, as in the default world), shaped by hour of day within the traces'
2-4x peak-to-trough. Inference: interactive generative tiers swing with business hours
(a generative-AI request trace: ~85x peak to trough); batch serving is flat (a
recommendation-serving fleet: 3,076-3,395 GPU instances over 31 days, +-5 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from optimizer.generator import _World

WORKLOADS = ("default", "trace-calibrated")
"""Workloads `build_scenario` can generate."""

SOURCE = "data/workloads/trace_statistics.csv"


# --- gang mix (alibaba-spot-gpu-2026 jobs_gang_* and devh_gang_*) ---------------------------
@dataclass(frozen=True)
class GangClass:
    name: str
    sizes: tuple[int, ...]  # drawn uniformly: powers of two within the class
    job_share: float  # share of jobs, %
    device_hour_share: float  # share of device-hours, %
    kind: str  # assumption: the bigger the gang, the more likely pre-training


GANG_CLASSES = (
    GangClass("1", (1,), 71.0, 55.0, "batch"),
    GangClass("2-8", (2, 4, 8), 23.0, 18.0, "finetune"),
    GangClass("9-64", (16, 32, 64), 5.0, 10.0, "training"),
    GangClass(">64", (128, 256, 512, 1024, 2048), 0.9, 18.0, "training"),
)
# --- run time (alibaba-spot-gpu-2026 run_*_h, jobs_under_1h): inverse CDF, log-linear
# between these (quantile, hours) points; the ends are assumptions (a one-minute floor, a
# ceiling at the trace's half-year span)
RUN_TIME_QUANTILES_H = (
    (0.0, 1.0 / 60.0),
    (0.50, 0.34),
    (0.72, 1.0),
    (0.90, 12.7),
    (0.99, 1573.0),
    (1.0, 4000.0),
)
# --- arrivals (alibaba-spot-gpu-2026 jobs_per_kdevice_day) per 1,000 devices of the fleet's
# job share (1 - INFERENCE_SHARE): the traces' clusters run jobs only
ARRIVALS_PER_KDEVICE_DAY = 218.0
# submissions by local hour: a raised cosine peaking mid-afternoon with peak/trough 3, inside
# the traces' 2-4x (traces arrival_peak_to_trough_by_hour); the peak hour is an assumption
ARRIVAL_PEAK_TO_TROUGH = 3.0
ARRIVAL_PEAK_HOUR = 15
WEEKEND_ARRIVAL_FACTOR = 0.6  # assumption: no weekday figure was found in the summaries
# --- deadlines and the rest of a job (assumptions, as in optimizer.generator) -----------------
SLACK_MIN, SLACK_SCALE = 1.5, 1.0  # deadline = release + run time x (min + exponential(scale))
NON_PREEMPTIBLE_SHARE = 0.2
DATA_GB_PER_DEVICE = 25.0
# --- inference shapes ---------------------------------------------------------------------------
GENAI_PEAK_TO_TROUGH = 85.0  # generative-ai-requests peak_to_trough
GENAI_BUSINESS_HOURS = (9, 18)  # local; assumption: the swing follows office hours
FLAT_SERVING_SPREAD = (3395.0 - 3076.0) / (3395.0 + 3076.0)  # +-4.9 %: recommendation serving


def run_time_h(u: np.ndarray) -> np.ndarray:
    """Run times (h) at uniform quantiles `u`, log-linear between the trace's quantiles."""
    q = np.array([p for p, _ in RUN_TIME_QUANTILES_H])
    logh = np.log([h for _, h in RUN_TIME_QUANTILES_H])
    return np.exp(np.interp(u, q, logh))


def arrival_weight(local_hour: np.ndarray, dayofweek: np.ndarray) -> np.ndarray:
    """Relative submissions per hour: peak/trough `ARRIVAL_PEAK_TO_TROUGH` by hour of day,
    less at weekends."""
    a = (ARRIVAL_PEAK_TO_TROUGH - 1) / (ARRIVAL_PEAK_TO_TROUGH + 1)
    day = 1.0 + a * np.cos(2 * np.pi * (local_hour - ARRIVAL_PEAK_HOUR) / 24.0)
    return day * np.where(dayofweek >= 5, WEEKEND_ARRIVAL_FACTOR, 1.0)


def service_shape(flat: bool, local_hour: np.ndarray) -> np.ndarray:
    """Relative hourly demand of an inference tier: flat batch serving within
    +-`FLAT_SERVING_SPREAD`, or an interactive generative service swinging
    `GENAI_PEAK_TO_TROUGH`-fold with business hours."""
    if flat:
        return 1.0 + FLAT_SERVING_SPREAD * np.sin(2 * np.pi * local_hour / 24.0)
    lo, hi = GENAI_BUSINESS_HOURS
    centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
    bump = np.clip(np.cos(np.pi / 2 * (local_hour - centre) / half), 0.0, 1.0)
    return 1.0 / GENAI_PEAK_TO_TROUGH + (1.0 - 1.0 / GENAI_PEAK_TO_TROUGH) * bump


def default_job_count(w: _World, inference_share: float) -> int:
    """Jobs the trace's arrival rate gives over the horizon on the fleet's job share."""
    devices = float(w.devices.sum()) * (1.0 - inference_share)
    return int(round(ARRIVALS_PER_KDEVICE_DAY * devices / 1000.0 * w.hours / 24.0))


def trace_jobs(w: _World, rng: np.random.Generator, n_jobs: int) -> tuple[pd.DataFrame, float]:
    """`n_jobs` jobs drawn to the trace statistics (columns as optimizer.generator's jobs),
    and their reference device-hours due within the horizon."""
    from optimizer.generator import (
        ACCELERATOR_SET_PROBS,
        _accelerator_set,
        _choice,
        work_in_horizon,
    )

    H = w.hours
    shares = np.array([c.job_share for c in GANG_CLASSES])
    cls = rng.choice(len(GANG_CLASSES), size=n_jobs, p=shares / shares.sum())
    gang = np.array([int(rng.choice(GANG_CLASSES[c].sizes)) for c in cls])
    run = run_time_h(rng.random(n_jobs))
    # scale each class's run times so the classes split device-hours as in the trace (the
    # single-device class, most of the jobs and the quantiles, keeps its drawn run times)
    dev_h = np.bincount(cls, weights=gang * run, minlength=len(GANG_CLASSES))
    target = np.array([c.device_hour_share for c in GANG_CLASSES])
    base = next(i for i, c in enumerate(GANG_CLASSES) if c.sizes == (1,))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(dev_h > 0, target / target[base] * dev_h[base] / dev_h, 1.0)
    run = np.clip(run * factor[cls], RUN_TIME_QUANTILES_H[0][1], RUN_TIME_QUANTILES_H[-1][1])
    stamps = w.stamps.tz_convert(w.pack.timezone)
    weight = arrival_weight(w.local_hour, stamps.dayofweek.to_numpy())
    release = np.sort(rng.choice(H, size=n_jobs, p=weight / weight.sum()))
    site_ids = w.sites["site_id"].astype(str).to_numpy()
    origin_p = w.sites["data_origin_weight"].to_numpy(dtype=float)
    origin_p = origin_p / origin_p.sum()
    rows = []
    due = 0.0
    for i in range(n_jobs):
        kind = GANG_CLASSES[cls[i]].kind
        accs = _accelerator_set(w, _choice(rng, ACCELERATOR_SET_PROBS[kind]), rng)
        slack = SLACK_MIN + float(rng.exponential(SLACK_SCALE))
        window = max(1, math.ceil(run[i] * slack - 1e-9))
        work = round(float(gang[i] * run[i] * w.rel_train[accs].max()), 4)
        due += work_in_horizon(work, int(release[i]), int(release[i]) + window, H)
        rows.append(
            {
                "job_id": f"tj-{i + 1:06d}",
                "kind": kind,
                "accelerators": ";".join(w.accels[a] for a in accs),
                "gang": int(gang[i]),
                # run time is wall-clock on the fastest accepted type, as in the traces
                "work_device_hours": work,
                "release": (w.stamps[0] + pd.Timedelta(hours=int(release[i]))).isoformat(),
                "deadline": (
                    w.stamps[0] + pd.Timedelta(hours=int(release[i]) + window)
                ).isoformat(),
                "preemptible": "false" if rng.random() < NON_PREEMPTIBLE_SHARE else "true",
                "data_origin_site": site_ids[int(rng.choice(len(site_ids), p=origin_p))],
                "data_gb": round(DATA_GB_PER_DEVICE * float(gang[i]), 1),
            }
        )
    return pd.DataFrame(rows), due
