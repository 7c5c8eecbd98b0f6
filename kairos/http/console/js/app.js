// The console's shell: sign-in, the hash routes, and where focus goes when a page changes.
import { apiKey, signIn, signOut } from "./api.js";
import { accountConfig, setUpAccountSignIn } from "./account.js";
import { alertError } from "./ui.js";
import { journeysPage, journeyPage } from "./journeys.js";
import { segmentsPage } from "./segments.js";
import { customersPage } from "./customers.js";
import { insightsPage } from "./insights.js";
import { modelsPage } from "./models.js";

const ROUTES = [
  [/^#\/journeys\/([0-9a-f]{32})$/, (m) => journeyPage(m[1]), "journeys"],
  [/^#\/journeys$/, () => journeysPage(), "journeys"],
  [/^#\/segments$/, () => segmentsPage(), "segments"],
  [/^#\/customers(?:\/(.+))?$/, (m) => customersPage(m[1] ? decodeURIComponent(m[1]) : ""), "customers"],
  [/^#\/insights$/, () => insightsPage(), "insights"],
  [/^#\/models$/, () => modelsPage(), "models"],
];

function keyFromFragment() {
  // make serve prints /console/#key=<local key>: keep it for this tab, then take it out of the address bar.
  const m = location.hash.match(/^#key=(.+)$/);
  if (!m) return;
  signIn(decodeURIComponent(m[1]));
  history.replaceState(null, "", `${location.pathname}#/journeys`);
}

async function route() {
  alertError(null);
  const signedIn = Boolean(apiKey());
  document.getElementById("sign-in").hidden = signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  document.querySelector("nav").hidden = !signedIn;
  const viewEl = document.getElementById("view");
  if (!signedIn) {
    viewEl.replaceChildren();
    document.getElementById("api-key").focus();
    return;
  }
  const hash = location.hash || "#/journeys";
  for (const [re, render, nav] of ROUTES) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    try {
      await render(m);
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        signOut();
        alertError(new Error("the API refused the key: sign in again"));
        return route();
      }
      alertError(err);
    }
    // A new page: focus its heading, so keyboard and screen reader users start there.
    const title = document.getElementById("view-title");
    if (title) {
      title.tabIndex = -1;
      title.focus({ preventScroll: false });
    }
    return;
  }
  location.hash = "#/journeys";
}

document.getElementById("sign-in-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("api-key");
  signIn(input.value.trim());
  input.value = "";
  route();
});
document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  route();
});
window.addEventListener("hashchange", route);
keyFromFragment();
route();
// A deployment with a user pool also offers sign-in with a person's account (config.json; none locally).
accountConfig().then((pool) => pool && setUpAccountSignIn(pool, route));
