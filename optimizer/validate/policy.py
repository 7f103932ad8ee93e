"""Check family `policy`: each green-share minimum (fleet-wide and per site) and the carbon
budget recomputed from the planned energy; a miss the summary reports as met is a
violation, and the summary's `policy_violations` must match the recomputation.

Leaves `Checker.policy` (the recomputed requirements) for the totals check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optimizer.units import KG_PER_T
from optimizer.validate.power import contract_factor
from optimizer.validate.state import Checker, finite_number, fmt

CHECK = "policy"


def check(c: Checker) -> None:
    pol = c.sc.policy
    c.policy = rec = recompute(c)
    claimed = c.summary().get("policy_violations")
    n_req = len(rec["green_share"]) + (pol.carbon_budget_t is not None)
    c.count(CHECK, n_req)
    if not c.power.ok:
        return
    if not isinstance(claimed, dict):
        if n_req:
            c.add(
                CHECK,
                "policy_violations",
                "summary has no policy_violations block, but the scenario sets policy limits",
                table="summary",
            )
        claimed = {}
    green_shares(c, claimed)
    carbon_budget(c, claimed)


def recompute(c: Checker) -> dict[str, Any]:
    """The green-share requirements (scope, required, achieved, shortfall) and the carbon
    budget's excess, from the planned grid and green energy and the facility energy."""
    sc, pol, pw = c.sc, c.sc.policy, c.power
    # only green whose origin is green counts: what reaches the load in its hour
    counted = np.minimum(pw.green_mw, pw.facility_mw)
    groups: list[tuple[str, float, float, float]] = []
    if pol.min_green_share > 0:
        groups.append(
            ("fleet", pol.min_green_share, float(counted.sum()), float(pw.facility_mw.sum()))
        )
    for s, site in enumerate(sc.sites):
        if site.min_green_share > 0:
            groups.append(
                (
                    site.site_id,
                    site.min_green_share,
                    float(counted[s].sum()),
                    float(pw.facility_mw[s].sum()),
                )
            )
    certs = certificates(c)
    shares = [
        {
            "scope": scope,
            "required": req,
            "achieved": (g + certs.get(scope, 0.0)) / f if f > 0 else 0.0,
            "hourly_matched": g / f if f > 0 else 0.0,
            "certificates_mwh": certs.get(scope, 0.0),
            "shortfall_mwh": max(0.0, req * f - g - certs.get(scope, 0.0)),
            "facility_mwh": f,
        }
        for scope, req, g, f in groups
    ]
    emissions = float((pw.grid_mw * contract_factor(sc)).sum() / KG_PER_T)
    excess = max(0.0, emissions - pol.carbon_budget_t) if pol.carbon_budget_t is not None else 0.0
    return {"green_share": shares, "carbon_excess_t": excess, "emissions_t": emissions}


def certificates(c: Checker) -> dict[str, float]:
    """The certificates the plan says it bought per scope (its decision), each a finite
    number >= 0, and none when the policy offers none."""
    out: dict[str, float] = {}
    claimed = c.summary().get("policy_violations")
    entries = claimed.get("green_share", []) if isinstance(claimed, dict) else []
    offered = c.sc.policy.certificate_price_cny_per_mwh is not None
    for e in entries or []:
        if not isinstance(e, dict) or "certificates_mwh" not in e:
            continue
        scope, q = str(e.get("scope")), finite_number(e.get("certificates_mwh"))
        if q is None or q < -c.abs_tol or (not offered and q > c.abs_tol):
            why = "none are on offer" if q is not None and offered is False else "not a number >= 0"
            c.add(CHECK, "certificates", f"{scope} certificates_mwh {fmt(q)}: {why}")
            continue
        out[scope] = max(q, 0.0)
    return out


def green_shares(c: Checker, claimed: dict[str, Any]) -> None:
    """Each green-share requirement as the summary reports it: a shortfall not reported as
    met, the amount right; no requirement the scenario does not set."""
    by_scope = {
        str(e.get("scope")): e for e in claimed.get("green_share", []) or [] if isinstance(e, dict)
    }
    for g in c.policy["green_share"]:
        scope = g["scope"]
        where = {"site_id": scope if scope != "fleet" else None}
        scale = g["facility_mwh"]
        e = by_scope.pop(scope, None)
        short = g["shortfall_mwh"]
        said = finite_number(e.get("shortfall_mwh")) if e else None
        if not c.close_scaled(short, 0.0, scale) and (
            said is None or c.close_scaled(said, 0.0, scale)
        ):
            c.add(
                CHECK,
                "green_share",
                f"{scope} green share {g['achieved']:.4f} is below the required {g['required']:g} "
                f"({short:.6g} MWh short), but the summary reports it met",
                expected=short,
                actual=said,
                **where,
            )
        elif e is None:
            c.add(
                CHECK,
                "green_share",
                f"summary omits the {scope} green-share requirement ({g['required']:g})",
                **where,
            )
        elif said is None or not c.close_scaled(said, short, scale):
            c.add(
                CHECK,
                "green_share",
                f"summary reports a {fmt(said)} MWh {scope} shortfall, recomputed {short:.6g}",
                expected=short,
                actual=said,
                **where,
            )
    for scope in by_scope:
        c.add(
            CHECK,
            "green_share",
            f"summary reports a green-share requirement {scope!r} the scenario does not set",
        )


def carbon_budget(c: Checker, claimed: dict[str, Any]) -> None:
    """The carbon budget's excess as the summary reports it: not reported as met, and right."""
    pol = c.sc.policy
    said_ex = finite_number(claimed.get("carbon_excess_t", 0.0))
    ex = c.policy["carbon_excess_t"]
    scale = pol.carbon_budget_t or 0.0
    if (
        pol.carbon_budget_t is not None
        and not c.close_scaled(ex, 0.0, scale)
        and (said_ex is None or c.close_scaled(said_ex, 0.0, scale))
    ):
        c.add(
            CHECK,
            "carbon_budget",
            f"emissions {c.policy['emissions_t']:.6g} t exceed the {pol.carbon_budget_t:g} t budget by {ex:.6g} t, but the summary reports it met",
            expected=ex,
            actual=said_ex,
        )
    elif said_ex is None or not c.close_scaled(said_ex, ex, scale):
        c.add(
            CHECK,
            "carbon_budget",
            f"summary reports carbon_excess_t {fmt(said_ex)}, recomputed {ex:.6g}",
            expected=ex,
            actual=said_ex,
        )
