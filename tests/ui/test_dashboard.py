"""The dashboard in a real browser (Debian's Chromium, headless) against a real server and
real solves on the demo scenario: sign-in and refusal, the KPI cards, the map and a site,
roles, and no request leaving the machine."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from tests.service.helpers import LiveServer, wait_run
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
    cfe = cards.locator("[data-kpi=cfe_score] .value")  # hourly CFE, where the plan has it
    expect(cfe).to_have_text(f"{_fmt(100 * plan['kpis']['cfe_score'], 1)} %")
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
    tab.record_timing("demo_overview_reload_kpi_cards_ms")
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


def test_map_draws_demand_regions_and_latency_links(tab: Tab, ui_server: LiveServer) -> None:
    """Every latency.csv pair is a line coloured by its latency class; the plan's links (the
    API's /links) are the solid, labelled ones; a site opens by a mouse click too."""
    with ui_server.client("viewer") as c:
        plan = c.get("/plans/active").json()
        items = c.get(f"/plans/{plan['id']}/links").json()["items"]
        used = {(x["site_id"], x["demand_region"]) for x in items}
        latency = c.get("/data/latency").json()["rows"]
        regions = c.get("/data/demand_regions").json()["rows"]
    assert used, "the demo plan serves inference: some links are used"
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.viewer)
    tab.page.get_by_role("link", name="Map").click()
    expect(tab.page.locator("g.region")).to_have_count(len(regions))
    expect(tab.page.locator("g.region text")).to_have_text([r["demand_region"] for r in regions])
    lines = tab.page.locator("line.link")
    expect(lines).to_have_count(len(latency))
    drawn_used = {
        (x["site"], x["region"])
        for x in tab.page.locator("line.link.used").evaluate_all(
            "ls => ls.map((l) => ({site: l.dataset.site, region: l.dataset.region}))"
        )
    }
    assert drawn_used == used
    # colour by latency class: <= 10 ms blue, <= 25 sky, <= 50 orange, above vermillion
    colour = {10.0: "#0072B2", 25.0: "#56B4E9", 50.0: "#E69F00", float("inf"): "#D55E00"}
    for row in latency:
        line = tab.page.locator(
            f"line.link[data-site='{row['site_id']}'][data-region='{row['demand_region']}']"
        )
        want = next(c for limit, c in colour.items() if row["latency_ms"] <= limit)
        assert line.get_attribute("stroke") == want, row
    # the main links (>= 10 % of their region's served tokens) are the labelled ones
    served: dict[str, float] = {}
    for x in items:
        served[x["demand_region"]] = served.get(x["demand_region"], 0.0) + x["mtokens"]
    main = {
        (x["site_id"], x["demand_region"])
        for x in items
        if x["mtokens"] >= 0.1 * served[x["demand_region"]]
    }
    assert main
    drawn_main = {
        (x["site"], x["region"])
        for x in tab.page.locator("line.link.main").evaluate_all(
            "ls => ls.map((l) => ({site: l.dataset.site, region: l.dataset.region}))"
        )
    }
    assert drawn_main == main
    labels = tab.page.locator("text.link-label").all_text_contents()
    assert sorted(labels) == sorted(
        f"{_fmt(r['latency_ms'], 1)} ms"
        for r in latency
        if (r["site_id"], r["demand_region"]) in main
    )
    expect(tab.page.locator("#links tbody tr.used")).to_have_count(len(used))
    tab.shot("map-links")
    # a mouse click on a site opens it
    tab.page.locator("g.site[data-site=gz-west] circle").click()
    expect(tab.page.locator("#site-title")).to_contain_text("gz-west")
    assert tab.foreign_requests() == []


