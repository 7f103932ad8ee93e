"""The component interface every model module writes to: named blocks of variables and
constraints held as sparse arrays, plus registries for the shared sums (objective terms,
device use per site-type-hour, the site power balance).

The model is stated once, here, as NumPy arrays; `pyomo_backend` turns it into a Pyomo
`ConcreteModel` (the default path) and `matrix_backend` hands the same arrays straight to
HiGHS (the benchmark's reference build). Both therefore solve the very same problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

INF = float("inf")


@dataclass
class VarBlock:
    """A named family of variables, e.g. `v_grid_mw[s, h]`, at columns offset..offset+size."""

    name: str
    offset: int
    lb: np.ndarray
    ub: np.ndarray
    integer: bool
    index: dict[str, np.ndarray]
    doc: str = ""
    relaxed: np.ndarray | None = None  # integer elements solved as continuous (bool mask)

    @property
    def size(self) -> int:
        return int(self.lb.shape[0])

    def integral(self) -> np.ndarray:
        """Per element: is it integer in the model as it will be solved?"""
        out = np.full(self.size, self.integer, dtype=bool)
        if self.integer and self.relaxed is not None:
            out &= ~self.relaxed
        return out

    def cols(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Global column numbers of the block's elements (all, or at `positions`)."""
        if positions is None:
            return np.arange(self.offset, self.offset + self.size, dtype=np.int64)
        return self.offset + np.asarray(positions, dtype=np.int64)

    def values(self, x: np.ndarray) -> np.ndarray:
        return x[self.offset : self.offset + self.size]


@dataclass
class ConBlock:
    """A named family of linear rows lo <= A x <= hi, stored as COO with local row numbers."""

    name: str
    offset: int
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    index: dict[str, np.ndarray]
    doc: str = ""

    @property
    def size(self) -> int:
        return int(self.lo.shape[0])


@dataclass
class Terms:
    """Linear terms keyed by an integer row key (e.g. flat site-hour), to be summed later."""

    keys: np.ndarray
    cols: np.ndarray
    coefs: np.ndarray


