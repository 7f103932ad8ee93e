// History: stored plans (activate for planners and admins, download the bundle) and the
// nightly runs with what each did.
import { api } from "./api.js";
import { activePlan } from "./data.js";
import { age, esc, num, pct } from "./fmt.js";

// Plans answering a what-if were made for changed data: the API refuses to activate them
// (service/plans.py WHAT_IF_KINDS), so the page does not offer it.
const WHAT_IF_KINDS = ["whatif", "sweep_point"];

// What a plan can be downloaded as: the API's exports (docs/service.md). The key is a
// header, so a plain link cannot carry it: each is fetched, then saved from a blob.
export const EXPORTS = [
  { id: "bundle", label: "Bundle (zip)", path: "bundle", file: "plan-{id}.zip" },
  { id: "actions", label: "Actions (CSV)", path: "actions", accept: "text/csv", file: "plan-{id}-actions.csv" },
  { id: "slurm", label: "Slurm", path: "actions/slurm", file: "plan-{id}-slurm.txt" },
  { id: "kubernetes", label: "Kubernetes (JSON)", path: "actions/kubernetes", file: "plan-{id}-kubernetes.json" },
];

async function download(planId, exp) {
  const res = await api(`/plans/${planId}/${exp.path}`, { raw: true, accept: exp.accept });
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: exp.file.replace("{id}", planId) });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

export async function renderHistory(el, { who }) {
  const [plans, nights, active] = await Promise.all([
    api("/plans?limit=50"), api("/schedule/history?limit=20"), activePlan().catch(() => ({ currency: "" })),
  ]);
  el.innerHTML = `
    <h2>History</h2>
    <h3 id="plans-title">Plans (newest first, ${plans.total} in all)</h3>
    <p class="error" id="history-error" role="alert"></p>
    <div class="scroll"><table id="plans" aria-labelledby="plans-title"><thead><tr>
      <th scope="col">plan</th><th scope="col">kind</th><th scope="col">status</th><th scope="col">solved</th>
      <th scope="col" class="num">cost (${esc(active.currency)})</th><th scope="col" class="num">emissions (tCO2, contract / location)</th>
      <th scope="col" class="num">green share</th><th scope="col" class="num">gap</th><th scope="col">downloads and actions</th></tr></thead>
      <tbody>${plans.items.map((p) => `<tr data-plan="${p.id}">
        <td>${p.id}${p.active ? " <strong>(active)</strong>" : ""}</td><td>${esc(p.kind)}</td><td>${esc(p.status)}</td>
        <td title="${esc(p.created_at)}">${age(p.created_at)}</td><td class="num">${num(p.total_cost, 0)}</td>
        <td class="num">${num(p.emissions_t, 2)} / ${num(p.emissions_location_t, 2)}</td><td class="num">${pct(p.green_share)}</td>
        <td class="num">${p.gap === null ? "–" : pct(p.gap, 2)}</td>
        <td class="actions">${EXPORTS.map((x) => `<button type="button" class="secondary small" data-download="${p.id}" data-export="${x.id}"
          aria-label="${esc(`${x.label}, plan ${p.id}`)}">${esc(x.label)}</button>`).join("")}
          ${who.can_plan && !p.active && !WHAT_IF_KINDS.includes(p.kind) ? `<button type="button" data-activate="${p.id}">Activate</button>` : ""}</td></tr>`).join("")}</tbody></table></div>
    <h3 id="nights-title">Nightly runs</h3>
    ${nights.items.length ? `<table id="nights" aria-labelledby="nights-title"><thead><tr><th scope="col">night</th><th scope="col">trigger</th><th scope="col">state</th><th scope="col">plan</th><th scope="col">what happened</th></tr></thead>
      <tbody>${nights.items.map((n) => `<tr><td>${esc(n.night ?? age(n.created_at))}</td><td>${esc(n.trigger)}</td><td>${esc(n.state)}</td><td>${n.plan_id ?? "–"}${n.activated ? " (activated)" : ""}</td><td>${esc(n.reason)}</td></tr>`).join("")}</tbody></table>` : "<p>No nightly run yet.</p>"}`;
  const err = el.querySelector("#history-error");
  for (const b of el.querySelectorAll("[data-download]")) {
    const exp = EXPORTS.find((x) => x.id === b.dataset.export);
    b.addEventListener("click", () => download(b.dataset.download, exp).catch((e) => { err.textContent = `${exp.label} of plan ${b.dataset.download}: ${e.message}`; }));
  }
  for (const b of el.querySelectorAll("[data-activate]")) {
    b.addEventListener("click", async () => {
      if (!confirm(`Activate plan ${b.dataset.activate}? The active plan is what operations follow.`)) return;
      try {
        await api(`/plans/${b.dataset.activate}/activate`, { method: "POST" });
        await renderHistory(el, { who });
      } catch (e) {
        err.textContent = e.message;
      }
    });
  }
}
