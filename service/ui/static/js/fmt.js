// Number formats, units and the colour-blind-safe palettes every view shares.

// Okabe & Ito (2008), distinguishable with the common colour-vision deficiencies.
export const OKABE_ITO = {
  orange: "#E69F00", sky: "#56B4E9", green: "#009E73", yellow: "#F0E442",
  blue: "#0072B2", vermillion: "#D55E00", purple: "#CC79A7", black: "#000000", grey: "#999999",
};
export const SERIES = [OKABE_ITO.blue, OKABE_ITO.orange, OKABE_ITO.green, OKABE_ITO.purple,
  OKABE_ITO.sky, OKABE_ITO.vermillion, OKABE_ITO.yellow, OKABE_ITO.black];

// Sequential ramp for a share 0..1 (viridis stops): perceptually even, readable in grey.
const VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
export function ramp(t) {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  const a = hex(VIRIDIS[i]), b = hex(VIRIDIS[i + 1]);
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * f)).join(",")})`;
}
const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
export const rampStops = VIRIDIS;

export function num(v, digits = 1) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return "–";
  return Number(v).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
export const pct = (v, digits = 1) => (v === null || v === undefined ? "–" : `${num(100 * v, digits)} %`);
export const money = (v, currency) => `${num(v, 0)} ${currency}`;

export function age(iso) {
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// Short hour label from an ISO timestamp in the scenario's zone ("15 13:00").
export const hourLabel = (ts) => `${ts.slice(8, 10)} ${ts.slice(11, 16)}`;