@dataclass
class LinearModel:
    """The model as named sparse blocks. Modules add to it in the builder's fixed order."""

    vars: dict[str, VarBlock] = field(default_factory=dict)
    cons: dict[str, ConBlock] = field(default_factory=dict)
    costs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    registries: dict[str, list[Terms]] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)  # plain data modules leave for extraction
    fixed_cost: float = (
        0.0  # cost no decision can change (work that can run nowhere), kept out of the gap
    )
    n_cols: int = 0
    n_rows: int = 0

    # --- variables -------------------------------------------------------------------
    def add_variables(
        self,
        name: str,
        size: int,
        *,
        lb: float | np.ndarray = 0.0,
        ub: float | np.ndarray = INF,
        integer: bool = False,
        index: dict[str, np.ndarray] | None = None,
        doc: str = "",
    ) -> VarBlock:
        if name in self.vars:
            raise ValueError(f"variable block {name} declared twice")
        lo = np.broadcast_to(np.asarray(lb, dtype=float), (size,)).copy()
        hi = np.broadcast_to(np.asarray(ub, dtype=float), (size,)).copy()
        block = VarBlock(name, self.n_cols, lo, hi, integer, dict(index or {}), doc)
        self.vars[name] = block
        self.n_cols += size
        return block

    # --- constraints -----------------------------------------------------------------
    def add_constraints(
        self,
        name: str,
        size: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        *,
        lo: float | np.ndarray = -INF,
        hi: float | np.ndarray = INF,
        index: dict[str, np.ndarray] | None = None,
        doc: str = "",
    ) -> ConBlock:
        if name in self.cons:
            raise ValueError(f"constraint block {name} declared twice")
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= size):
            raise ValueError(f"{name}: row number outside 0..{size - 1}")
        block = ConBlock(
            name,
            self.n_rows,
            rows,
            np.asarray(cols, dtype=np.int64),
            np.asarray(vals, dtype=float),
            np.broadcast_to(np.asarray(lo, dtype=float), (size,)).copy(),
            np.broadcast_to(np.asarray(hi, dtype=float), (size,)).copy(),
            dict(index or {}),
            doc,
        )
        self.cons[name] = block
        self.n_rows += size
        return block

    def add_keyed_constraints(
        self,
        name: str,
        n_keys: int,
        terms: Sequence[Terms],
        *,
        lo: float | np.ndarray = -INF,
        hi: float | np.ndarray = INF,
        index: dict[str, np.ndarray] | None = None,
        doc: str = "",
    ) -> ConBlock:
        """One row per key 0..n_keys-1 summing `terms` (the registered shared sums)."""
        keys = np.concatenate([t.keys for t in terms]) if terms else np.zeros(0, np.int64)
        cols = np.concatenate([t.cols for t in terms]) if terms else np.zeros(0, np.int64)
        coefs = np.concatenate([t.coefs for t in terms]) if terms else np.zeros(0)
        return self.add_constraints(
            name, n_keys, keys, cols, coefs, lo=lo, hi=hi, index=index, doc=doc
        )

    # --- shared sums -----------------------------------------------------------------
    def add_cost(self, name: str, cols: np.ndarray, coefs: np.ndarray | float) -> None:
        """Register objective terms under a cost category (e.g. `grid_energy`)."""
        cols = np.asarray(cols, dtype=np.int64)
        c = np.broadcast_to(np.asarray(coefs, dtype=float), cols.shape).copy()
        self.costs.setdefault(name, []).append((cols, c))

    def register(
        self, registry: str, keys: np.ndarray, cols: np.ndarray, coefs: np.ndarray | float
    ) -> None:
        """Register terms of a shared sum (e.g. `device_use` per site-type-hour)."""
        cols = np.asarray(cols, dtype=np.int64)
        c = np.broadcast_to(np.asarray(coefs, dtype=float), cols.shape).copy()
        self.registries.setdefault(registry, []).append(
            Terms(np.asarray(keys, dtype=np.int64), cols, c)
        )

    def registered(self, registry: str) -> list[Terms]:
        return self.registries.get(registry, [])

    # --- whole-model views -----------------------------------------------------------
    def objective(self) -> np.ndarray:
        c = np.zeros(self.n_cols)
        for terms in self.costs.values():
            for cols, coefs in terms:
                np.add.at(c, cols, coefs)
        return c

    def cost_breakdown(self, x: np.ndarray) -> dict[str, float]:
        return {
            name: float(sum(np.dot(coefs, x[cols]) for cols, coefs in terms))
            for name, terms in self.costs.items()
        }

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lb = np.concatenate([b.lb for b in self.vars.values()]) if self.vars else np.zeros(0)
        ub = np.concatenate([b.ub for b in self.vars.values()]) if self.vars else np.zeros(0)
        return lb, ub

    def integrality(self) -> np.ndarray:
        return (
            np.concatenate([b.integral().astype(np.int32) for b in self.vars.values()])
            if self.vars
            else np.zeros(0, np.int32)
        )

    def row_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.concatenate([b.lo for b in self.cons.values()]) if self.cons else np.zeros(0)
        hi = np.concatenate([b.hi for b in self.cons.values()]) if self.cons else np.zeros(0)
        return lo, hi

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global (row, col, value) triplets of the whole constraint matrix."""
        if not self.cons:
            e = np.zeros(0, np.int64)
            return e, e, np.zeros(0)
        rows = np.concatenate([b.rows + b.offset for b in self.cons.values()])
        cols = np.concatenate([b.cols for b in self.cons.values()])
        vals = np.concatenate([b.vals for b in self.cons.values()])
        return rows, cols, vals

    def size(self) -> dict[str, int]:
        n_int = int(sum(int(b.integral().sum()) for b in self.vars.values()))
        return {
            "variables": self.n_cols,
            "binaries": int(
                sum(
                    int(np.count_nonzero(b.integral() & (b.lb == 0) & (b.ub == 1)))
                    for b in self.vars.values()
                )
            ),
            "integers": n_int,
            "constraints": self.n_rows,
            "nonzeros": int(sum(b.vals.size for b in self.cons.values())),
        }


def ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups i with `lengths[i]`: (group id per element, starts[i] + 0..lengths[i]-1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    group = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths
    within = np.arange(total, dtype=np.int64) - np.repeat(first, lengths)
    return group, np.repeat(np.asarray(starts, dtype=np.int64), lengths) + within
