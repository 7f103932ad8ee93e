// The one way the dashboard talks to the server: the JSON API, with the signed-in key.
// The key lives in this tab's sessionStorage (gone when the tab closes).
const KEY = "greenopt.key";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (k) => sessionStorage.setItem(KEY, k),
  clear: () => sessionStorage.removeItem(KEY),
};

export async function api(path, { method = "GET", body, withKey = key.get(), raw = false, accept } = {}) {
  const headers = { "X-API-Key": withKey || "" };
  if (accept) headers.Accept = accept;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (raw && res.ok) return res;
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Every row of a paginated plan table (site-hours, assignments): the first page says how
// many there are, the other pages are then asked for at once (not one after another).
export async function allRows(path, pageSize = 10000) {
  const sep = path.includes("?") ? "&" : "?";
  const page = (offset) => api(`${path}${sep}offset=${offset}&limit=${pageSize}`);
  const first = await page(0);
  const step = first.items.length;  // the page size the server granted
  const offsets = [];
  for (let o = step; step && o < first.total; o += step) offsets.push(o);
  const rest = await Promise.all(offsets.map(page));
  return first.items.concat(...rest.map((p) => p.items));
}
