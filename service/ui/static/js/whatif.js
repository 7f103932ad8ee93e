// What-if (planners and admins): a form for the overrides the API accepts, progress while
// the run solves, and the result as a diff against the active plan; and the cost–carbon
// curve from a carbon-price sweep with the abatement cost of each step.
import { api } from "./api.js";
import { activePlan, siteHours, table } from "./data.js";
import { OKABE_ITO, esc, hourLabel, num, pct } from "./fmt.js";

const POLL_MS = 500;
const CHANGED_MW = 1e-6;  // a site-hour whose facility or grid power moved by more has changed
let curveChart = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function hourOptions(stamps, selectedLast) {
  return stamps.map((ts, i) => `<option value="${esc(ts)}"${selectedLast && i === stamps.length - 1 ? " selected" : ""}>${esc(hourLabel(ts))}</option>`).join("");
}

function form(zones, sites, stamps, horizonEnd) {
  const window = (id) => `<label for="${id}-start">from</label><select id="${id}-start">${hourOptions(stamps)}</select>
    <label for="${id}-end">until</label><select id="${id}-end">${hourOptions([...stamps.slice(1), horizonEnd], true)}</select>`;
  return `
  <form class="whatif" id="whatif-form" aria-labelledby="whatif-title">
    <fieldset><legend>Grid price</legend>
      <div class="row"><label for="price-mult">multiplier (×)</label><input id="price-mult" type="number" min="0" max="100" step="0.05" placeholder="e.g. 1.5">
        <label for="price-zones">zones</label><select id="price-zones" multiple size="${Math.min(zones.length, 4)}">${zones.map((z) => `<option>${esc(z)}</option>`).join("")}</select>
        ${window("price")}</div>
      <p class="hint">Leave the multiplier empty for no price change; no zone selected means every zone.</p></fieldset>
    <fieldset><legend>Site outage</legend>
      <div class="row"><label for="outage-site">site</label><select id="outage-site"><option value="">none</option>${sites.map((s) => `<option>${esc(s)}</option>`).join("")}</select>
        ${window("outage")}</div></fieldset>
    <fieldset><legend>Green supply and policy</legend>
      <div class="row"><label for="green-mult">green supply (×, every site)</label><input id="green-mult" type="number" min="0" max="100" step="0.05" placeholder="e.g. 1.2">
        <label for="carbon-price">carbon price (CNY/tCO2)</label><input id="carbon-price" type="number" min="0" step="10" placeholder="scenario's">
        <label for="green-target">green-share target (%)</label><input id="green-target" type="number" min="0" max="100" step="1" placeholder="scenario's"></div></fieldset>
    <button type="submit" id="whatif-run">Run what-if</button>
    <span class="status-line" id="whatif-status" role="status"></span>
    <p class="error" id="whatif-error" role="alert"></p>
  </form>`;
}

// The form's values as the API's `overrides` (optimizer.whatif.Overrides).
function overrides(el) {
  const v = (id) => el.querySelector(`#${id}`).value;
  const ov = {};
  if (v("price-mult") !== "") {
    const zones = [...el.querySelector("#price-zones").selectedOptions].map((o) => o.value);
    ov.price_changes = [{ multiplier: Number(v("price-mult")), start: v("price-start"), end: v("price-end"), ...(zones.length ? { zones } : {}) }];
  }
  if (v("outage-site") !== "") {
    ov.capacity_changes = [{ site: v("outage-site"), available_fraction: 0.0, start: v("outage-start"), end: v("outage-end") }];
  }
  if (v("green-mult") !== "") ov.green_scaling = [{ multiplier: Number(v("green-mult")) }];
  if (v("carbon-price") !== "") ov.carbon_price_cny_per_t = Number(v("carbon-price"));
  if (v("green-target") !== "") ov.min_green_share = Number(v("green-target")) / 100;
  return ov;
}

function problemsText(e) {
  const ps = (e.body && e.body.problems) || [];
  return [e.message, ...ps.map((p) => `${p.column || p.field || p.table || ""}: ${p.message}`)].join(" · ");
}

async function follow(path, status, isDone) {
  for (;;) {
    const r = await api(path);
    if (isDone(r)) return r;
    const p = r.progress || {};
    status.innerHTML = `<progress aria-label="solving"></progress> ${esc(r.state)}${p.phase ? `, ${esc(p.phase)}` : ""}${p.elapsed_s !== undefined ? `, ${num(p.elapsed_s, 1)} s` : ""}${p.gap !== undefined && p.gap !== null ? `, gap ${pct(p.gap, 2)}` : ""}${r.counts ? ` (${esc(JSON.stringify(r.counts))})` : ""}`;
    await sleep(POLL_MS);
  }
}

