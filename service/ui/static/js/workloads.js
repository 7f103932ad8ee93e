// Workloads: a Gantt of jobs by site and hour (moved and paused jobs marked, unplaced jobs
// listed with their reasons), inference replicas per service, site and hour as a heat map,
// and the plan's own explanation (binding limits, moves).
import { activePlan, assignments, explain, siteHours, workloads } from "./data.js";
import { OKABE_ITO, esc, hourLabel, num, ramp } from "./fmt.js";

const CELL_W = 18, ROW_H = 20, LEFT = 190, TOP = 28;

function hoursAxis(hours, labels) {
  return hours.map((h) => (h % 6 === 0
    ? `<text x="${LEFT + h * CELL_W}" y="${TOP - 8}" font-size="11">${esc(labels[h])}</text>
       <line x1="${LEFT + h * CELL_W}" x2="${LEFT + h * CELL_W}" y1="${TOP - 4}" y2="100%" stroke="#d0d7de"/>` : "")).join("");
}

// One row per job, grouped by site; a bar per run of consecutive hours, so a pause shows as
// a gap. Moved jobs are orange and labelled, the rest blue.
function gantt(jobs, byJob, nHours, labels) {
  const rows = jobs.filter((j) => byJob.has(j.workload_id))
    .sort((a, b) => String(a.site_id).localeCompare(String(b.site_id)) || a.workload_id.localeCompare(b.workload_id));
  const hours = [...Array(nHours).keys()];
  const bars = rows.map((j, i) => {
    const hs = byJob.get(j.workload_id).sort((a, b) => a - b);
    const y = TOP + i * ROW_H;
    const moved = String(j.moved).toLowerCase() === "true";
    const runs = [];
    for (const h of hs) {
      if (runs.length && runs.at(-1)[1] === h - 1) runs.at(-1)[1] = h; else runs.push([h, h]);
    }
    const title = `${j.workload_id} at ${j.site_id} on ${j.accelerator}${moved ? `, moved from ${j.current_site}` : ""}${runs.length > 1 ? `, ${runs.length - 1} pause(s)` : ""}`;
    return `<g><title>${esc(title)}</title>
      <text x="4" y="${y + 14}" font-size="12">${esc(j.site_id)} · ${esc(j.workload_id)}${moved ? " ⇄" : ""}</text>
      ${runs.map(([a, b]) => `<rect x="${LEFT + a * CELL_W}" y="${y + 3}" width="${(b - a + 1) * CELL_W - 1}" height="${ROW_H - 6}"
         fill="${moved ? OKABE_ITO.orange : OKABE_ITO.blue}"/>`).join("")}</g>`;
  }).join("");
  const h = TOP + rows.length * ROW_H + 4;
  return `<svg width="${LEFT + nHours * CELL_W + 10}" height="${h}" role="img" aria-labelledby="gantt-title">
    ${hoursAxis(hours, labels)}${bars}</svg>`;
}

// Replicas (devices serving) per service and site, per hour, as a heat map. Colour by the
// square root of the count: a few large services would otherwise leave every other cell dark.
// Drawn on a canvas: the default scenario has ~280 rows x 48 hours, and as SVG (a rect and a
// title per cell) those 27,000 nodes took most of the page's time; a cell's figures show on hover.
export function heatCells(asg, nHours) {
  const cells = new Map();
  for (const a of asg) {
    const k = `${a.workload_id}\u0000${a.site_id}`;
    if (!cells.has(k)) cells.set(k, new Array(nHours).fill(0));
    cells.get(k)[a.hour] += a.devices;
  }
  const keys = [...cells.keys()].sort();
  let max = 1;
  for (const row of cells.values()) for (const v of row) if (v > max) max = v;
  return { keys, rows: keys.map((k) => cells.get(k)), max };
}

function heatmap(box, asg, nHours, labels) {
  const { keys, rows, max } = heatCells(asg, nHours);
  const w = LEFT + nHours * CELL_W + 10, h = TOP + keys.length * ROW_H + 4;
  const dpr = window.devicePixelRatio || 1;
  const canvas = Object.assign(document.createElement("canvas"), { width: w * dpr, height: h * dpr });
  Object.assign(canvas.style, { width: `${w}px`, height: `${h}px` });
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-labelledby", "heat-title");
  canvas.dataset.rows = String(keys.length);
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#1b1f23";
  for (let hr = 0; hr < nHours; hr += 6) {
    g.fillText(labels[hr], LEFT + hr * CELL_W, TOP - 8);
    g.fillStyle = "#d0d7de";
    g.fillRect(LEFT + hr * CELL_W, TOP - 4, 1, h);
    g.fillStyle = "#1b1f23";
  }
  g.font = "12px system-ui, sans-serif";
  keys.forEach((k, i) => {
    const y = TOP + i * ROW_H;
    g.fillStyle = "#1b1f23";
    g.fillText(k.replace("\u0000", " @ "), 4, y + 14, LEFT - 8);
    rows[i].forEach((v, hr) => {
      g.fillStyle = v ? ramp(Math.sqrt(v / max)) : "#f3f3f3";
      g.fillRect(LEFT + hr * CELL_W, y + 1, CELL_W - 1, ROW_H - 2);
    });
  });
  canvas.addEventListener("mousemove", (e) => {
    const r = canvas.getBoundingClientRect();
    const i = Math.floor((e.clientY - r.top - TOP) / ROW_H), hr = Math.floor((e.clientX - r.left - LEFT) / CELL_W);
    const ok = i >= 0 && i < keys.length && hr >= 0 && hr < nHours;
    canvas.title = ok ? `${keys[i].replace("\u0000", " @ ")}, ${labels[hr]}: ${rows[i][hr]} devices` : "";
  });
  box.replaceChildren(canvas);
  return max;
}