def test_workloads_gantt_heatmap_and_unplaced(tab: Tab, ui_server: LiveServer) -> None:
    with ui_server.client("viewer") as c:
        plan = c.get("/plans/active").json()
        unplaced = c.get(f"/plans/{plan['id']}/explain").json()["unplaced"]
        asg = c.get(f"/plans/{plan['id']}/assignments?limit=10000").json()["items"]
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.viewer)
    tab.page.get_by_role("link", name="Workloads").click()
    expect(tab.page.locator("#gantt rect").first).to_be_visible()
    # the heat map is a canvas: its rows are the (service, site) pairs of the plan, and a
    # hovered cell names its figures, the API's devices summed over accelerator types
    heat = tab.page.locator("#heatmap canvas")
    expect(heat).to_be_visible()
    cells: dict[tuple[str, str], dict[int, int]] = {}
    for a in asg:
        if a["tokens_per_s"] is not None:
            cell = cells.setdefault((a["workload_id"], a["site_id"]), {})
            cell[a["hour"]] = cell.get(a["hour"], 0) + a["devices"]
    keys = sorted(cells, key=lambda k: f"{k[0]}\u0000{k[1]}")
    expect(heat).to_have_attribute("data-rows", str(len(keys)))
    i, (svc, site) = len(keys) - 1, keys[-1]
    hour, n = max(cells[(svc, site)].items(), key=lambda x: (x[1], -x[0]))
    stamp = next(a["timestamp"] for a in asg if a["hour"] == hour)
    heat.scroll_into_view_if_needed()
    heat.hover(position={"x": 190 + hour * 18 + 6, "y": 28 + i * 20 + 8})
    expect(heat).to_have_attribute(
        "title", f"{svc} @ {site}, {stamp[8:10]} {stamp[11:16]}: {n} devices"
    )
    assert unplaced, "the demo plan leaves a job unplaced: the list must show it"
    table = tab.page.locator("#unplaced")
    for u in unplaced:
        expect(table).to_contain_text(u["workload_id"])
    tab.shot("workloads")
    # the site filter keeps that site's rows only
    tab.page.get_by_label("Site", exact=True).select_option("nx-west")
    labels = tab.page.locator("#gantt text").filter(has_text=" · ").all_text_contents()
    assert labels and all(t.startswith("nx-west · ") for t in labels), labels
    assert tab.foreign_requests() == []


def test_viewer_sees_no_what_if_form(tab: Tab, ui_server: LiveServer) -> None:
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.viewer)
    expect(tab.page.locator("#kpi-cards")).to_be_visible()
    expect(tab.page.get_by_role("link", name="What-if")).to_be_hidden()
    tab.page.goto(f"{ui_server.url}/ui#/whatif")  # typed by hand: still no form
    expect(tab.page.get_by_role("alert")).to_contain_text("planner or admin")
    expect(tab.page.locator("#whatif-form")).to_have_count(0)
    # History without the activate button
    tab.page.get_by_role("link", name="History").click()
    expect(tab.page.locator("#plans")).to_be_visible()
    expect(tab.page.locator("[data-activate]")).to_have_count(0)


def test_what_if_shows_its_diff(tab: Tab, ui_server: LiveServer) -> None:
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.planner)
    tab.page.get_by_role("link", name="What-if").click()
    tab.page.get_by_label("multiplier (×)").fill("3")
    tab.page.get_by_label("zones").select_option("shanghai")
    tab.page.get_by_role("button", name="Run what-if").click()
    diff = tab.page.locator("#whatif-diff")
    expect(diff).to_be_visible(timeout=120_000)
    # the diff's numbers are the API's: the what-if run's own answer
    run_id = int(re.search(r"run (\d+)", tab.page.locator("#whatif-status").inner_text())[1])  # type: ignore[index]
    with ui_server.client("viewer") as c:
        out = c.get(f"/what-if/{run_id}").json()
    assert out["state"] == "succeeded"
    a = out["diff"]["totals"]["total_cost"]["a"]
    b = out["diff"]["totals"]["total_cost"]["b"]
    row = diff.locator("tr[data-kpi=total_cost] td")
    expect(row.nth(0)).to_have_text(_fmt(a, 3))
    expect(row.nth(1)).to_have_text(_fmt(b, 3))
    expect(tab.page.locator("#changed-site-hours")).to_contain_text("sh-east")
    tab.shot("what-if")
    assert tab.foreign_requests() == []


def test_sweep_draws_the_cost_carbon_curve(tab: Tab, ui_server: LiveServer) -> None:
    assert ui_server.keys is not None
    tab.sign_in(ui_server.keys.planner)
    tab.page.get_by_role("link", name="What-if").click()
    tab.page.get_by_label("carbon prices").fill("0, 300, 3000")
    tab.page.get_by_role("button", name="Run sweep").click()
    expect(tab.page.locator("#abatement")).to_be_visible(timeout=180_000)
    expect(tab.page.locator("#abatement tbody tr")).to_have_count(2)
    points = tab.page.evaluate(
        "Chart.getChart(document.querySelector('#curve-chart')).data.datasets[0].data.length"
    )
    assert points == 3
    tab.page.locator("#sweep-result").scroll_into_view_if_needed()
    tab.shot("cost-carbon-curve")
    assert tab.foreign_requests() == []


