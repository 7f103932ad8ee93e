"""Experiment: Pyomo's ways of handing the same `ConcreteModel` to HiGHS, timed on one model.

* ``standard_form``: `LinearStandardFormCompiler` + `highspy.passModel`, what
  `optimizer/model/pyomo_backend.py` does;
* ``appsi``: the APPSI persistent interface, `pyomo.contrib.appsi.solvers.highs.Highs`,
  `set_instance` only (it loads the model into its own `highspy.Highs`);
* ``contrib_solver``: `pyomo.contrib.solver.solvers.highs.Highs` (the newer solver API),
  `set_instance` only, its load-only path.

Each path is timed from the built Pyomo model to a HiGHS object holding the model; the
loaded sizes are compared so that a fast path that loads less is not mistaken for a win.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import highspy
import pyomo.environ as pyo

from optimizer.model import pyomo_backend
from optimizer.model.core import LinearModel
from optimizer.solve import SolverSettings, new_highs


def _dims(h: highspy.Highs) -> dict[str, int]:
    lp = h.getLp()
    return {"columns": int(lp.num_col_), "rows": int(lp.num_row_), "nonzeros": int(h.getNumNz())}


def _standard_form(m: LinearModel, pm: pyo.ConcreteModel) -> highspy.Highs:
    h = new_highs(SolverSettings())
    pyomo_backend.to_highs(m, pm, h)
    return h


def _appsi(m: LinearModel, pm: pyo.ConcreteModel) -> highspy.Highs:
    from pyomo.contrib.appsi.solvers.highs import Highs

    opt = Highs()
    opt.config.stream_solver = False
    opt.set_instance(pm)
    return opt._solver_model


def _contrib_solver(m: LinearModel, pm: pyo.ConcreteModel) -> highspy.Highs:
    from pyomo.contrib.solver.solvers.highs import Highs

    opt = Highs()
    opt.set_instance(pm)
    return opt._solver_model


PATHS: dict[str, Callable[[LinearModel, pyo.ConcreteModel], highspy.Highs]] = {
    "standard_form": _standard_form,
    "appsi": _appsi,
    "contrib_solver": _contrib_solver,
}


def compare_handovers(m: LinearModel, pm: pyo.ConcreteModel) -> dict[str, Any]:
    """Seconds each path takes to load `pm` into HiGHS, and what it loaded.

    The standard-form path runs first and again last: the two runs bracket the others and
    show how much of a difference is noise on a shared machine.
    """
    out: dict[str, Any] = {}
    order = [*PATHS, "standard_form"]
    for i, name in enumerate(order):
        key = name if i < len(PATHS) else f"{name}_again"
        t = time.perf_counter()
        try:
            h = PATHS[name](m, pm)
        except Exception as e:  # an interface missing from this Pyomo is a result, not a crash
            out[key] = {"error": f"{type(e).__name__}: {e}"}
            continue
        seconds = time.perf_counter() - t
        out[key] = {"seconds": seconds, **_dims(h)}
        del h
    base = out.get("standard_form", {}).get("seconds")
    for name in PATHS:
        s = out.get(name, {}).get("seconds")
        if base and s is not None:
            out[name]["ratio_to_standard_form"] = s / base
    return out
