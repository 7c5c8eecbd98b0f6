// Journeys: the list with status and figures; one journey as a graph with its per-node figures, its definition
// edited as JSON (the API's errors shown on the node they name), and its status changes.
import { api, ApiError, get } from "./api.js";
import { announce, alertError, fmt, h, table, view } from "./ui.js";
import { drawGraph, errorsByNode, nodeFigures } from "./graph.js";
import { resultsSection } from "./results.js";

// Which status changes each status allows (draft -> active <-> paused -> archived).
const NEXT = { draft: ["active"], active: ["paused", "archived"], paused: ["active", "archived"], archived: [] };
const VERB = { active: "Activate", paused: "Pause", archived: "Archive" };

function sentOf(results) {
  let sent = 0;
  for (const by of Object.values(results.messages || {})) sent += (by.sent || 0) + (by.unconfirmed || 0);
  return sent;
}

function entryText(entry) {
  if (!entry) return "";
  if (entry.event) return `event ${entry.event}`;
  if (entry.segment && !entry.schedule) return `segment ${entry.segment} (${entry.on || "enter"})`;
  if (entry.date_attribute) return `date ${entry.date_attribute}`;
  if (entry.schedule) return `schedule${entry.segment ? ` for ${entry.segment}` : ""}`;
  return "";
}

export async function journeysPage() {
  const { journeys } = await get("/v1/journeys?limit=100");
  const rows = journeys.map((j) => [
    h("a", { href: `#/journeys/${j.journey_id}` }, j.definition.name),
    h("span", { class: `badge status-${j.status}` }, j.status),
    `v${j.version}`,
    entryText(j.definition.entry),
    h("span", { "data-figure": "entries", "data-journey": j.journey_id }, "…"),
    h("span", { "data-figure": "active", "data-journey": j.journey_id }, "…"),
    h("span", { "data-figure": "sent", "data-journey": j.journey_id }, "…"),
  ]);
  view(
    "Journeys",
    journeys.length
      ? table(`${journeys.length} journeys`, ["Name", "Status", "Version", "Entry", "Entries", "In progress", "Messages sent"], rows)
      : h("p", {}, "No journey yet: create one with POST /v1/journeys (docs/journeys.md)."),
  );
  announce(`${journeys.length} journeys`);
  // Figures fill in as each journey's results arrive; the list itself never waits for them.
  await Promise.all(
    journeys.map(async (j) => {
      const set = (name, value) => {
        const el = document.querySelector(`[data-figure="${name}"][data-journey="${j.journey_id}"]`);
        if (el) el.textContent = fmt(value);
      };
      try {
        const r = await get(`/v1/journeys/${j.journey_id}/results`);
        set("entries", r.entries);
        set("active", r.active);
        set("sent", sentOf(r));
      } catch {
        for (const name of ["entries", "active", "sent"]) set(name, "–");
      }
    }),
  );
}

// The definition as the editor shows it: what the API returned, without the fields left empty (null).
function compact(value) {
  if (Array.isArray(value)) return value.map(compact);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = compact(v);
    return out;
  }
  return value;
}

