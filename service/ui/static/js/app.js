// The dashboard's shell: sign-in, navigation between views (#/overview, #/map, #/site/<id>,
// #/workloads, #/whatif, #/history), and what the signed-in role may see.
import { api, ApiError, key } from "./api.js";
import { esc } from "./fmt.js";
import { renderOverview } from "./overview.js";
import { renderMap } from "./map.js";
import { renderSite } from "./site.js";
import { renderWorkloads } from "./workloads.js";
import { renderWhatIf } from "./whatif.js";
import { renderHistory } from "./history.js";

const $ = (id) => document.getElementById(id);
const VIEWS = {
  overview: renderOverview,
  map: renderMap,
  site: renderSite,
  workloads: renderWorkloads,
  whatif: renderWhatIf,
  history: renderHistory,
};

let who = null;

async function signIn(candidate) {
  // /ui/whoami is the key check: 401 for an unknown, expired or revoked key
  who = await api("/ui/whoami", { withKey: candidate });
  key.set(candidate);
}

function showSignedIn(on) {
  $("sign-in").hidden = on;
  $("nav").hidden = !on;
  $("who").hidden = !on;
  if (on) {
    $("who-name").textContent = `${who.name} (${who.role})`;
    $("nav-whatif").hidden = !who.can_plan;
  } else {
    $("view").replaceChildren();
  }
}

async function route() {
  if (!who) return;
  const [name, ...args] = (location.hash.replace(/^#\//, "") || "overview").split("/");
  const view = VIEWS[name] || renderOverview;
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const el = $("view");
  el.replaceChildren();
  el.dataset.view = name;
  try {
    await view(el, { who, args: args.map(decodeURIComponent) });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signOut(e.message);
    el.insertAdjacentHTML("beforeend", `<p class="error" role="alert">${esc(e.message)}</p>`);
  }
}

function signOut(message = "") {
  key.clear();
  who = null;
  showSignedIn(false);
  $("sign-in-error").textContent = message;
  $("api-key").focus();
}

$("sign-in-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    await signIn($("api-key").value.trim());
    $("api-key").value = "";
    showSignedIn(true);
    await route();
  } catch (e) {
    $("sign-in-error").textContent = e instanceof ApiError && e.status === 401
      ? `Key refused: ${e.message}` : `Sign-in failed: ${e.message}`;
  }
});
$("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);

(async () => {
  const stored = key.get();
  if (stored) {
    try {
      await signIn(stored);
      showSignedIn(true);
      return route();
    } catch {
      key.clear();
    }
  }
  showSignedIn(false);
  $("sign-in").hidden = false;
})();
