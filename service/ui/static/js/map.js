// The map: sites at their coordinates on the region's outline (Natural Earth 1:110m,
// static/map/SOURCE.md), sized by mean load, coloured by green share; the demand regions
// (demand_regions.csv) and a line for each site-region pair of latency.csv, coloured by its
// latency, solid and labelled where the plan serves inference over it. A site opens its view.
import { activePlan, links, outline, siteHours, siteTotals, table } from "./data.js";
import { OKABE_ITO, esc, num, pct, ramp, rampStops } from "./fmt.js";

const W = 900, H = 560, PAD_DEG = 4, MIN_SPAN_DEG = 12, MAX_R = 28, MIN_R = 6;

// Latency classes of a link (upper bound in ms, colour), Okabe-Ito: distinct with the common
// colour-vision deficiencies and from the green-share ramp of the sites.
export const LATENCY_CLASSES = [
  [10, OKABE_ITO.blue], [25, OKABE_ITO.sky], [50, OKABE_ITO.orange], [Infinity, OKABE_ITO.vermillion],
];
const latencyColour = (ms) => LATENCY_CLASSES.find(([max]) => ms <= max)[1];
const classLabel = (i) => {
  const lo = i ? LATENCY_CLASSES[i - 1][0] : 0, hi = LATENCY_CLASSES[i][0];
  return hi === Infinity ? `> ${lo} ms` : `${lo}–${hi} ms`;
};

