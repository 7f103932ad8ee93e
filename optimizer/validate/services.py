"""Check family `services` (inference): every flow comes from a site within the service's
latency limit of its region and flows never exceed demand; a site's flows are carried by
whole devices of types with throughput; served + unmet = demand per service-hour; the
service's workloads.csv row sums up its devices.

Leaves `Checker.services` (`ServiceFindings`): the flows, devices and unmet demand, for the
capacity and totals checks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from optimizer.scenario.types import Service
from optimizer.validate.state import (
    WHOLE_TOL,
    Checker,
    ServiceFindings,
    cell_bool,
    cell_list,
    fmt,
)

CHECK = "services"


def check(c: Checker) -> None:
    sc = c.sc
    K, R, S, A, H = len(sc.services), len(c.regions), len(sc.sites), len(sc.accelerators), c.H
    demand = np.asarray(sc.demand_tokens_per_s, dtype=float)
    c.services = ServiceFindings(
        np.zeros((K, R, S, H)), np.zeros((K, S, A, H), dtype=np.int64), demand.copy()
    )
    fl, asg = c.table("service_flows"), c.table("assignments")
    if fl is not None:
        flows(c, fl)
    if asg is not None:
        tokens = devices(c, asg)
        if fl is not None:
            carried_by_devices(c, tokens)
    if asg is not None and fl is not None:
        workload_rows(c)
    sh = c.table("service_hours")
    if sh is not None:
        service_hours(c, sh, flows_known=fl is not None)


def throughput(c: Checker) -> np.ndarray:
    """Tokens/s per device, [service, accelerator] (0: the type cannot serve it)."""
    tp = np.zeros((len(c.sc.services), len(c.sc.accelerators)))
    for kk, svc in enumerate(c.sc.services):
        for a_name, v in svc.throughput_tokens_per_s.items():
            if a_name in c.acc_pos:
                tp[kk, c.acc_pos[a_name]] = v
    return tp


# ------------------------------------------------------------------------------ flows
def flows(c: Checker, fl: pd.DataFrame) -> None:
    """service_flows.csv: latency and per-region demand."""
    res, sc = c.services, c.sc
    k_ = c.text(fl, "service_id")
    r_ = c.text(fl, "demand_region")
    s_ = c.text(fl, "site_id")
    t_ = c.num(fl, "tokens_per_s")
    h_ = c.row_hours("service_flows", fl)
    lat_col = c.num(fl, "latency_ms") if "latency_ms" in fl.columns else None
    c.count(CHECK, len(fl))
    seen: Counter[tuple[int, int, int, int]] = Counter()
    for i in range(len(fl)):
        k, r, s, h = (
            c.svc_pos.get(k_[i]),
            c.region_pos.get(r_[i]),
            c.site_pos.get(s_[i]),
            int(h_[i]),
        )
        if k is None or r is None or s is None:
            c.add(
                CHECK,
                "unknown",
                f"flow names unknown service/region/site {k_[i]!r}/{r_[i]!r}/{s_[i]!r}",
                table="service_flows",
            )
            continue
        if h < 0 or not np.isfinite(t_[i]):
            continue
        where = {"workload_id": k_[i], "site_id": s_[i], "hour": h}
        latency(c, sc.services[k], s_[i], r_[i], None if lat_col is None else lat_col[i], where)
        if t_[i] < -c.abs_tol:
            c.add(CHECK, "negative_flow", f"negative flow {t_[i]:g} tokens/s", **where)
        seen[(k, r, s, h)] += 1
        if seen[(k, r, s, h)] == 2:
            c.add(CHECK, "duplicate", f"flow {r_[i]} listed twice", **where)
        res.flows[k, r, s, h] += t_[i]
    over_served(c)


def latency(
    c: Checker,
    svc: Service,
    site_id: str,
    region: str,
    latency_column: float | None,
    where: dict[str, Any],
) -> None:
    """A flow comes from a site within the service's latency limit of its region (and an
    extra `latency_ms` column, where present, restates latency.csv)."""
    lat = c.sc.latency_ms.get((site_id, region))
    limit = svc.latency_limit_ms
    if lat is None:
        c.add(
            CHECK,
            "latency",
            f"serves {region} from a site with no latency entry for that region",
            **where,
        )
    elif lat > limit:
        c.add(
            CHECK,
            "latency",
            f"serves {region} at {lat:g} ms, beyond the service's {limit:g} ms limit",
            expected=limit,
            actual=lat,
            **where,
        )
    if lat is not None and latency_column is not None and not c.close(latency_column, lat):
        c.add(
            CHECK,
            "latency_column",
            f"latency_ms {fmt(latency_column)}, latency.csv says {lat:g}",
            **where,
        )


def over_served(c: Checker) -> None:
    """Per (service, region, hour), flows <= demand; what is left is unmet."""
    res = c.services
    demand = np.asarray(c.sc.demand_tokens_per_s, dtype=float)
    served_r = res.flows.sum(axis=2)  # [k, r, h]
    over = ~c.le(served_r, demand)
    for k, r, h in zip(*np.nonzero(over), strict=True):
        c.add(
            CHECK,
            "over_served",
            f"{served_r[k, r, h]:g} tokens/s served to {c.regions[r]}, demand is {demand[k, r, h]:g}",
            workload_id=c.sc.services[k].service_id,
            hour=h,
        )
    res.unmet = np.maximum(demand - served_r, 0.0)


# ------------------------------------------------------------------------------ devices
def devices(c: Checker, asg: pd.DataFrame) -> np.ndarray:
    """The services' rows of assignments.csv: whole devices of types with throughput, each
    (site, type, hour) once, tokens within the devices' throughput. Returns the tokens/s the
    rows carry, [service, site, hour]."""
    res, sc = c.services, c.sc
    tp = throughput(c)
    a_ids = c.text(asg, "workload_id")
    a_tok = c.num(asg, "tokens_per_s")
    # a workload id that is both a job and a service: rows with tokens_per_s are the service's
    rows = np.array(
        [
            i
            for i, (w, t) in enumerate(zip(a_ids, a_tok, strict=True))
            if w in c.svc_pos and (w not in c.job_pos or np.isfinite(t))
        ],
        dtype=np.int64,
    )
    a_site = c.text(asg, "site_id")
    a_acc = c.text(asg, "accelerator")
    a_dev = c.num(asg, "devices")
    a_hour = c.row_hours("assignments", asg)
    c.count(CHECK, rows.size)
    tokens = np.zeros((len(sc.services), len(sc.sites), c.H))
    seen: Counter[tuple[int, int, int, int]] = Counter()
    for i in rows:
        k, s, a, h = (
            c.svc_pos[a_ids[i]],
            c.site_pos.get(a_site[i]),
            c.acc_pos.get(a_acc[i]),
            int(a_hour[i]),
        )
        where = {
            "workload_id": a_ids[i],
            "site_id": a_site[i],
            "accelerator": a_acc[i],
            "hour": h if h >= 0 else None,
        }
        if s is None or a is None:
            c.add(
                CHECK,
                "unknown",
                "assignment names an unknown site or accelerator",
                table="assignments",
                **where,
            )
            continue
        if h < 0:
            continue
        n = a_dev[i]
        if not np.isfinite(n) or n < 0 or abs(n - round(n)) > WHOLE_TOL:
            c.add(CHECK, "devices", f"devices {fmt(n)} is not a non-negative whole number", **where)
            continue
        if tp[k, a] <= 0:
            c.add(CHECK, "accelerator", f"{a_acc[i]} has no throughput for this service", **where)
        seen[(k, s, a, h)] += 1
        if seen[(k, s, a, h)] == 2:
            c.add(
                CHECK,
                "duplicate",
                "service devices listed twice for one site, type and hour",
                **where,
            )
        res.devices[k, s, a, h] += int(round(n))
        t = a_tok[i]
        if not np.isfinite(t):
            c.add(CHECK, "tokens_per_s", "service assignment without tokens_per_s", **where)
            continue
        if t < -c.abs_tol or not c.le(t, n * tp[k, a]):
            c.add(
                CHECK,
                "throughput",
                f"{t:g} tokens/s on {n:g} {a_acc[i]} (at most {n * tp[k, a]:g})",
                **where,
            )
        tokens[k, s, h] += t
    return tokens


def carried_by_devices(c: Checker, tokens: np.ndarray) -> None:
    """Per (service, site, hour), the flows from the site <= its devices x the types'
    throughput, and they equal the tokens its assignment rows carry."""
    res, sc = c.services, c.sc
    cap_tok = np.einsum("ksah,ka->ksh", res.devices, throughput(c))
    from_site = res.flows.sum(axis=1)  # [k, s, h]
    for k, s, h in zip(*np.nonzero(~c.le(from_site, cap_tok)), strict=True):
        c.add(
            CHECK,
            "throughput",
            f"{from_site[k, s, h]:g} tokens/s served from {c.site_ids[s]}, its devices give {cap_tok[k, s, h]:g}",
            workload_id=sc.services[k].service_id,
            site_id=c.site_ids[s],
            hour=h,
            expected=cap_tok[k, s, h],
            actual=from_site[k, s, h],
        )
    for k, s, h in zip(*np.nonzero(~c.close(tokens, from_site)), strict=True):
        c.add(
            CHECK,
            "tokens_split",
            f"assignments carry {tokens[k, s, h]:g} tokens/s, service_flows {from_site[k, s, h]:g}",
            workload_id=sc.services[k].service_id,
            site_id=c.site_ids[s],
            hour=h,
        )


# ------------------------------------------------------------------------------ workloads.csv
def workload_rows(c: Checker) -> None:
    """A service's workloads.csv row sums up its devices (extras checked where present)."""
    wl = c.table("workloads")
    if wl is None:
        return
    ids = c.text(wl, "workload_id")
    kinds = c.text(wl, "kind")
    status = c.text(wl, "status")
    row_of = {w: i for i, w in enumerate(ids) if kinds[i] == "inference"}
    per_hour = c.services.devices.sum(axis=(1, 2))  # [k, h]
    served = c.services.flows.sum(axis=(1, 2))  # [k, h]
    for k, svc in enumerate(c.sc.services):
        r = row_of.get(svc.service_id)
        if r is None:
            continue  # reported by the job check
        row_numbers(c, svc, wl, r, per_hour[k])
        row_flags(c, svc, wl, r)
        row_sets(c, k, svc, wl, r)
        row_window(c, svc, wl, r)
        row_status(c, k, svc, status[r], served[k])