async function changedSiteHours(basePlanId, planId) {
  const [a, b] = await Promise.all([siteHours(basePlanId), siteHours(planId)]);
  const key = (r) => `${r.site_id}\u0000${r.hour}`;
  const before = new Map(a.map((r) => [key(r), r]));
  const per = new Map();
  for (const r of b) {
    const o = before.get(key(r));
    const d = o ? Math.max(Math.abs(r.facility_mw - o.facility_mw), Math.abs(r.grid_mw - o.grid_mw)) : Infinity;
    const t = per.get(r.site_id) || { hours: 0, maxMw: 0 };
    if (d > CHANGED_MW) { t.hours += 1; t.maxMw = Math.max(t.maxMw, d); }
    per.set(r.site_id, t);
  }
  return per;
}

async function showResult(out, res, currency) {
  if (!out.plan) {
    res.innerHTML = `<p class="error" role="alert">The what-if ${esc(out.state)}: ${esc(out.error || out.message || "")}</p>`;
    return;
  }
  const d = out.diff;
  const moved = d ? d.jobs.moved : [];
  const per = out.base_plan_id ? await changedSiteHours(out.base_plan_id, out.plan.id) : new Map();
  res.innerHTML = `
    <h3 id="diff-title">Result: plan ${out.plan.id} (${esc(out.plan.status)}, gap ${pct(out.plan.gap, 2)}) against plan ${out.base_plan_id ?? "–"}</h3>
    ${d ? `<table id="whatif-diff" aria-labelledby="diff-title"><thead><tr><th scope="col">KPI</th><th scope="col" class="num">active plan</th><th scope="col" class="num">what-if</th><th scope="col" class="num">change</th></tr></thead>
      <tbody>${Object.entries(d.totals).map(([k, t]) => `<tr data-kpi="${esc(k)}"><th scope="row">${esc(k)}</th><td class="num">${num(t.a, 3)}</td><td class="num">${num(t.b, 3)}</td><td class="num">${t.delta > 0 ? "+" : ""}${num(t.delta, 3)}</td></tr>`).join("")}</tbody></table>
      <p class="hint">money in ${esc(currency)}, energy in MWh, emissions in tCO2, shares as fractions (names as in docs/bundle.md)</p>` : `<p>${esc(out.message || "no diff")}</p>`}
    <h3>Moved jobs (${moved.length})</h3>
    ${moved.length ? `<ul id="moved-jobs">${moved.map((m) => `<li>${esc(m.workload_id)}: ${esc(m.site_a)} → ${esc(m.site_b)}</li>`).join("")}</ul>` : "<p>No job changes site.</p>"}
    <h3>Changed site-hours</h3>
    <table id="changed-site-hours"><thead><tr><th scope="col">site</th><th scope="col" class="num">hours changed</th><th scope="col" class="num">largest change (MW)</th></tr></thead>
      <tbody>${[...per].map(([s, t]) => `<tr><td>${esc(s)}</td><td class="num">${t.hours}</td><td class="num">${num(t.maxMw, 3)}</td></tr>`).join("")}</tbody></table>`;
}

// ---------------------------------------------------------------- cost–carbon curve
function sweepForm() {
  return `<form class="whatif" id="sweep-form" aria-labelledby="sweep-title">
    <div class="row"><label for="sweep-values">carbon prices (CNY/tCO2, comma-separated)</label>
      <input id="sweep-values" value="0, 200, 1000" size="24">
      <button type="submit" id="sweep-run">Run sweep</button></div>
    <span class="status-line" id="sweep-status" role="status"></span>
    <p class="error" id="sweep-error" role="alert"></p></form>`;
}

// Consecutive points by carbon price: what each tonne saved costs (cost without the carbon
// price, so the price does not count against its own point).
export function abatementSteps(points) {
  const ok = points.filter((p) => p.state === "succeeded" && p.cost_excl_carbon !== null);
  return ok.slice(1).map((p, i) => {
    const q = ok[i];
    const saved = q.emissions_t - p.emissions_t;
    return { from: q.value, to: p.value, dCost: p.cost_excl_carbon - q.cost_excl_carbon, saved, perT: saved > 1e-9 ? (p.cost_excl_carbon - q.cost_excl_carbon) / saved : null };
  });
}

function drawCurve(canvas, points, currency) {
  if (curveChart) curveChart.destroy();
  const ok = points.filter((p) => p.state === "succeeded");
  curveChart = new window.Chart(canvas, {
    type: "scatter",
    data: { datasets: [{
      label: `carbon price points (${currency}/tCO2)`, showLine: true, borderColor: OKABE_ITO.blue, backgroundColor: OKABE_ITO.orange,
      pointRadius: 6, data: ok.map((p) => ({ x: p.emissions_t, y: p.cost_excl_carbon, value: p.value })),
    }] },
    options: {
      maintainAspectRatio: false, animation: false,
      plugins: { tooltip: { callbacks: { label: (c) => `${c.raw.value} ${currency}/t: ${num(c.raw.x, 2)} tCO2, ${num(c.raw.y, 0)} ${currency}` } } },
      scales: {
        x: { title: { display: true, text: "emissions, contract-based (tCO2)" } },
        y: { title: { display: true, text: `cost without the carbon price (${currency})` } },
      },
    },
  });
}

