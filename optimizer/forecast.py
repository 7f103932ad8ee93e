"""The green forecast's error model: quantiles of contracted wind and solar supply around
its P50, with a spread that grows with lead time, and seeded draws of what comes in.

A region pack states the model in `forecast_error.csv`: per technology (`wind`, `pv`) the
standard deviation of the forecast error, as a share of the contracted capacity, at a few
lead times; between them it is interpolated linearly, beyond the last it stays flat. The
error is Gaussian and unbiased, wind and solar independent, solar's only in daylight hours
(a night forecast of zero does not miss). Quantiles are clipped to [0, capacity]. Lead time
is counted from the scenario's start: a plan is made just before the window it plans (the
nightly run), so hour h is forecast h + 1 hours ahead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm

if TYPE_CHECKING:
    from optimizer.scenario.types import Scenario

TECHNOLOGIES = ("wind", "pv")
Z10 = float(norm.ppf(0.1))  # -1.2816: the standard normal's 10th percentile


def sigma_share(model: pd.DataFrame, technology: str, lead_h: np.ndarray) -> np.ndarray:
    """Standard deviation of the forecast error of `technology` at `lead_h` hours ahead, as
    a share of its contracted capacity (linear between the pack's lead times, flat beyond)."""
    rows = model[model["technology"] == technology].sort_values("lead_h")
    return np.interp(
        lead_h, rows["lead_h"].to_numpy(dtype=float), rows["sigma_pu"].to_numpy(dtype=float)
    )


def error_sigma_mw(
    model: pd.DataFrame,
    capacity_mw: Mapping[str, np.ndarray],
    pv_pu: np.ndarray,
    hours: int,
) -> np.ndarray:
    """[site, hour] standard deviation of the green forecast error in MW: wind's and solar's
    (daylight only) added as independent errors. `capacity_mw[tech]` is [site]."""
    lead = np.arange(hours, dtype=float) + 1.0
    var = np.zeros(np.shape(pv_pu))
    for tech in TECHNOLOGIES:
        sd = capacity_mw[tech][:, None] * sigma_share(model, tech, lead)[None, :]
        if tech == "pv":
            sd = sd * (pv_pu > 0)
        var += sd**2
    return np.sqrt(var)


def green_quantiles(
    p50_mw: np.ndarray, sigma_mw: np.ndarray, capacity_mw: np.ndarray, levels: dict[str, float]
) -> dict[str, np.ndarray]:
    """{quantile: [site, hour] MW} of a Gaussian error around `p50_mw`, clipped to
    [0, capacity] and never on the wrong side of the P50."""
    out = {}
    for q, level in levels.items():
        x = p50_mw + norm.ppf(level) * sigma_mw
        x = np.clip(x, 0.0, capacity_mw[:, None])
        out[q] = np.minimum(x, p50_mw) if level < 0.5 else np.maximum(x, p50_mw)
    return out


def noisy(actual: np.ndarray, share_of_mean: float, seed: int) -> np.ndarray:
    """A forecast of `actual` [site, hour] as the Let's-Wait-Awhile study makes one (Wiesner
    et al., Middleware 2021): actual + Gaussian noise whose standard deviation is
    `share_of_mean` of each site's mean, clipped at zero; seeded."""
    rng = np.random.default_rng(seed)
    scale = share_of_mean * actual.mean(axis=1, keepdims=True)
    return np.maximum(actual + rng.normal(size=actual.shape) * scale, 0.0)


def with_forecast(sc: Scenario, forecast: np.ndarray, sigma: np.ndarray) -> Scenario:
    """`sc` with `forecast` [site, hour] as its green P50 and a Gaussian band of `sigma`
    [site, 1] around it (P10/P90, P10 floored at zero)."""
    return dataclasses.replace(
        sc,
        green_available_mw=forecast,
        green_available_p10_mw=np.clip(forecast + Z10 * sigma, 0.0, forecast),
        green_available_p90_mw=forecast - Z10 * sigma,
    )


def noisy_scenario(sc: Scenario, share_of_mean: float, seed: int) -> Scenario:
    """`sc` as planned on a `noisy` forecast of its green (taken as what actually comes),
    with the P10/P90 of that same noise around it; prices and carbon as given (a
    time-of-use price is known ahead). Share 0 is perfect foresight: `sc` itself."""
    if share_of_mean == 0:
        return sc
    actual = np.asarray(sc.green_available_mw, dtype=float)
    sigma = share_of_mean * actual.mean(axis=1, keepdims=True)
    return with_forecast(sc, noisy(actual, share_of_mean, seed), sigma)