def row_numbers(c: Checker, svc: Service, wl: pd.DataFrame, r: int, per_hour: np.ndarray) -> None:
    """devices (peak), work and run hours sum up the service's devices per hour; no moving
    costs."""
    want: dict[str, float] = {
        "devices": float(per_hour.max()) if per_hour.size else 0.0,
        "work_device_hours": float(per_hour.sum()),
        "work_in_horizon_device_hours": float(per_hour.sum()),
        "run_hours": float(np.count_nonzero(per_hour)),
        "migration_cost": 0.0,
        "data_transfer_cost": 0.0,
    }
    for col, v in want.items():
        if col not in wl.columns:
            continue
        given = float(c.num(wl, col)[r])
        if given != v:
            c.add(
                CHECK,
                "description",
                f"{col} {fmt(given)}, its assignments give {v:g}",
                workload_id=svc.service_id,
                table="workloads",
                expected=v,
                actual=given,
            )


def row_flags(c: Checker, svc: Service, wl: pd.DataFrame, r: int) -> None:
    """A service is neither moved nor preempted."""
    for col in ("moved", "preemptible"):
        if col in wl.columns and cell_bool(wl[col].iloc[r]) is not False:
            c.add(
                CHECK,
                "description",
                f"{col} {wl[col].iloc[r]!r}: a service is neither moved nor preempted",
                workload_id=svc.service_id,
                table="workloads",
            )


