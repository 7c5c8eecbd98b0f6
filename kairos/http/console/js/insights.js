// Insights: answers from the event archive (202 and a URL to poll while the query runs): RFM as a grid of groups,
// cohorts as a heat map, a forecast of an audience over a period, stages and the global control group as tables.
import { polled } from "./api.js";
import { announce, fmt, h, table, view } from "./ui.js";

function cell(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return h("code", {}, JSON.stringify(v).slice(0, 160));
  return fmt(v);
}

// Any answer: its scalar fields as a list, each list of objects as a table, each object as a list.
function generic(title, doc, skip = []) {
  const out = [];
  const entries = Object.entries(doc || {}).filter(([k]) => !skip.includes(k) && k !== "query");
  const scalars = entries.filter(([, v]) => v === null || typeof v !== "object");
  if (scalars.length) out.push(h("dl", { class: "pairs" }, scalars.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, cell(v))))));
  for (const [k, v] of entries) {
    if (Array.isArray(v) && v.length && typeof v[0] === "object" && !Array.isArray(v[0])) {
      const cols = Object.keys(v[0]);
      out.push(table(`${title}: ${k}`, cols, v.slice(0, 50).map((row) => cols.map((c) => cell(row[c])))));
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      out.push(h("h3", {}, k), h("dl", { class: "pairs" }, Object.entries(v).map(([kk, vv]) => h("div", {}, h("dt", {}, kk), h("dd", {}, cell(vv))))));
    }
  }
  return out.length ? out : [h("p", {}, "Nothing to show yet.")];
}

const level = (v, max) => (max > 0 && v ? Math.max(1, Math.round((v / max) * 9)) : 0);

function rfmGrid(doc) {
  const grid = doc.grid || [];
  const max = Math.max(0, ...grid.map((c) => c.customers || 0));
  const at = (r, f) => grid.find((c) => c.r === r && c.f === f);
  const rs = [...new Set(grid.map((c) => c.r))].sort((a, b) => b - a);
  const fs = [...new Set(grid.map((c) => c.f))].sort((a, b) => a - b);
  const gridTable = h(
    "table",
    { class: "heatmap rfm", id: "rfm-grid" },
    h("caption", {}, "Customers by recency (rows, 5 = most recent) and frequency (columns, 5 = most frequent)"),
    h("thead", {}, h("tr", {}, h("td", {}), fs.map((f) => h("th", { scope: "col" }, `F${f}`)))),
    h(
      "tbody",
      {},
      rs.map((r) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, `R${r}`),
          fs.map((f) => {
            const c = at(r, f) || { customers: 0, group: "" };
            return h("td", { class: `heat cell l${level(c.customers, max)}` }, h("span", { class: "cell-count" }, fmt(c.customers)), h("span", { class: "cell-group" }, c.group));
          }),
        ),
      ),
    ),
  );
  return [gridTable, ...generic("RFM", doc, ["grid"])];
}

function cohortHeat(doc) {
  const periods = doc.periods || [];
  const pct = doc.metric === "retention";
  const all = (doc.cohorts || []).flatMap((c) => (pct ? c.rates : c.values) || []).filter((v) => v !== null);
  const max = Math.max(0, ...all);
  return [
    h(
      "table",
      { class: "heatmap cohorts", id: "cohort-heat" },
      h("caption", {}, `Cohorts by ${doc.by || "first purchase month"}: ${doc.metric || ""} per period after the first purchase`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Cohort"), h("th", { scope: "col" }, "Size"), periods.map((p) => h("th", { scope: "col" }, `+${p}`)))),
      h(
        "tbody",
        {},
        (doc.cohorts || []).map((c) =>
          h(
            "tr",
            {},
            h("th", { scope: "row" }, c.cohort),
            h("td", {}, fmt(c.size)),
            periods.map((_, i) => {
              const v = pct ? c.rates[i] : c.values[i];
              const text = v === null || v === undefined ? "–" : pct ? `${Math.round(v * 100)}%` : fmt(v);
              return h("td", { class: `heat cell l${v === null ? 0 : level(v, max)}${c.partial && c.partial[i] ? " partial" : ""}` }, text);
            }),
          ),
        ),
      ),
    ),
    ...generic("Cohorts", doc, ["cohorts", "periods"]),
  ];
}

async function load(title, box, request, draw) {
  box.replaceChildren(h("p", {}, "Running the query…"));
  try {
    const doc = await request();
    box.replaceChildren(...draw(doc));
    announce(`${title} loaded`);
  } catch (err) {
    box.replaceChildren(h("p", { class: "error-text" }, err.message));
    announce(`${title}: ${err.message}`);
  }
}

function panel(key, title, controls, request, draw) {
  const box = h("div", { id: `insight-${key}` });
  const form = h(
    "form",
    { class: "actions", onsubmit: (ev) => (ev.preventDefault(), load(title, box, request, draw)) },
    controls,
    h("button", { type: "submit" }, `Load ${title.toLowerCase()}`),
  );
  return h("section", { "aria-labelledby": `insight-${key}-title` }, h("h2", { id: `insight-${key}-title` }, title), form, box);
}

const isoDay = (d) => d.toISOString().slice(0, 10);

export async function insightsPage() {
  const metric = h("select", { id: "cohort-metric" }, ["retention", "revenue"].map((m) => h("option", { value: m }, m)));
  const today = new Date();
  const fStart = h("input", { id: "forecast-start", type: "date", value: isoDay(today), required: true });
  const fEnd = h("input", { id: "forecast-end", type: "date", value: isoDay(new Date(today.getTime() + 30 * 864e5)), required: true });
  const fSegment = h("input", { id: "forecast-segment", placeholder: "everybody" });
  view(
    "Insights",
    h("p", {}, "Each answer is a query over the event archive: the first one of a day may take some seconds."),
    panel("rfm", "RFM groups", [], () => polled("GET", "/v1/insights/rfm"), rfmGrid),
    panel("cohorts", "Cohorts", [h("label", { for: "cohort-metric" }, "Metric"), metric], () => polled("GET", `/v1/insights/cohorts?metric=${metric.value}`), cohortHeat),
    panel(
      "forecast",
      "Forecast",
      [h("label", { for: "forecast-segment" }, "Segment"), fSegment, h("label", { for: "forecast-start" }, "From"), fStart, h("label", { for: "forecast-end" }, "to (not included)"), fEnd],
      () => polled("POST", "/v1/insights/forecast", { ...(fSegment.value ? { segment: fSegment.value } : {}), start: fStart.value, end: fEnd.value }),
      (doc) => generic("Forecast", doc),
    ),
    panel("stages", "Stages", [], () => polled("GET", "/v1/insights/stages"), (doc) => generic("Stages", doc)),
    panel("global-control", "Global control group", [], () => polled("GET", "/v1/insights/global-control"), (doc) => generic("Global control", doc)),
  );
}