async function runSweep(el, currency) {
  const status = el.querySelector("#sweep-status"), err = el.querySelector("#sweep-error"), out = el.querySelector("#sweep-result");
  err.textContent = "";
  const values = el.querySelector("#sweep-values").value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  el.querySelector("#sweep-run").disabled = true;
  try {
    const sw = await api("/what-if/sweep", { method: "POST", body: { parameter: "carbon_price_cny_per_t", values, note: "dashboard curve" } });
    const done = await follow(`/what-if/sweep/${sw.id}`, status, (r) => r.state !== "running");
    status.textContent = `sweep ${done.id}: ${done.state}`;
    const steps = abatementSteps(done.points);
    out.innerHTML = `<div class="chart small"><canvas id="curve-chart" role="img" aria-label="Cost–carbon curve"></canvas></div>
      <table id="abatement"><caption>Abatement cost of each step</caption><thead><tr><th scope="col">carbon price step (${esc(currency)}/tCO2)</th><th scope="col" class="num">emissions saved (tCO2)</th><th scope="col" class="num">extra cost (${esc(currency)})</th><th scope="col" class="num">abatement cost (${esc(currency)}/tCO2)</th></tr></thead>
      <tbody>${steps.map((s) => `<tr><td>${num(s.from, 0)} → ${num(s.to, 0)}</td><td class="num">${num(s.saved, 3)}</td><td class="num">${num(s.dCost, 0)}</td><td class="num">${s.perT === null ? "no saving" : num(s.perT, 0)}</td></tr>`).join("")}</tbody></table>`;
    drawCurve(out.querySelector("#curve-chart"), done.points, currency);
  } catch (e) {
    err.textContent = problemsText(e);
    status.textContent = "";
  } finally {
    el.querySelector("#sweep-run").disabled = false;
  }
}

export async function renderWhatIf(el, { who }) {
  if (!who.can_plan) {
    el.innerHTML = `<h2>What-if</h2><p role="alert">What-ifs need a planner or admin key; this key is a ${esc(who.role)}.</p>`;
    return;
  }
  const plan = await activePlan();
  const [sitesT, sh] = await Promise.all([table("sites"), siteHours(plan.id)]);
  const zones = [...new Set(sitesT.rows.map((s) => s.zone))].sort();
  const stamps = [...new Map(sh.map((r) => [r.hour, r.timestamp]))].sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  // the horizon's end keeps the scenario's offset: the last stamp plus one hour
  const last = stamps.at(-1);
  const offset = last.slice(19);
  const endLocal = new Date(new Date(last).getTime() + 3600e3 + offsetMinutes(offset) * 60e3).toISOString().slice(0, 19) + offset;
  el.innerHTML = `<h2 id="whatif-title">What-if against active plan ${plan.id}</h2>
    ${form(zones, sitesT.rows.map((s) => s.site_id), stamps, endLocal)}
    <div id="whatif-result" aria-live="polite"></div>
    <h2 id="sweep-title">Cost–carbon curve</h2>
    <p class="hint">Each carbon price is solved as a what-if; the curve shows cost without the carbon price against emissions.</p>
    ${sweepForm()}<div id="sweep-result" aria-live="polite"></div>`;
  el.querySelector("#whatif-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = el.querySelector("#whatif-status"), err = el.querySelector("#whatif-error");
    err.textContent = "";
    el.querySelector("#whatif-run").disabled = true;
    try {
      const first = await api("/what-if?wait_s=1", { method: "POST", body: { overrides: overrides(el), note: "dashboard" } });
      const out = ["queued", "running"].includes(first.state)
        ? await follow(`/what-if/${first.run_id}`, status, (r) => !["queued", "running"].includes(r.state))
        : first;
      status.textContent = `run ${out.run_id}: ${out.state}`;
      await showResult(out, el.querySelector("#whatif-result"), plan.currency);
    } catch (e) {
      err.textContent = problemsText(e);
      status.textContent = "";
    } finally {
      el.querySelector("#whatif-run").disabled = false;
    }
  });
  el.querySelector("#sweep-form").addEventListener("submit", (ev) => { ev.preventDefault(); runSweep(el, plan.currency); });
}

function offsetMinutes(off) {
  const m = /^([+-])(\d\d):(\d\d)$/.exec(off);
  return m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
}
