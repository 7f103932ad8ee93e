"""A bound from row duals of an LP solved before: a warm re-solve's bound before its own LP.

For any multipliers y of the pricing LP's rows (lo <= A x <= hi, lb <= x <= ub), its
Lagrangian

    L(y) = sum_i min(y_i lo_i, y_i hi_i) + sum_j min(rc_j lb_j, rc_j ub_j),   rc = c - A^T y

is at most the LP's optimum (weak duality: every x in the box meeting the rows costs at
least L(y)), so it bounds the MILP as the LP's value does. A term with an infinite bound
counts only where its coefficient is zero: y_i is taken as 0 where the side it needs is
infinite, and a column with a negative reduced cost and no finite upper bound takes the
bound one row implies (the row's other columns at their bounds); where none does, there
is no bound (None). The job options left out of the LP add sum_j min(0, min_e rc_e), rc_e
priced by `pricing.reduced_costs` from the same y (`pricing.lagrangian_bound`: each job
takes at most one of them, a row of the LP kept out of the Lagrangian).

A warm re-solve evaluates L at the previous solve's duals (`keyed`, kept in the plan's
`pricing_duals` table), mapped onto the new LP row by row by what the row is about
(`row_index`: its block and its index as ids and timestamps, so a plan made on an earlier
version of the scenario maps onto the new horizon). No choice of y makes the bound
invalid; a y that fits the new data badly only makes it weak, and the planner keeps the
best bound it has. With the data unchanged it is the previous LP's own bound (within the
duals' rounding in the bundle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from optimizer.contract import PRICING_DUALS
from optimizer.model import pricing
from optimizer.model.core import LinearModel
from optimizer.model.sets import JobOptions
from optimizer.scenario.types import Scenario

CONSTRAINT, INDEX, DUAL = PRICING_DUALS.names


def row_index(m: LinearModel, sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `m`: its block's name and its index as text (the index names sorted, each
    value by id: a site's and a job's id, the type's name, an hour's UTC timestamp, an
    option as its job, site and type; other indices as numbers)."""
    assign = m.vars["v_assign"]
    jobs = np.array([j.job_id for j in sc.jobs], dtype=object)
    sites = np.array(sc.site_ids, dtype=object)
    accs = np.array(sc.accelerator_names, dtype=object)
    stamps = np.array([t.isoformat() for t in sc.timestamps.tz_convert("UTC")], dtype=object)
    option = (
        jobs[assign.index["job"]]
        + "/"
        + sites[assign.index["site"]]
        + "/"
        + accs[assign.index["accelerator"]]
    )
    region = np.array(sc.demand_regions, dtype=object)
    by_name = {
        "job": jobs,
        "site": sites,
        "accelerator": accs,
        "hour": stamps,
        "option": option,
        "region": region,
    }
    names, texts = [], []
    for block in m.cons.values():
        parts = []
        for key in sorted(block.index):
            values = np.asarray(block.index[key])
            table = by_name.get(key)
            shown = table[values] if table is not None else values.astype(str).astype(object)
            parts.append(key + "=" + shown)
        text = parts[0] if parts else np.full(block.size, "", dtype=object)
        for p in parts[1:]:
            text = text + ";" + p
        names.append(np.full(block.size, block.name, dtype=object))
        texts.append(np.asarray(text, dtype=object))
    if not names:
        return np.array([], dtype=object), np.array([], dtype=object)
    return np.concatenate(names), np.concatenate(texts)


def keyed(m: LinearModel, sc: Scenario, row_dual: np.ndarray) -> pd.DataFrame:
    """The `pricing_duals` table of `m`'s row duals (rows whose dual is 0 left out: a row
    not in the table is taken at 0)."""
    names, texts = row_index(m, sc)
    keep = np.flatnonzero(np.asarray(row_dual) != 0.0)
    return pd.DataFrame(
        {CONSTRAINT: names[keep], INDEX: texts[keep], DUAL: np.asarray(row_dual, float)[keep]}
    )


def duals_on(m: LinearModel, sc: Scenario, table: pd.DataFrame) -> tuple[np.ndarray, int]:
    """`table`'s duals on the rows of `m` (0 where a row is not in it), and how many rows
    found theirs."""
    names, texts = row_index(m, sc)
    rows = pd.MultiIndex.from_arrays([names, texts])
    given = pd.Series(
        table[DUAL].to_numpy(float),
        index=pd.MultiIndex.from_arrays([table[CONSTRAINT].astype(str), table[INDEX].astype(str)]),
    )
    given = given[~given.index.duplicated()]
    y = given.reindex(rows).to_numpy(float)
    found = np.isfinite(y)
    return np.where(found, y, 0.0), int(found.sum())


