"""The green forecast's quantiles (issue 12): the error model, its use by the generator, and
scenarios without quantiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer import load_scenario
from optimizer.forecast import green_quantiles, noisy, sigma_share
from optimizer.generator import build_scenario
from optimizer.regions import load_region
from optimizer.scenario import InputValidationError

ROOT = Path(__file__).resolve().parents[1]


def test_spread_grows_with_lead_time_and_wind_is_wider_than_solar() -> None:
    fe = load_region("cn-edwc").forecast_error
    lead = np.array([1.0, 12.0, 24.0, 36.0, 48.0])
    wind, pv = sigma_share(fe, "wind", lead), sigma_share(fe, "pv", lead)
    assert (np.diff(wind) > 0).all() and (np.diff(pv) > 0).all()
    assert (wind > pv).all()
    # linear between the pack's points: 12 h lies halfway-ish from 6 h (0.08) to 24 h (0.12)
    assert wind[1] == pytest.approx(0.08 + (12 - 6) / (24 - 6) * 0.04)


def test_gaussian_quantiles_by_hand_clipped_to_zero_and_capacity() -> None:
    p50 = np.array([[1.0, 0.1, 1.9]])
    sigma = np.array([[0.1, 0.1, 0.1]])
    q = green_quantiles(p50, sigma, np.array([2.0]), {"p10": 0.1, "p90": 0.9})
    z = 1.2815515655446004
    assert q["p10"][0] == pytest.approx([1.0 - 0.1 * z, 0.0, 1.9 - 0.1 * z])
    assert q["p90"][0] == pytest.approx([1.0 + 0.1 * z, 0.1 + 0.1 * z, 2.0])


def test_lets_wait_awhile_noise_is_seeded_and_scaled_to_the_mean() -> None:
    actual = np.full((2, 4000), 2.0)
    a, b = noisy(actual, 0.1, seed=3), noisy(actual, 0.1, seed=3)
    assert np.array_equal(a, b)
    assert (a - actual).std() == pytest.approx(0.2, rel=0.05)


def test_generator_writes_quantiles_around_an_unchanged_p50() -> None:
    sc = build_scenario("cn-edwc", "2025-07-15T00:00+08:00", 48, 0, 0, 2025, name="cn-edwc-48h")
    default = load_scenario(ROOT / "data" / "scenarios" / "cn-edwc-48h")
    # the default scenario's P50 is the generator's series, and so are its quantiles
    assert np.array_equal(sc.green_available_mw, default.green_available_mw)
    assert np.array_equal(sc.green_available_p10_mw, default.green_available_p10_mw)
    assert (sc.green_available_p10_mw <= sc.green_available_mw).all()
    assert (sc.green_available_p90_mw >= sc.green_available_mw).all()
    assert default.green_band_given
    # the band widens with lead time: the west's P50 - P10 on day 2 above day 1
    width = (sc.green_available_mw - sc.green_available_p10_mw)[6:].sum(axis=0)
    assert width[24:].mean() > width[:24].mean()


def test_scenario_without_quantiles_has_no_band(tmp_path: Path) -> None:
    demo = load_scenario(ROOT / "data" / "demo")
    assert not demo.green_band_given
    assert np.array_equal(demo.green_available_p10_mw, demo.green_available_mw)


def test_a_p10_above_the_p50_is_named(tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "s"
    shutil.copytree(ROOT / "data" / "demo", d)
    ss = pd.read_csv(d / "site_series.csv")
    ss["green_available_p10_mw"] = ss["green_available_mw"]
    ss.loc[2, "green_available_p10_mw"] = ss.loc[2, "green_available_mw"] + 1.0
    ss.to_csv(d / "site_series.csv", index=False)
    with pytest.raises(InputValidationError) as err:
        load_scenario(d)
    (p,) = err.value.problems
    assert p.column == "green_available_p10_mw" and "above the P50" in p.message
