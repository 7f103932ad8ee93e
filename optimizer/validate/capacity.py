"""Check family `capacity`: busy devices (jobs' gangs + inference devices, from
assignments.csv) per (site, type, hour) within floor(installed x available_fraction), and
site_hour_devices.csv agreeing with them row by row.

Leaves `Checker.busy`, [site, accelerator, hour], for the power check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.validate.state import Checker, fmt

CHECK = "capacity"


def check(c: Checker) -> None:
    c.busy = c.jobs.busy + c.services.devices.sum(axis=0)
    if not c.usable("assignments"):
        return  # what is busy is unknown (reported); do not cascade
    device_capacity(c)
    df = c.table("site_hour_devices")
    if df is not None:
        device_rows(c, df)


def device_capacity(c: Checker) -> None:
    """Busy devices <= available devices, per (site, type, hour)."""
    busy, cap = c.busy, c.capacity
    c.count(CHECK, busy.size)
    for s, a, h in zip(*np.nonzero(busy > cap), strict=True):
        c.add(
            CHECK,
            "device_capacity",
            f"{busy[s, a, h]} {c.acc_names[a]} busy, {cap[s, a, h]} available (floor(installed {c.installed[s, a]} x availability))",
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=h,
            expected=int(cap[s, a, h]),
            actual=int(busy[s, a, h]),
        )


def device_rows(c: Checker, df: pd.DataFrame) -> None:
    """site_hour_devices.csv: one row per installed (site, type, hour), restating capacity,
    busy devices and their power."""
    s_ = c.text(df, "site_id")
    a_ = c.text(df, "accelerator")
    h_ = c.row_hours("site_hour_devices", df)
    si = np.array([c.site_pos.get(x, -1) for x in s_], dtype=np.int64)
    ai = np.array([c.acc_pos.get(x, -1) for x in a_], dtype=np.int64)
    for i in np.flatnonzero((si < 0) | (ai < 0)):
        c.add(
            CHECK,
            "unknown",
            f"row for unknown site/accelerator {s_[i]!r}/{a_[i]!r}",
            table="site_hour_devices",
        )
    rows = np.flatnonzero((si >= 0) & (ai >= 0) & (h_ >= 0))
    si, ai, hi = si[rows], ai[rows], h_[rows]
    got = np.zeros(c.busy.shape, dtype=np.int64)
    np.add.at(got, (si, ai, hi), 1)
    b, k = c.busy[si, ai, hi].astype(float), c.capacity[si, ai, hi].astype(float)
    want = {
        "capacity": k,
        "busy": b,
        "busy_power_kw": b * c.busy_kw[ai],
        "idle_power_kw": (k - b) * c.idle_kw[ai],
    }
    for col, v in want.items():
        given = c.num(df, col)[rows]
        bad = (given != v) if col in ("capacity", "busy") else ~c.close(given, v)
        for n in np.flatnonzero(bad):
            c.add(
                CHECK,
                f"{col}_column",
                f"{col} {fmt(given[n])}, recomputed {v[n]:g}",
                site_id=c.site_ids[si[n]],
                accelerator=c.acc_names[ai[n]],
                hour=int(hi[n]),
                table="site_hour_devices",
                expected=float(v[n]),
                actual=float(given[n]),
            )
    for s, a, h in zip(*np.nonzero((c.installed[:, :, None] > 0) & (got == 0)), strict=True):
        c.add(
            CHECK,
            "device_rows",
            "installed site/type hour missing from site_hour_devices.csv",
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=h,
        )
    for s, a, h in zip(*np.nonzero(got > 1), strict=True):
        c.add(
            CHECK,
            "device_rows",
            f"listed {got[s, a, h]} times in site_hour_devices.csv",
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=h,
        )
