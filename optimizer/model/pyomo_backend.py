"""The model as a Pyomo `ConcreteModel`, and its hand-over to HiGHS.

Each variable block becomes an indexed `Var` and each constraint block an indexed
`Constraint` named as in the model modules, so the Pyomo model can be inspected, written
to an LP file or solved by any Pyomo solver. The hand-over compiles it with Pyomo's
standard-form compiler and passes the matrices to `highspy` (`passModel`), which measured
faster than the persistent interfaces (see bench/README.md).
"""

from __future__ import annotations

import math
from typing import Any

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from optimizer.model.core import LinearModel
from optimizer.model.matrix_backend import pass_arrays


def _bound(v: float) -> float | None:
    return None if math.isinf(v) else float(v)


def to_pyomo(m: LinearModel) -> pyo.ConcreteModel:
    """Pyomo components of every block of `m`, plus the objective."""
    pm = pyo.ConcreteModel(name="greenopt")
    var_of_col: list = [None] * m.n_cols
    for block in m.vars.values():
        lb = [_bound(v) for v in block.lb]
        ub = [_bound(v) for v in block.ub]
        integral = block.integral()
        domain: Any
        if block.size and integral.all():
            binary = all(a == 0 and b == 1 for a, b in zip(lb, ub, strict=True))
            domain = pyo.Binary if binary else pyo.Integers
        elif not integral.any():
            domain = pyo.Reals
        else:  # some elements solved as continuous: a domain per element

            def domain(_m: Any, i: int, integral: np.ndarray = integral) -> Any:
                return pyo.Integers if integral[i] else pyo.Reals

        var = pyo.Var(
            range(block.size),
            domain=domain,
            bounds=lambda _m, i, lb=lb, ub=ub: (lb[i], ub[i]),
            doc=block.doc,
        )
        pm.add_component(block.name, var)
        for i in range(block.size):
            var_of_col[block.offset + i] = var[i]
    for con in m.cons.values():
        order = np.argsort(con.rows, kind="stable")
        cols = con.cols[order].tolist()
        vals = con.vals[order].tolist()
        ptr = np.searchsorted(con.rows[order], np.arange(con.size + 1)).tolist()
        lo = [_bound(v) for v in con.lo]
        hi = [_bound(v) for v in con.hi]

        def rule(_m, i, cols=cols, vals=vals, ptr=ptr, lo=lo, hi=hi):
            a, b = ptr[i], ptr[i + 1]
            if a == b and lo[i] is not None and lo[i] <= 0 and (hi[i] is None or hi[i] >= 0):
                return pyo.Constraint.Skip
            expr = LinearExpression(
                constant=0.0,
                linear_coefs=vals[a:b],
                linear_vars=[var_of_col[c] for c in cols[a:b]],
            )
            if lo[i] is not None and lo[i] == hi[i]:
                return expr == lo[i]
            return (lo[i], expr, hi[i])

        pm.add_component(con.name, pyo.Constraint(range(con.size), rule=rule, doc=con.doc))
    c = m.objective()
    nz = np.flatnonzero(c)
    pm.total_cost = pyo.Objective(
        expr=LinearExpression(
            constant=0.0, linear_coefs=c[nz].tolist(), linear_vars=[var_of_col[i] for i in nz]
        ),
        sense=pyo.minimize,
    )
    pm._greenopt_columns = var_of_col
    return pm


def to_highs(m: LinearModel, pm: pyo.ConcreteModel, h: highspy.Highs) -> np.ndarray:
    """Compile `pm` to standard form and pass it to `h`.

    Returns the model column of each HiGHS column: the compiler keeps the given column
    order but may drop variables that appear nowhere.
    """
    cols = pm._greenopt_columns
    info = LinearStandardFormCompiler().write(pm, mixed_form=True, column_order=cols)
    position = {id(v): i for i, v in enumerate(cols)}
    col_map = np.fromiter(
        (position[id(v)] for v in info.columns), dtype=np.int64, count=len(info.columns)
    )
    lb_all, ub_all = m.bounds()
    integ = m.integrality()
    n_rows = len(info.rows)
    rhs = np.asarray(info.rhs, dtype=float)
    sense = np.fromiter((r.bound_type for r in info.rows), dtype=np.int64, count=n_rows)
    row_lo = np.where(sense <= 0, rhs, -highspy.kHighsInf)
    row_hi = np.where(sense >= 0, rhs, highspy.kHighsInf)
    c = np.asarray(info.c.toarray()).reshape(-1) if info.c.shape[0] else np.zeros(len(info.columns))
    pass_arrays(h, c, lb_all[col_map], ub_all[col_map], info.A, row_lo, row_hi, integ[col_map])
    return col_map