export async function journeyPage(id) {
  const [doc, results] = await Promise.all([get(`/v1/journeys/${id}`), get(`/v1/journeys/${id}/results`)]);
  const definition = compact(doc.definition);
  const figures = nodeFigures(definition, results);

  const graphBox = h("div", { class: "graph-box", id: "graph" });
  const errorList = h("ul", { id: "journey-errors", class: "errors", "aria-live": "polite" });
  const nodeTable = h("div", { id: "node-table" });
  const render = (def, errs = {}) => {
    graphBox.replaceChildren(drawGraph(def, figures, errs));
    const ids = Object.keys(def.nodes || {});
    nodeTable.replaceChildren(
      table(
        "Nodes",
        ["Node", "Type", "Here now", "Passed", "Exited", "Messages", "Errors"],
        ids.map((n) => {
          const f = figures[n] || { channels: {} };
          const msgs = Object.entries(f.channels || {}).map(([ch, c]) => `${ch}: ${c.sent} sent`).join(", ");
          return [n, (def.nodes[n] || {}).type || "?", fmt(f.now || 0), fmt(f.passed || 0), fmt(f.exited || 0), msgs || "–", (errs[n] || []).join("; ") || "–"];
        }),
      ),
    );
  };
  render(definition);

  const statusButtons = (NEXT[doc.status] || []).map((to) =>
    h("button", { type: "button", "data-status": to, onclick: () => changeStatus(id, to) }, VERB[to]),
  );
  const exited = Object.entries(results.exited || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  const channels = Object.entries(results.messages || {})
    .map(([ch, by]) => `${ch}: ${Object.entries(by).map(([st, n]) => `${n} ${st}`).join(", ")}`)
    .join("; ");

  const editor = h("textarea", { id: "definition", rows: 24, spellcheck: "false", "aria-describedby": "definition-help journey-errors" }, JSON.stringify(definition, null, 2));
  const form = h(
    "form",
    { id: "definition-form", onsubmit: (ev) => (ev.preventDefault(), save(id, editor, render, errorList)) },
    h("label", { for: "definition" }, "Definition (JSON)"),
    h("p", { id: "definition-help", class: "help" }, "Saving makes a new version: paths under way finish on the version they entered. Errors show on the node they name."),
    editor,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save new version")),
  );

  view(
    doc.definition.name,
    h("p", {}, h("a", { href: "#/journeys" }, "← All journeys")),
    h(
      "dl",
      { class: "figures" },
      h("div", {}, h("dt", {}, "Status"), h("dd", { id: "journey-status" }, doc.status)),
      h("div", {}, h("dt", {}, "Version"), h("dd", {}, `v${doc.version}`)),
      h("div", {}, h("dt", {}, "Entry"), h("dd", {}, entryText(doc.definition.entry))),
      h("div", {}, h("dt", {}, "Entries"), h("dd", { id: "journey-entries" }, fmt(results.entries))),
      h("div", {}, h("dt", {}, "In progress"), h("dd", {}, fmt(results.active))),
      h("div", {}, h("dt", {}, "Completed"), h("dd", {}, fmt(results.completed))),
      h("div", {}, h("dt", {}, "Held out"), h("dd", {}, fmt(results.control && typeof results.control === "object" ? results.control.customers : results.control))),
      h("div", {}, h("dt", {}, "Exits"), h("dd", {}, exited)),
      h("div", {}, h("dt", {}, "Messages"), h("dd", {}, channels || "none")),
    ),
    statusButtons.length ? h("div", { class: "actions", role: "group", "aria-label": "Status" }, statusButtons) : null,
    h("h2", {}, "Graph"),
    graphBox,
    nodeTable,
    resultsSection(results),
    doc.version > 1 ? versionsSection(id, doc.version, editor) : null,
    h("h2", {}, "Edit"),
    errorList,
    form,
  );
  announce(`${doc.definition.name}: ${results.entries} entries, ${results.active} in progress`);
}

async function changeStatus(id, status) {
  try {
    await api("POST", `/v1/journeys/${id}/status`, { status });
    announce(`Journey ${status}`);
    await journeyPage(id);
    document.getElementById("journey-status").focus?.();
  } catch (err) {
    alertError(err);
  }
}

async function save(id, editor, render, errorList) {
  alertError(null);
  errorList.replaceChildren();
  let def;
  try {
    def = JSON.parse(editor.value);
  } catch (err) {
    editor.setAttribute("aria-invalid", "true");
    errorList.append(h("li", {}, `The definition is not JSON: ${err.message}`));
    announce("The definition is not valid JSON");
    return;
  }
  try {
    const { body } = await api("PUT", `/v1/journeys/${id}`, def);
    editor.removeAttribute("aria-invalid");
    announce(`Saved version ${body.version}`);
    await journeyPage(id);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    editor.setAttribute("aria-invalid", "true");
    const ids = Object.keys((def && def.nodes) || {});
    const { byNode, other } = errorsByNode(err.errors, ids);
    render(def && def.nodes ? def : { nodes: {} }, byNode);
    for (const [node, errs] of Object.entries(byNode)) {
      for (const e of errs) {
        errorList.append(h("li", {}, h("a", { href: "#graph", "data-error-node": node, onclick: (ev) => (ev.preventDefault(), document.querySelector(`[data-node="${CSS.escape(node)}"]`)?.focus()) }, `Node ${node}`), `: ${e}`));
      }
    }
    for (const e of other) errorList.append(h("li", {}, e));
    announce(`Not saved: ${err.errors.length} error${err.errors.length === 1 ? "" : "s"}`);
  }
}

// Earlier versions (GET /v1/journeys/{id}?version=n): each drawn as its graph, its definition one click from the
// editor (saving it makes it the newest version again).
function versionsSection(id, current, editor) {
  const box = h("div", { id: "version-view", "aria-live": "polite" });
  const picker = h(
    "select",
    { id: "version-picker" },
    Array.from({ length: current }, (_, i) => current - i).map((v) => h("option", { value: v }, v === current ? `v${v} (current)` : `v${v}`)),
  );
  const show = async () => {
    const v = Number(picker.value);
    const old = await get(`/v1/journeys/${encodeURIComponent(id)}?version=${v}`);
    const definition = compact(old.definition);
    box.replaceChildren(
      h("p", {}, `Version ${v}, saved ${String(old.updated_at).replace("T", " ").slice(0, 16)}.`),
      drawGraph(definition, {}, {}),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => ((editor.value = JSON.stringify(definition, null, 2)), editor.focus(), announce(`Version ${v} is in the editor: save to make it current`)) }, `Put v${v} in the editor`),
      ),
    );
    announce(`Version ${v} shown`);
  };
  picker.addEventListener("change", show);
  return h(
    "section",
    { "aria-labelledby": "versions-title" },
    h("h2", { id: "versions-title" }, "Versions"),
    h("label", { for: "version-picker" }, "Show version "),
    picker,
    box,
  );
}
