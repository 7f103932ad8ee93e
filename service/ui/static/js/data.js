// What several views read, fetched once per plan and kept for the tab's life (plans are
// immutable, so a plan's rows never go stale).
import { allRows, api } from "./api.js";

const cache = new Map();
function once(k, load) {
  if (!cache.has(k)) cache.set(k, load().catch((e) => { cache.delete(k); throw e; }));
  return cache.get(k);
}

export const activePlan = () => api("/plans/active");  // not cached: activation changes it
export const siteHours = (planId) => once(`sh${planId}`, () => allRows(`/plans/${planId}/site-hours`));
export const assignments = (planId, q = "") => once(`as${planId}${q}`, () => allRows(`/plans/${planId}/assignments${q}`));
export const workloads = (planId) => once(`wl${planId}`, () => api(`/plans/${planId}/workloads`));
export const explain = (planId) => once(`ex${planId}`, () => api(`/plans/${planId}/explain`));
// A scenario table; with a version, that version's (a plan's own inputs: cached, versions never change).
export const table = (name, version) => (version
  ? once(`t${name}@${version}`, () => api(`/data/${name}?limit=10000&version_id=${version}`))
  : api(`/data/${name}?limit=10000`));
export const links = (planId) => once(`ln${planId}`, () => api(`/plans/${planId}/links`));
export const outline = () => once("outline", () => fetch("/ui/static/map/countries-110m.json").then((r) => r.json()));

// Per site: mean facility load (MW) and green share of its energy over the horizon.
export function siteTotals(rows) {
  const by = new Map();
  for (const r of rows) {
    const t = by.get(r.site_id) || { facility: 0, green: 0, hours: 0 };
    t.facility += r.facility_mw || 0;
    t.green += r.green_used_mw || 0;
    t.hours += 1;
    by.set(r.site_id, t);
  }
  return new Map([...by].map(([s, t]) => [s, {
    meanMw: t.facility / t.hours,
    greenShare: t.facility > 0 ? t.green / t.facility : 0,
  }]));
}