def reachable_sites(c: Checker, k: int, svc: Service) -> set[str]:
    """Sites within the latency limit of a region with demand, with a type that serves it."""
    demand = np.asarray(c.sc.demand_tokens_per_s, dtype=float)
    return {
        site_id
        for (site_id, region), ms in c.sc.latency_ms.items()
        if ms <= svc.latency_limit_ms
        and region in c.region_pos
        and demand[k, c.region_pos[region]].sum() > 0
        and site_id in c.site_pos
        and any(
            a in c.acc_pos and c.installed[c.site_pos[site_id], c.acc_pos[a]] > 0
            for a in svc.throughput_tokens_per_s
        )
    }


def row_sets(c: Checker, k: int, svc: Service, wl: pd.DataFrame, r: int) -> None:
    """site_id, accelerator, allowed_sites and current_site list what the service uses and
    may reach."""
    dev = c.services.devices[k]
    used_sites = {c.site_ids[x] for x in np.flatnonzero(dev.sum(axis=(1, 2)))}
    used_accs = {c.acc_names[x] for x in np.flatnonzero(dev.sum(axis=(0, 2)))}
    sets = {
        "site_id": used_sites,
        "accelerator": used_accs or set(svc.throughput_tokens_per_s),
        "allowed_sites": reachable_sites(c, k, svc),
        "current_site": set(),
    }
    for col, want_set in sets.items():
        given_set = set(cell_list(wl[col].iloc[r]))
        if given_set != want_set:
            c.add(
                CHECK,
                "description",
                f"{col} {';'.join(sorted(given_set))!r}, expected {';'.join(sorted(want_set))!r}",
                workload_id=svc.service_id,
                table="workloads",
            )


