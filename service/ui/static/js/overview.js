// Plan overview: the active plan's KPIs against every baseline, its status, gap and age,
// and what the nightly run did last.
import { api, ApiError } from "./api.js";
import { age, esc, num, pct } from "./fmt.js";

// The headline KPIs (keys of the bundle contract, docs/bundle.md) and which way is better.
// Every other KPI of the plan is listed in the table below the cards, so a KPI added to
// the contract shows up without a change here.
export const KPI_CARDS = [
  { key: "total_cost", label: "Cost", unit: "currency", better: "lower", digits: 0 },
  { key: "objective", label: "Cost with penalties (objective)", unit: "currency", better: "lower", digits: 0 },
  { key: "emissions_t", label: "Emissions, contract-based", unit: "tCO2", better: "lower" },
  { key: "emissions_location_t", label: "Emissions, location-based", unit: "tCO2", better: "lower" },
  { key: "green_share", label: "Green share", unit: "%", better: "higher" },
  { key: "cfe_score", label: "Hourly CFE (24/7, contracted green)", unit: "%", better: "higher", optional: true },
  { key: "curtailed_mwh", label: "Curtailed green", unit: "MWh", better: "lower" },
  { key: "unplaced", label: "Unplaced jobs", unit: "jobs", better: "lower", digits: 0 },
  { key: "unplaced_device_hours", label: "Unplaced work", unit: "device-h", better: "lower", digits: 0 },
  { key: "unmet_mtokens", label: "Unmet inference demand", unit: "Mtoken", better: "lower" },
];

export function kpiText(card, v, currency) {
  if (card.unit === "%") return pct(v);
  const unit = card.unit === "currency" ? currency : card.unit;
  return `${num(v, card.digits ?? 1)} ${unit}`;
}

// "-12.0 % vs greedy", coloured by whether the plan is better.
function versus(card, mine, theirs) {
  if (theirs === null || theirs === undefined || mine === null || mine === undefined) return "–";
  const d = mine - theirs;
  const digits = card.unit === "%" ? 3 : card.digits ?? 1;
  if (Math.round(Math.abs(d) * 10 ** digits) === 0) return "<span>±0</span>";  // equal as shown
  const rel = theirs !== 0 ? ` (${d > 0 ? "+" : ""}${num((100 * d) / Math.abs(theirs), 1)} %)` : "";
  const good = card.better === "lower" ? d < 0 : d > 0;
  const cls = Math.abs(d) < 1e-9 ? "" : good ? "better" : "worse";
  const abs = card.unit === "%" ? `${d > 0 ? "+" : ""}${num(100 * d, 1)} pt` : `${d > 0 ? "+" : ""}${num(d, card.digits ?? 1)}`;
  return `<span class="${cls}">${abs}${card.unit === "%" ? "" : rel}</span>`;
}

export function kpiCards(kpis, baselines, currency) {
  // a KPI the plan does not carry (an older plan, before hourly CFE) gets no card
  const cards = KPI_CARDS.filter((c) => !c.optional || (kpis[c.key] !== undefined && kpis[c.key] !== null));
  return `<div class="cards" id="kpi-cards">${cards.map((c) => `
    <div class="card" data-kpi="${c.key}">
      <h3>${esc(c.label)}</h3>
      <div class="value">${kpiText(c, kpis[c.key], currency)}</div>
      <ul aria-label="against the baselines">${Object.entries(baselines).map(([name, b]) =>
        `<li><span>vs ${esc(name.replace("_", "-"))}</span>${versus(c, kpis[c.key], b[c.key])}</li>`).join("")}
      </ul>
    </div>`).join("")}</div>`;
}

function nightText(n) {
  if (!n) return "no nightly run yet";
  const when = n.night ? `night of ${n.night}` : `run-now ${age(n.created_at)}`;
  return `${n.state} (${when}): ${n.reason}`;
}

export async function renderOverview(el) {
  let plan;
  try {
    plan = await api("/plans/active");
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      el.innerHTML = `<h2>Plan overview</h2><p>No plan is active yet (the first plan may still be solving: see <a href="/readyz">/readyz</a>).</p>`;
      return;
    }
    throw e;
  }
  const cur = plan.currency;
  el.innerHTML = `
    <h2>Plan overview: active plan ${plan.id}</h2>
    <dl class="meta">
      <div><dt>Status</dt><dd id="plan-status">${esc(plan.status)}</dd></div>
      <div><dt>Gap</dt><dd>${plan.gap === null ? "–" : pct(plan.gap, 2)}</dd></div>
      <div><dt>Solved</dt><dd title="${esc(plan.created_at)}">${age(plan.created_at)}</dd></div>
      <div><dt>Planner</dt><dd>${esc(plan.planner)} (${esc(plan.kind)})</dd></div>
      <div><dt>Scenario version</dt><dd>${plan.scenario_version_id}</dd></div>
      <div><dt>Last nightly</dt><dd id="last-nightly">loading…</dd></div>
    </dl>
    ${kpiCards(plan.kpis, plan.baselines, cur)}
    <h3>Every KPI</h3>
    <div class="scroll"><table id="all-kpis"><caption class="muted">money in ${esc(cur)}; units in the names (docs/bundle.md)</caption>
      <thead><tr><th scope="col">KPI</th><th scope="col" class="num">this plan</th>${Object.keys(plan.baselines)
        .map((b) => `<th scope="col" class="num">${esc(b)}</th>`).join("")}</tr></thead>
      <tbody>${Object.entries(plan.kpis).map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td class="num">${num(v, 3)}</td>${
        Object.values(plan.baselines).map((b) => `<td class="num">${num(b[k], 3)}</td>`).join("")}</tr>`).join("")}</tbody>
    </table></div>`;
  // the nightly line fills in after the first paint
  api("/schedule/history?limit=1").then(
    (h) => { el.querySelector("#last-nightly").textContent = nightText(h.items[0]); },
    (e) => { el.querySelector("#last-nightly").textContent = `unavailable (${e.message})`; },
  );
}