def test_history_downloads_a_bundle_and_activates_a_plan(tab: Tab, ui_server: LiveServer) -> None:
    with ui_server.client("planner") as c:
        first = c.get("/plans/active").json()["id"]
        r = c.post("/runs", json={"note": "a second plan, not activated"})
        assert r.status_code == 202, r.text
        second = wait_run(c, r.json()["id"])["plan_id"]
    assert ui_server.keys is not None
    try:
        tab.sign_in(ui_server.keys.planner)
        tab.page.get_by_role("link", name="History").click()
        row = tab.page.locator(f"#plans tr[data-plan='{second}']")
        with tab.page.expect_download() as dl:
            row.get_by_role("button", name="Bundle (zip)").click()
        assert dl.value.suggested_filename == f"plan-{second}.zip"
        with zipfile.ZipFile(dl.value.path()) as z:
            assert "summary.json" in z.namelist()
        # what-if plans are not offered for activation (the API refuses them)
        for kind_cell in tab.page.locator("#plans tbody tr").all():
            if kind_cell.locator("td").nth(1).inner_text() in ("whatif", "sweep_point"):
                expect(kind_cell.locator("[data-activate]")).to_have_count(0)
        tab.page.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name="Activate").click()
        expect(tab.page.locator(f"#plans tr[data-plan='{second}']")).to_contain_text("(active)")
        with ui_server.client("viewer") as c:
            assert c.get("/plans/active").json()["id"] == second
        tab.shot("history")
    finally:
        with ui_server.client("planner") as c:  # the other tests read the first plan
            assert c.post(f"/plans/{first}/activate").status_code == 200


def test_history_downloads_each_export_with_the_key(tab: Tab, ui_server: LiveServer) -> None:
    """Actions CSV, Slurm and Kubernetes exports of a plan, byte for byte the API's answer
    (fetched with the key in a header, saved from a blob)."""
    assert ui_server.keys is not None
    with ui_server.client("viewer") as c:
        pid = c.get("/plans/active").json()["id"]
        want = {
            "actions": c.get(f"/plans/{pid}/actions", headers={"Accept": "text/csv"}).content,
            "slurm": c.get(f"/plans/{pid}/actions/slurm").content,
            "kubernetes": c.get(f"/plans/{pid}/actions/kubernetes").content,
        }
    assert want["actions"].startswith(b"seq,timestamp,hour,action")
    tab.sign_in(ui_server.keys.viewer)
    tab.page.get_by_role("link", name="History").click()
    row = tab.page.locator(f"#plans tr[data-plan='{pid}']")
    names = {"actions": "Actions (CSV)", "slurm": "Slurm", "kubernetes": "Kubernetes (JSON)"}
    files = {"actions": "actions.csv", "slurm": "slurm.txt", "kubernetes": "kubernetes.json"}
    for export, body in want.items():
        with tab.page.expect_download() as dl:
            row.get_by_role("button", name=names[export]).click()
        assert dl.value.suggested_filename == f"plan-{pid}-{files[export]}"
        assert Path(dl.value.path()).read_bytes() == body, export
    expect(tab.page.locator("#history-error")).to_have_text("")
    assert tab.foreign_requests() == []


def test_keyboard_only_labels_and_axis_units(tab: Tab, ui_server: LiveServer) -> None:
    assert ui_server.keys is not None
    page = tab.page
    page.goto(f"{ui_server.url}/ui")
    # keyboard only: the skip link, then the key field, then Enter signs in
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(ui_server.keys.planner)
    page.keyboard.press("Enter")
    expect(page.locator("#kpi-cards")).to_be_visible()
    # every form control of the what-if page has a label
    page.goto(f"{ui_server.url}/ui#/whatif")
    expect(page.locator("#whatif-form")).to_be_visible()
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select')]
             .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))
             .map((e) => e.id)"""
    )
    assert unlabelled == []
    # every axis of every chart on the site view names its unit, "(...)"
    page.goto(f"{ui_server.url}/ui#/site/sh-east")
    expect(page.locator("#device-chart")).to_be_visible()
    titles = page.evaluate(
        """[...document.querySelectorAll('canvas')].flatMap((c) =>
             Object.values(Chart.getChart(c).options.scales).map((s) => s.title.display ? s.title.text : ''))"""
    )
    assert len(titles) >= 5 and all(re.search(r"\(.+\)", t) for t in titles), titles