export async function renderWorkloads(el) {
  el.innerHTML = "<h2>Workloads</h2><p class='muted'>loading…</p>";
  const plan = await activePlan();
  // the assignments (21,000 rows on the default scenario) take longest: asked for first,
  // awaited last, so the explanation's tables show while they arrive
  const asgP = assignments(plan.id);
  asgP.catch(() => {});  // awaited below; a failure is reported there
  const [wl, ex, sh] = await Promise.all([workloads(plan.id), explain(plan.id), siteHours(plan.id)]);
  const labels = [...new Map(sh.map((r) => [r.hour, hourLabel(r.timestamp)]))].sort((a, b) => a[0] - b[0]).map((x) => x[1]);
  const nHours = labels.length;
  const jobs = wl.items.filter((w) => w.kind !== "inference");
  const sites = [...new Set(sh.map((r) => r.site_id))].sort();
  const unplaced = ex.unplaced || [];
  const moves = ex.moves || [];
  const binding = ex.binding_hours || {};
  const limits = [...new Set(Object.values(binding).flatMap((b) => Object.keys(b)))];
  el.innerHTML = `
    <h2>Workloads: active plan ${plan.id}</h2>
    <p><label for="wl-site">Site</label><select id="wl-site"><option value="">all sites</option>${sites.map((x) => `<option>${esc(x)}</option>`).join("")}</select>
      <span class="hint">filters the Gantt and the heat map</span></p>
    <div class="panel"><h3 id="gantt-title">Jobs by site and hour</h3>
      <div class="legend"><span><span class="swatch" style="background:${OKABE_ITO.blue}"></span>runs (a gap is a pause)</span>
        <span><span class="swatch" style="background:${OKABE_ITO.orange}"></span>moved from its current site (⇄)</span>
        <span class="muted">x: hour (scenario time, day HH:MM), one column per hour</span></div>
      <div class="scroll tall" id="gantt" tabindex="0" aria-label="Gantt, scrollable"><p class="muted">loading the assignments…</p></div></div>
    <div class="panel"><h3>Unplaced work (${unplaced.length})</h3>
      ${unplaced.length ? `<table id="unplaced"><thead><tr><th scope="col">workload</th><th scope="col">kind</th><th scope="col">why</th></tr></thead>
        <tbody>${unplaced.map((u) => `<tr><td>${esc(u.workload_id)}</td><td>${esc(u.kind)}</td><td>${esc(u.reason)}</td></tr>`).join("")}</tbody></table>` : "<p>Every job is placed.</p>"}</div>
    <div class="panel"><h3>Moves (${moves.length})</h3>
      ${moves.length ? `<table><thead><tr><th scope="col">job</th><th scope="col">from</th><th scope="col">to</th><th scope="col" class="num">net saving (${esc(plan.currency)})</th><th scope="col">why</th></tr></thead>
        <tbody>${moves.map((m) => `<tr><td>${esc(m.workload_id)}</td><td>${esc(m.from_site)}</td><td>${esc(m.to_site)}</td><td class="num">${num(m.net_saving, 0)}</td><td>${esc(m.why ?? "")}</td></tr>`).join("")}</tbody></table>` : "<p>No running job moves.</p>"}</div>
    <div class="panel"><h3 id="heat-title">Inference replicas per service, site and hour</h3>
      <div class="legend" id="heat-legend"></div>
      <div class="scroll tall" id="heatmap" tabindex="0" aria-label="Heat map, scrollable"><p class="muted">loading the assignments…</p></div></div>
    <div class="panel"><h3>Limits that bind (hours per site)</h3>
      <table><thead><tr><th scope="col">site</th>${limits.map((k) => `<th scope="col" class="num">${esc(k.replace("_", " "))} (h)</th>`).join("")}</tr></thead>
      <tbody>${Object.entries(binding).map(([s, b]) => `<tr><td>${esc(s)}</td>${limits.map((k) => `<td class="num">${(b[k] || []).length}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
  const box = el.querySelector("#gantt");
  const asg = await asgP;
  if (!el.contains(box)) return;  // the tab moved on to another view meanwhile
  const byJob = new Map();
  const services = [];
  for (const a of asg) {
    if (a.tokens_per_s === null) {
      if (!byJob.has(a.workload_id)) byJob.set(a.workload_id, []);
      byJob.get(a.workload_id).push(a.hour);
    } else services.push(a);
  }
  const draw = () => {
    const site = el.querySelector("#wl-site").value;
    const mine = (x) => !site || x.site_id === site;
    el.querySelector("#gantt").innerHTML = gantt(jobs.filter(mine), byJob, nHours, labels);
    const max = heatmap(el.querySelector("#heatmap"), services.filter(mine), nHours, labels);
    el.querySelector("#heat-legend").innerHTML = `<span>devices serving (square-root colour scale; hover a cell for its figures):</span><span><span class="swatch" style="background:#f3f3f3"></span>0</span>
      <span><span class="swatch" style="background:${ramp(0.5)}"></span>${num(max / 4, 0)}</span>
      <span><span class="swatch" style="background:${ramp(1)}"></span>${max}</span>`;
  };
  el.querySelector("#wl-site").addEventListener("change", draw);
  draw();
}