def row_window(c: Checker, svc: Service, wl: pd.DataFrame, r: int) -> None:
    """release and deadline span the horizon."""
    window = c.parse_hours(
        "workloads",
        [wl["release"].iloc[r], wl["deadline"].iloc[r]],
        "release/deadline",
        in_horizon=False,
    )
    if not (np.isnan(window).any() or (window[0] == 0 and window[1] == c.H)):
        c.add(
            CHECK,
            "description",
            f"release/deadline must span the horizon [0, {c.H}), got hours {window[0]:g}, {window[1]:g}",
            workload_id=svc.service_id,
            table="workloads",
        )


def row_status(c: Checker, k: int, svc: Service, status: str, served: np.ndarray) -> None:
    """placed if it serves anything (or has no demand), else unplaced."""
    demand = np.asarray(c.sc.demand_tokens_per_s, dtype=float)
    placed = served.sum() > c.abs_tol or demand[k].sum() == 0
    if status != ("placed" if placed else "unplaced"):
        c.add(
            CHECK,
            "status",
            f"status {status!r}, but it serves {served.sum():g} tokens/s-hours",
            workload_id=svc.service_id,
            table="workloads",
        )


# ------------------------------------------------------------------------------ service_hours.csv
def service_hours(c: Checker, sh: pd.DataFrame, *, flows_known: bool) -> None:
    """Every service-hour once: demand as the scenario's, served + unmet = demand, both
    matching the flows (when service_flows.csv is usable)."""
    sc = c.sc
    k_ = c.text(sh, "service_id")
    h_ = c.row_hours("service_hours", sh)
    given = np.stack(
        [
            c.num(sh, col)
            for col in ("demand_tokens_per_s", "served_tokens_per_s", "unmet_tokens_per_s")
        ],
        axis=1,
    )
    c.count(CHECK, len(sh))
    got = np.zeros((len(sc.services), c.H), dtype=np.int64)
    dem = np.asarray(sc.demand_tokens_per_s, dtype=float).sum(axis=1)
    unmet = c.services.unmet.sum(axis=1)
    want = np.stack([dem, dem - unmet, unmet], axis=2)  # [k, h, (demand, served, unmet)]
    for i in range(len(sh)):
        k, h = c.svc_pos.get(k_[i]), int(h_[i])
        if k is None:
            c.add(
                CHECK,
                "unknown",
                f"service_hours names unknown service {k_[i]!r}",
                table="service_hours",
            )
            continue
        if h < 0:
            continue
        got[k, h] += 1
        where = {"workload_id": k_[i], "hour": h, "table": "service_hours"}
        service_hour(c, given[i], want[k, h], flows_known, where)
    for k, h in zip(*np.nonzero(got != 1), strict=True):
        what = "missing" if got[k, h] == 0 else f"listed {got[k, h]} times"
        c.add(
            CHECK,
            "service_hour_rows",
            f"service hour {what} in service_hours.csv",
            workload_id=sc.services[k].service_id,
            hour=h,
        )


def service_hour(
    c: Checker, given: np.ndarray, want: np.ndarray, flows_known: bool, where: dict[str, Any]
) -> None:
    """One row of service_hours.csv: `given` and `want` are (demand, served, unmet) tokens/s,
    as the row says and as recomputed."""
    d, s, u = given
    dem, served, unmet = want
    if not c.close(d, dem):
        c.add(
            CHECK,
            "demand",
            f"demand {fmt(d)} tokens/s, the scenario says {dem:g}",
            expected=dem,
            actual=d,
            **where,
        )
    if not c.close(s + u, d):
        c.add(CHECK, "balance", f"served {fmt(s)} + unmet {fmt(u)} != demand {fmt(d)}", **where)
    if not flows_known:
        return
    if not c.close(s, served):
        c.add(
            CHECK,
            "served",
            f"served {fmt(s)} tokens/s, the flows serve {served:g}",
            expected=served,
            actual=s,
            **where,
        )
    if not c.close(u, unmet):
        c.add(
            CHECK,
            "unmet",
            f"unmet {fmt(u)} tokens/s, recomputed {unmet:g}",
            expected=unmet,
            actual=u,
            **where,
        )
