// Site view: stacked hourly power (grid, green used, battery, curtailed green) against the
// grid limit, with price and carbon intensity on right-hand axes; devices in use per type.
import { activePlan, assignments, siteHours, table } from "./data.js";
import { OKABE_ITO, SERIES, esc, hourLabel, num, pct } from "./fmt.js";

const charts = [];  // Chart.js instances of the page, destroyed when it is drawn again

function chart(canvas, config) {
  const c = new window.Chart(canvas, config);
  charts.push(c);
  return c;
}

const axis = (text, extra = {}) => ({ title: { display: true, text }, ...extra });

function powerChart(canvas, rows, currency) {
  const bar = (label, key, color, sign = 1) => ({
    type: "bar", label, stack: "power", backgroundColor: color, yAxisID: "y",
    data: rows.map((r) => sign * (r[key] || 0)),
  });
  const line = (label, data, color, yAxisID, dash = []) => ({
    type: "line", label, data, borderColor: color, backgroundColor: color, yAxisID,
    borderDash: dash, pointRadius: 0, stepped: "middle", borderWidth: 2, stack: label,
  });
  return chart(canvas, {
    data: {
      labels: rows.map((r) => hourLabel(r.timestamp)),
      datasets: [
        bar("Grid import (MW)", "grid_mw", OKABE_ITO.grey),
        bar("Green used (MW)", "green_used_mw", OKABE_ITO.green),
        bar("Battery discharge (MW)", "battery_discharge_mw", OKABE_ITO.blue),
        bar("Battery charge (MW)", "battery_charge_mw", OKABE_ITO.sky, -1),
        bar("Curtailed green (MW)", "curtailed_mw", OKABE_ITO.yellow),
        line("Grid limit (MW)", rows.map((r) => r.grid_limit_mw), OKABE_ITO.black, "y", [6, 4]),
        line(`Grid price (${currency}/MWh)`, rows.map((r) => r.grid_price_per_mwh), OKABE_ITO.vermillion, "price"),
        line("Carbon intensity (kgCO2/MWh)", rows.map((r) => r.carbon_kg_per_mwh), OKABE_ITO.purple, "carbon", [2, 3]),
      ],
    },
    options: {
      maintainAspectRatio: false, animation: false, interaction: { mode: "index", intersect: false },
      scales: {
        x: axis("hour (scenario time, day HH:MM)", { stacked: true }),
        y: axis("power (MW)", { stacked: true }),
        price: axis(`grid price (${currency}/MWh)`, { position: "right", grid: { drawOnChartArea: false } }),
        carbon: axis("carbon intensity (kgCO2/MWh)", { position: "right", grid: { drawOnChartArea: false } }),
      },
    },
  });
}

function deviceChart(canvas, labels, byType, installed) {
  const types = [...byType.keys()].sort();
  return chart(canvas, {
    type: "line",
    data: {
      labels,
      datasets: types.map((a, i) => ({
        label: `${a} busy (of ${installed.get(a) ?? "?"} installed)`, data: byType.get(a),
        borderColor: SERIES[i % SERIES.length], backgroundColor: SERIES[i % SERIES.length],
        stepped: "middle", pointRadius: 0, borderWidth: 2,
      })),
    },
    options: {
      maintainAspectRatio: false, animation: false, interaction: { mode: "index", intersect: false },
      scales: { x: axis("hour (scenario time, day HH:MM)"), y: axis("devices busy (count)", { beginAtZero: true }) },
    },
  });
}

export async function renderSite(el, { args }) {
  const siteId = args[0];
  charts.splice(0).forEach((c) => c.destroy());
  const plan = await activePlan();
  const [all, asg, fleets] = await Promise.all([
    siteHours(plan.id), assignments(plan.id, `?site_id=${encodeURIComponent(siteId)}`), table("fleets"),
  ]);
  const rows = all.filter((r) => r.site_id === siteId).sort((a, b) => a.hour - b.hour);
  if (!rows.length) {
    el.innerHTML = `<h2>Site ${esc(siteId)}</h2><p class="error" role="alert">The active plan has no site ${esc(siteId)}.</p>`;
    return;
  }
  const sum = (k) => rows.reduce((s, r) => s + (r[k] || 0), 0);
  const installed = new Map(fleets.rows.filter((f) => f.site_id === siteId).map((f) => [f.accelerator, Number(f.devices)]));
  const byType = new Map();
  for (const a of asg) {
    if (!byType.has(a.accelerator)) byType.set(a.accelerator, rows.map(() => 0));
    const i = rows.findIndex((r) => r.hour === a.hour);
    if (i >= 0) byType.get(a.accelerator)[i] += a.devices;
  }
  el.innerHTML = `
    <h2 id="site-title">Site ${esc(siteId)}: active plan ${plan.id}</h2>
    <p><a href="#/map">← back to the map</a></p>
    <dl class="meta">
      <div><dt>Energy</dt><dd>${num(sum("facility_mw"), 1)} MWh</dd></div>
      <div><dt>Green share</dt><dd>${pct(sum("green_used_mw") / Math.max(sum("facility_mw"), 1e-12))}</dd></div>
      <div><dt>Curtailed green</dt><dd>${num(sum("curtailed_mw"), 1)} MWh</dd></div>
      <div><dt>Energy cost</dt><dd>${num(sum("energy_cost"), 0)} ${esc(plan.currency)}</dd></div>
      <div><dt>Emissions (contract / location)</dt><dd>${num(sum("emissions_kg") / 1000, 2)} / ${num(sum("emissions_location_kg") / 1000, 2)} tCO2</dd></div>
    </dl>
    <div class="panel"><h3 id="power-title">Hourly power against the grid limit</h3>
      <div class="chart"><canvas id="power-chart" role="img" aria-labelledby="power-title"></canvas></div></div>
    <div class="panel"><h3 id="devices-title">Devices in use by accelerator type</h3>
      <div class="chart small"><canvas id="device-chart" role="img" aria-labelledby="devices-title"></canvas></div></div>`;
  powerChart(el.querySelector("#power-chart"), rows, plan.currency);
  deviceChart(el.querySelector("#device-chart"), rows.map((r) => hourLabel(r.timestamp)), byType, installed);
}
