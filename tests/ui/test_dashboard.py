"""The dashboard in a real browser (Debian's Chromium, headless) against a real server and
real solves on the demo scenario: sign-in and refusal, the KPI cards, the map and a site,
roles, and no request leaving the machine."""

from __future__ import annotations

import re

import pytest

from tests.service.helpers import LiveServer
from tests.ui.conftest import Tab

pytestmark = pytest.mark.slow

expect = pytest.importorskip("playwright.sync_api").expect


def _fmt(v: float, digits: int) -> str:
    # the page's num(): en locale, thousands separators, at most `digits` decimals
    s = f"{round(v, digits):,.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def test_wrong_key_is_refused(tab: Tab) -> None:
    tab.sign_in("gok_not-a-key")
    expect(tab.page.get_by_role("alert")).to_contain_text("Key refused")
    expect(tab.page.locator("#nav")).to_be_hidden()
    assert tab.page.evaluate("sessionStorage.getItem('greenopt.key')") is None
    tab.shot("sign-in-refused")
    assert tab.foreign_requests() == []


def test_overview_shows_the_active_plans_kpis(tab: Tab, ui_server: LiveServer) -> None:
    with ui_server.client("viewer") as c:
        plan = c.get("/plans/active").json()
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.viewer)
    cards = tab.page.locator("#kpi-cards")
    expect(cards).to_be_visible()
    cost = cards.locator("[data-kpi=total_cost] .value")
    expect(cost).to_have_text(f"{_fmt(plan['kpis']['total_cost'], 0)} {plan['currency']}")
    share = cards.locator("[data-kpi=green_share] .value")
    expect(share).to_have_text(f"{_fmt(100 * plan['kpis']['green_share'], 1)} %")
    emis = cards.locator("[data-kpi=emissions_location_t] .value")
    expect(emis).to_have_text(f"{_fmt(plan['kpis']['emissions_location_t'], 1)} tCO2")
    for baseline in plan["baselines"]:
        expect(cards.locator("[data-kpi=total_cost]")).to_contain_text(
            f"vs {baseline.replace('_', '-')}"
        )
    expect(tab.page.locator("#plan-status")).to_have_text(plan["status"])
    expect(tab.page.locator("#last-nightly")).not_to_have_text("loading…")
    tab.shot("overview")
    # the key survives a reload of the tab (session storage), and is sent to this server only
    tab.page.reload()
    expect(tab.page.locator("#kpi-cards")).to_be_visible()
    assert tab.foreign_requests() == []


def test_map_opens_a_site(tab: Tab, ui_server: LiveServer) -> None:
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.viewer)
    tab.page.get_by_role("link", name="Map").click()
    dots = tab.page.locator("g.site circle")
    expect(dots).to_have_count(3)
    tab.shot("map")
    # keyboard: focus a site and press Enter
    tab.page.locator("g.site[data-site=nx-west] circle").focus()
    tab.page.keyboard.press("Enter")
    expect(tab.page.locator("#site-title")).to_contain_text("nx-west")
    expect(tab.page).to_have_url(re.compile(r"#/site/nx-west$"))
    # both charts drawn (Chart.js has sized and painted its canvas)
    for canvas in ("#power-chart", "#device-chart"):
        expect(tab.page.locator(canvas)).to_be_visible()
    assert (
        tab.page.evaluate(
            "Chart.getChart(document.querySelector('#power-chart')).data.datasets.length"
        )
        >= 6
    )
    tab.shot("site")
    assert tab.foreign_requests() == []