def implied_upper(
    csc: sp.csc_array,
    csr: sp.csr_array,
    bounds: tuple[np.ndarray, np.ndarray],
    sides: tuple[np.ndarray, np.ndarray],
    j: int,
) -> float:
    """The least upper bound on column j that one row of lo <= A x <= hi implies, its other
    columns within lb..ub (`bounds`) (inf: none does)."""
    (lb, ub), (lo, hi) = bounds, sides
    best = np.inf
    at = slice(csc.indptr[j], csc.indptr[j + 1])
    for i, a in zip(csc.indices[at], csc.data[at], strict=True):
        row = slice(csr.indptr[i], csr.indptr[i + 1])
        cols, vals = csr.indices[row], csr.data[row]
        other = cols != j
        cols, vals = cols[other], vals[other]
        least = np.where(vals > 0, vals * lb[cols], vals * ub[cols])  # the others' least
        most = np.where(vals > 0, vals * ub[cols], vals * lb[cols])  # ... and most
        if a > 0 and np.isfinite(hi[i]) and np.all(np.isfinite(least)):
            best = min(best, (hi[i] - least.sum()) / a)
        if a < 0 and np.isfinite(lo[i]) and np.all(np.isfinite(most)):
            best = min(best, (most.sum() - lo[i]) / -a)
    return float(best)


def usable(m: LinearModel, y: np.ndarray) -> np.ndarray:
    """`y` with 0 wherever the row side its sign needs is infinite (a positive dual needs a
    finite lower side, a negative one a finite upper side)."""
    lo, hi = m.row_bounds()
    y = np.where((y > 0) & ~np.isfinite(lo), 0.0, y)
    return np.where((y < 0) & ~np.isfinite(hi), 0.0, y)


def lagrangian(m: LinearModel, y: np.ndarray) -> tuple[float | None, dict[str, Any]]:
    """L(y) of `m` as an LP (integrality dropped, the model's own bounds), y taken as
    `usable`, or None where a column with a negative reduced cost has no finite upper
    bound, given or implied."""
    lo, hi = m.row_bounds()
    y = usable(m, y)
    rows, cols, vals = m.coo()
    A = sp.csc_array((vals, (rows, cols)), shape=(m.n_rows, m.n_cols))
    A.sum_duplicates()
    lb, ub = m.bounds()
    rc = m.objective() - A.T @ y
    ub = ub.copy()
    open_up = np.flatnonzero((rc < 0) & ~np.isfinite(ub))
    csr = A.tocsr() if open_up.size else None
    for j in open_up:
        ub[j] = implied_upper(A, csr, (lb, ub), (lo, hi), int(j))
    info = {"columns_bounded_by_a_row": int(open_up.size)}
    if np.any((rc < 0) & ~np.isfinite(ub)) or np.any((rc > 0) & ~np.isfinite(lb)):
        return None, info
    # each term at the side its sign needs (finite wherever the coefficient is not 0)
    on_rows = y * np.where(y > 0, lo, np.where(y < 0, hi, 0.0))
    on_cols = rc * np.where(rc > 0, lb, np.where(rc < 0, ub, 0.0))
    return float(on_rows.sum() + on_cols.sum()), info


def bound_of(
    m: LinearModel,
    sc: Scenario,
    y: np.ndarray,
    opts: JobOptions,
    active: np.ndarray,
    gang: np.ndarray,
) -> tuple[float | None, np.ndarray, dict[str, Any]]:
    """The bound the duals `y` of `m`'s rows (taken as `usable`) give on the MILP whose
    pricing LP over the options `active` (of `opts`) is `m`: L(y) of `m` plus what the
    options left out could lower it by (None where L is unbounded); the reduced costs of
    the options left out at the same y (`pricing.reduced_costs`, inf elsewhere), the ones a
    pricing round prices in; and the Lagrangian's record."""
    y = usable(m, y)  # the same y for the LP's rows and the options left out
    value, info = lagrangian(m, y)
    alpha, mu = pricing.lp_duals(m, y, sc)
    out = np.flatnonzero(~active)
    rc = pricing.reduced_costs(sc, opts, gang, alpha, mu, out)
    if value is None:
        return None, rc, info
    bound = pricing.lagrangian_bound(value, opts.subset(~active), rc[~active], len(sc.jobs))
    info["left_out_options"] = bound - value
    return bound, rc, info


def warm_bound(
    m: LinearModel,
    sc: Scenario,
    table: pd.DataFrame,
    opts: JobOptions,
    active: np.ndarray,
    gang: np.ndarray,
) -> tuple[float | None, dict[str, Any]]:
    """The bound `table`'s duals give (`bound_of`); None where L is unbounded. The record
    says how many rows found a dual."""
    y, found = duals_on(m, sc, table)
    bound, _, info = bound_of(m, sc, y, opts, active, gang)
    info |= {"rows": int(m.n_rows), "rows_with_a_dual": found}
    return bound, info
