// The map: sites at their coordinates on the region's outline (Natural Earth 1:110m,
// static/map/SOURCE.md), sized by mean load, coloured by green share; a site opens its view.
import { activePlan, outline, siteHours, siteTotals, table } from "./data.js";
import { esc, num, pct, ramp, rampStops } from "./fmt.js";

const W = 900, H = 560, PAD_DEG = 4, MIN_SPAN_DEG = 12, MAX_R = 28, MIN_R = 6;

// Equirectangular projection around the sites' box, x scaled by cos(latitude) so shapes
// keep their proportions at the box's middle latitude.
function projection(sites) {
  const lons = sites.map((s) => s.lon), lats = sites.map((s) => s.lat);
  let [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const grow = (a, b) => { const m = (a + b) / 2, h = Math.max(b - a + 2 * PAD_DEG, MIN_SPAN_DEG) / 2; return [m - h, m + h]; };
  [x0, x1] = grow(x0, x1); [y0, y1] = grow(y0, y1);
  const k = Math.cos((((y0 + y1) / 2) * Math.PI) / 180);
  const scale = Math.min(W / ((x1 - x0) * k), H / (y1 - y0));
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  return ([lon, lat]) => [W / 2 + (lon - cx) * k * scale, H / 2 - (lat - cy) * scale];
}

export async function renderMap(el) {
  el.innerHTML = "<h2>Map</h2><p class='muted'>loading…</p>";
  const plan = await activePlan();
  const [sitesT, rows, geo] = await Promise.all([table("sites"), siteHours(plan.id), outline()]);
  const sites = sitesT.rows.map((r) => ({ ...r, lat: Number(r.lat), lon: Number(r.lon) }));
  const totals = siteTotals(rows);
  const project = projection(sites);
  const maxMw = Math.max(...[...totals.values()].map((t) => t.meanMw), 1e-9);
  const radius = (mw) => MIN_R + (MAX_R - MIN_R) * Math.sqrt(mw / maxMw);  // area ~ load
  const path = (ring) => "M" + ring.map((p) => project(p).map((v) => v.toFixed(1)).join(",")).join("L") + "Z";
  const countries = geo.countries.map((c) =>
    `<path d="${c.rings.map(path).join("")}" fill="#fdfdf8" stroke="#8a9299" stroke-width="0.8"><title>${esc(c.name)}</title></path>`).join("");
  const dots = sites.map((s) => {
    const t = totals.get(s.site_id) || { meanMw: 0, greenShare: 0 };
    const [x, y] = project([s.lon, s.lat]);
    const label = `${s.name || s.site_id}: mean load ${num(t.meanMw, 2)} MW, green share ${pct(t.greenShare)}`;
    return `<g class="site" data-site="${esc(s.site_id)}">
      <circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${radius(t.meanMw).toFixed(1)}" fill="${ramp(t.greenShare)}"
        stroke="#000" stroke-width="1.2" tabindex="0" role="link" aria-label="${esc(label)}" style="cursor:pointer"><title>${esc(label)}</title></circle>
      <text x="${(x + radius(t.meanMw) + 4).toFixed(1)}" y="${(y + 4).toFixed(1)}" font-size="13" paint-order="stroke" stroke="#fff" stroke-width="3">${esc(s.site_id)}</text>
    </g>`;
  }).join("");
  el.innerHTML = `
    <h2>Map: active plan ${plan.id}</h2>
    <p class="hint">Circle area: the site's mean facility load over the horizon; colour: its green share. Select a site (click, or Tab and Enter) to open it.</p>
    <div class="map"><svg viewBox="0 0 ${W} ${H}" role="group" aria-label="Sites on the map">
      <clipPath id="frame"><rect width="${W}" height="${H}"/></clipPath>
      <g clip-path="url(#frame)">${countries}</g>${dots}</svg></div>
    <div class="legend" aria-label="Legend">
      <span>Green share:</span>${rampStops.map((c, i) => `<span><span class="swatch" style="background:${c}"></span>${i * 25} %</span>`).join("")}
      <span>· largest circle: ${num(maxMw, 2)} MW mean load</span>
    </div>
    <p class="hint">Outline: Natural Earth admin-0, 1:110m (public domain), via world-atlas (ISC).</p>
    <h3>Sites</h3>
    <table><thead><tr><th scope="col">site</th><th scope="col">zone</th><th scope="col" class="num">mean load (MW)</th><th scope="col" class="num">green share</th></tr></thead>
    <tbody>${sites.map((s) => { const t = totals.get(s.site_id) || {}; return `<tr><td><a href="#/site/${encodeURIComponent(s.site_id)}">${esc(s.name || s.site_id)}</a></td><td>${esc(s.zone)}</td><td class="num">${num(t.meanMw, 3)}</td><td class="num">${pct(t.greenShare)}</td></tr>`; }).join("")}</tbody></table>`;
  const open = (id) => { location.hash = `#/site/${encodeURIComponent(id)}`; };
  for (const g of el.querySelectorAll("g.site")) {
    const c = g.querySelector("circle");
    c.addEventListener("click", () => open(g.dataset.site));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(g.dataset.site); } });
  }
}
