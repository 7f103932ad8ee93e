"""Hand the model's arrays straight to HiGHS (the benchmark's reference build)."""

from __future__ import annotations

import highspy
import numpy as np
import scipy.sparse as sp

from optimizer.model.core import LinearModel


def pass_arrays(
    h: highspy.Highs,
    c: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    A: sp.csc_array | sp.csc_matrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    integrality: np.ndarray,
) -> None:
    """passModel of a minimisation in column-wise form (shared by both backends)."""
    A = A.tocsc()
    A.sort_indices()
    status = h.passModel(
        int(A.shape[1]),
        int(A.shape[0]),
        int(A.nnz),
        1,  # column-wise
        1,  # minimise
        0.0,
        np.ascontiguousarray(c, dtype=np.float64),
        np.ascontiguousarray(lb, dtype=np.float64),
        np.ascontiguousarray(ub, dtype=np.float64),
        np.ascontiguousarray(row_lo, dtype=np.float64),
        np.ascontiguousarray(row_hi, dtype=np.float64),
        np.ascontiguousarray(A.indptr, dtype=np.int32),
        np.ascontiguousarray(A.indices, dtype=np.int32),
        np.ascontiguousarray(A.data, dtype=np.float64),
        np.ascontiguousarray(integrality, dtype=np.int32),
    )
    if status != highspy.HighsStatus.kOk:
        raise RuntimeError(f"HiGHS rejected the model: {status}")


def to_highs(m: LinearModel, h: highspy.Highs) -> np.ndarray:
    """Load `m` into `h`; returns the model column of each HiGHS column (identity here)."""
    rows, cols, vals = m.coo()
    A = sp.csc_array((vals, (rows, cols)), shape=(m.n_rows, m.n_cols))
    A.sum_duplicates()
    lb, ub = m.bounds()
    lo, hi = m.row_bounds()
    pass_arrays(h, m.objective(), lb, ub, A, lo, hi, m.integrality())
    return np.arange(m.n_cols, dtype=np.int64)