// Equirectangular projection around the points' box, x scaled by cos(latitude) so shapes
// keep their proportions at the box's middle latitude.
function projection(points) {
  const lons = points.map((s) => s.lon), lats = points.map((s) => s.lat);
  let [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const grow = (a, b) => { const m = (a + b) / 2, h = Math.max(b - a + 2 * PAD_DEG, MIN_SPAN_DEG) / 2; return [m - h, m + h]; };
  [x0, x1] = grow(x0, x1); [y0, y1] = grow(y0, y1);
  const k = Math.cos((((y0 + y1) / 2) * Math.PI) / 180);
  const scale = Math.min(W / ((x1 - x0) * k), H / (y1 - y0));
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  return ([lon, lat]) => [W / 2 + (lon - cx) * k * scale, H / 2 - (lat - cy) * scale];
}

const f1 = (v) => v.toFixed(1);

// A link is one of a region's main links when it carries at least this share of the
// tokens the plan serves that region: drawn wide and labelled; the plan's other links thin.
export const MAIN_LINK_SHARE = 0.1;

// The plan's links by "site\0region", each with its share of its region's served tokens.
function linkShares(items) {
  const byRegion = new Map();
  for (const x of items) byRegion.set(x.demand_region, (byRegion.get(x.demand_region) || 0) + x.mtokens);
  return new Map(items.map((x) => [`${x.site_id}\u0000${x.demand_region}`,
    { ...x, share: byRegion.get(x.demand_region) > 0 ? x.mtokens / byRegion.get(x.demand_region) : 0 }]));
}

// One line per latency.csv pair whose region has a point; the plan's links drawn on top.
function linkLines(latency, siteAt, regionAt, used) {
  const maxMtok = Math.max(1e-9, ...[...used.values()].map((u) => u.mtokens));
  const lines = latency.filter((l) => siteAt.has(l.site_id) && regionAt.has(l.demand_region)).map((l) => {
    const u = used.get(`${l.site_id}\u0000${l.demand_region}`);
    const [x1, y1] = siteAt.get(l.site_id), [x2, y2] = regionAt.get(l.demand_region);
    const ms = Number(l.latency_ms);
    const title = `${l.site_id} ↔ ${l.demand_region}: ${num(ms, 1)} ms` + (u
      ? `, serves ${num(u.mtokens, 1)} Mtoken (${pct(u.share, 0)} of the region's) over ${u.hours} h, ${u.services} service(s)`
      : ", not used by this plan");
    const main = u && u.share >= MAIN_LINK_SHARE;
    const width = main ? 2 + 5 * Math.sqrt(u.mtokens / maxMtok) : u ? 1.5 : 1.2;
    const style = main ? "" : u ? 'stroke-opacity="0.7"' : 'stroke-dasharray="4 4" stroke-opacity="0.5"';
    const line = `<line class="link${u ? " used" : ""}${main ? " main" : ""}" data-site="${esc(l.site_id)}" data-region="${esc(l.demand_region)}"
      x1="${f1(x1)}" y1="${f1(y1)}" x2="${f1(x2)}" y2="${f1(y2)}" stroke="${latencyColour(ms)}" stroke-width="${width.toFixed(1)}"
      ${style} stroke-linecap="round"><title>${esc(title)}</title></line>`;
    const label = main ? `<text class="link-label" x="${f1((x1 + x2) / 2)}" y="${f1((y1 + y2) / 2 - 3)}" font-size="11" text-anchor="middle"
      paint-order="stroke" stroke="#fff" stroke-width="3">${num(ms, 1)} ms</text>` : "";
    return { u, svg: line, label };
  });
  // unused first, so the plan's links lie on top of them (widest last); labels above every line
  const order = (x) => (x.u ? 1 + x.u.mtokens / maxMtok : 0);
  return [...lines].sort((a, b) => order(a) - order(b)).map((x) => x.svg).join("")
    + lines.map((x) => x.label).join("");
}

function regionMarks(regions, regionAt) {
  return regions.filter((r) => regionAt.has(r.demand_region)).map((r) => {
    const [x, y] = regionAt.get(r.demand_region);
    const label = `demand region ${r.demand_region}${r.name ? ` (${r.name})` : ""}`;
    // above the sites, so a region beside a site stays visible; clicks pass through to the site
    return `<g class="region" data-region="${esc(r.demand_region)}" pointer-events="none" aria-label="${esc(label)}">
      <rect x="${f1(x - 7)}" y="${f1(y - 7)}" width="14" height="14" transform="rotate(45 ${f1(x)} ${f1(y)})"
        fill="#fff" stroke="${OKABE_ITO.black}" stroke-width="2"><title>${esc(label)}</title></rect>
      <text x="${f1(x)}" y="${f1(y - 12)}" font-size="12" font-weight="600" font-style="italic" text-anchor="middle"
        paint-order="stroke" stroke="#fff" stroke-width="3">${esc(r.demand_region)}</text></g>`;
  }).join("");
}

function siteDots(sites, totals, project, radius) {
  return sites.map((s) => {
    const t = totals.get(s.site_id) || { meanMw: 0, greenShare: 0 };
    const [x, y] = project([s.lon, s.lat]);
    const label = `${s.name || s.site_id}: mean load ${num(t.meanMw, 2)} MW, green share ${pct(t.greenShare)}`;
    return `<g class="site" data-site="${esc(s.site_id)}">
      <circle cx="${f1(x)}" cy="${f1(y)}" r="${f1(radius(t.meanMw))}" fill="${ramp(t.greenShare)}"
        stroke="#000" stroke-width="1.2" tabindex="0" role="link" aria-label="${esc(label)}" style="cursor:pointer"><title>${esc(label)}</title></circle>
      <text x="${f1(x + radius(t.meanMw) + 4)}" y="${f1(y + 4)}" font-size="13" paint-order="stroke" stroke="#fff" stroke-width="3">${esc(s.site_id)}</text>
    </g>`;
  }).join("");
}

function linksTable(latency, used) {
  const rows = latency.map((l) => ({ ...l, u: used.get(`${l.site_id}\u0000${l.demand_region}`) }))
    .sort((a, b) => (b.u?.mtokens ?? -1) - (a.u?.mtokens ?? -1) || Number(a.latency_ms) - Number(b.latency_ms));
  return `<table id="links"><thead><tr><th scope="col">site</th><th scope="col">demand region</th><th scope="col" class="num">latency (ms)</th>
    <th scope="col" class="num">served (Mtoken)</th><th scope="col" class="num">share of the region's</th><th scope="col" class="num">hours used</th><th scope="col" class="num">services</th></tr></thead>
    <tbody>${rows.map((r) => `<tr${r.u ? ' class="used"' : ""}><td>${esc(r.site_id)}</td><td>${esc(r.demand_region)}</td><td class="num">${num(r.latency_ms, 1)}</td>
      <td class="num">${r.u ? num(r.u.mtokens, 1) : "–"}</td><td class="num">${r.u ? pct(r.u.share) : "–"}</td><td class="num">${r.u ? r.u.hours : "–"}</td><td class="num">${r.u ? r.u.services : "–"}</td></tr>`).join("")}</tbody></table>`;
}

export async function renderMap(el) {
  el.innerHTML = "<h2>Map</h2><p class='muted'>loading…</p>";
  const plan = await activePlan();
  const v = plan.scenario_version_id;
  const [sitesT, rows, geo, latT, regT, ln] = await Promise.all([
    table("sites", v), siteHours(plan.id), outline(), table("latency", v), table("demand_regions", v), links(plan.id),
  ]);
  const sites = sitesT.rows.map((r) => ({ ...r, lat: Number(r.lat), lon: Number(r.lon) }));
  const regions = regT.rows.map((r) => ({ ...r, lat: Number(r.lat), lon: Number(r.lon) }));
  const used = linkShares(ln.items);
  const totals = siteTotals(rows);
  const project = projection([...sites, ...regions]);
  const siteAt = new Map(sites.map((s) => [s.site_id, project([s.lon, s.lat])]));
  const regionAt = new Map(regions.map((r) => [r.demand_region, project([r.lon, r.lat])]));
  const unplaced = [...new Set(latT.rows.map((l) => l.demand_region))].filter((r) => !regionAt.has(r));
  const maxMw = Math.max(...[...totals.values()].map((t) => t.meanMw), 1e-9);
  const radius = (mw) => MIN_R + (MAX_R - MIN_R) * Math.sqrt(mw / maxMw);  // area ~ load
  const path = (ring) => "M" + ring.map((p) => project(p).map((x) => x.toFixed(1)).join(",")).join("L") + "Z";
  const countries = geo.countries.map((c) =>
    `<path d="${c.rings.map(path).join("")}" fill="#fdfdf8" stroke="#8a9299" stroke-width="0.8"><title>${esc(c.name)}</title></path>`).join("");
  el.innerHTML = `
    <h2>Map: active plan ${plan.id}</h2>
    <p class="hint">Circle area: the site's mean facility load over the horizon; colour: its green share. Diamonds: where the inference users of each demand region are.
      Lines: the site-region pairs of the latency table, coloured by latency. Wide and labelled: the plan's main links, each carrying at least ${pct(MAIN_LINK_SHARE, 0)} of its region's tokens (width by tokens); thin: the plan's other links; dashed: not used.
      Select a site (click, or Tab and Enter) to open it.</p>
    <div class="map"><svg viewBox="0 0 ${W} ${H}" role="group" aria-label="Sites, demand regions and latency links on the map">
      <clipPath id="frame"><rect width="${W}" height="${H}"/></clipPath>
      <g clip-path="url(#frame)">${countries}</g><g id="map-links">${linkLines(latT.rows, siteAt, regionAt, used)}</g>${siteDots(sites, totals, project, radius)}${regionMarks(regions, regionAt)}</svg></div>
    <div class="legend" aria-label="Legend">
      <span>Green share:</span>${rampStops.map((c, i) => `<span><span class="swatch" style="background:${c}"></span>${i * 25} %</span>`).join("")}
      <span>· largest circle: ${num(maxMw, 2)} MW mean load</span>
    </div>
    <div class="legend" aria-label="Legend of the links">
      <span>Link latency (round trip):</span>${LATENCY_CLASSES.map(([, c], i) => `<span><span class="swatch" style="background:${c}"></span>${classLabel(i)}</span>`).join("")}
      <span>· used by the plan: ${used.size} of ${latT.rows.length} (wide: ${[...used.values()].filter((u) => u.share >= MAIN_LINK_SHARE).length} main links), dashed: not used</span>
    </div>
    ${unplaced.length ? `<p class="hint" id="regions-without-point">Demand regions without a point (add them to demand_regions.csv to draw them): ${unplaced.map(esc).join(", ")}</p>` : ""}
    <p class="hint">Outline: Natural Earth admin-0, 1:110m (public domain), via world-atlas (ISC).</p>
    <h3>Sites</h3>
    <table><thead><tr><th scope="col">site</th><th scope="col">zone</th><th scope="col" class="num">mean load (MW)</th><th scope="col" class="num">green share</th></tr></thead>
    <tbody>${sites.map((s) => { const t = totals.get(s.site_id) || {}; return `<tr><td><a href="#/site/${encodeURIComponent(s.site_id)}">${esc(s.name || s.site_id)}</a></td><td>${esc(s.zone)}</td><td class="num">${num(t.meanMw, 3)}</td><td class="num">${pct(t.greenShare)}</td></tr>`; }).join("")}</tbody></table>
    <h3>Latency links (the plan's first, by tokens served)</h3>
    <div class="scroll">${linksTable(latT.rows, used)}</div>`;
  const open = (id) => { location.hash = `#/site/${encodeURIComponent(id)}`; };
  for (const g of el.querySelectorAll("g.site")) {
    const c = g.querySelector("circle");
    c.addEventListener("click", () => open(g.dataset.site));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(g.dataset.site); } });
  }
}
