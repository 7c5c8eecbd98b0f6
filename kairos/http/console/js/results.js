// A journey's or campaign's results (GET /v1/journeys/{id}/results): against its control group with the uplift and
// its 95% interval drawn on a scale through zero, then per node and channel, per content variant and per day.
import { fmt, h, s, table } from "./ui.js";

const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
const range = (iv, f) => (Array.isArray(iv) && iv.length === 2 ? `${f(iv[0])} to ${f(iv[1])}` : "–");
const money = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(2));

export function resultsSection(r) {
  const parts = [h("h2", { id: "results-title" }, "Results")];
  if (r.treatment && r.control) parts.push(control(r));
  else parts.push(h("p", {}, "Against the control group: shown once the journey has customers in both groups."));
  if ((r.steps || []).length) parts.push(byStep(r.steps));
  for (const [node, v] of Object.entries(r.variants_by_node || {})) parts.push(variants(node, v));
  if ((r.by_day || []).length) parts.push(byDay(r.by_day));
  return h("section", { "aria-labelledby": "results-title", id: "results" }, parts);
}

function control(r) {
  const t = r.treatment;
  const c = r.control;
  const up = r.uplift || {};
  const rows = [
    ["Messaged", fmt(t.customers), fmt(t.converted), pct(t.conversion_rate), range(t.conversion_interval, pct), money(t.revenue_per_customer)],
    ["Control", fmt(c.customers), fmt(c.converted), pct(c.conversion_rate), range(c.conversion_interval, pct), money(c.revenue_per_customer)],
  ];
  const out = [table(`Against the control group (orders within ${r.attribution_days} days of entering)`, ["Group", "Customers", "Converted", "Conversion", "95% interval", "Revenue per customer"], rows)];
  const lines = [];
  if (up.conversion) lines.push(["Conversion uplift", up.conversion.difference, up.conversion.interval, pct]);
  if (up.revenue_per_customer) lines.push(["Revenue per customer uplift", up.revenue_per_customer.difference, up.revenue_per_customer.interval, money]);
  if (lines.length) {
    out.push(
      table(
        "Uplift (messaged minus control)",
        ["Measure", "Difference", "95% interval", "Interval"],
        lines.map(([name, d, iv, f]) => [name, f(d), range(iv, f), intervalBar(name, d, iv, f)]),
      ),
    );
  }
  return h("div", { id: "results-control" }, out);
}

// The interval as a bar on a scale that always includes zero, the point estimate as a tick.
function intervalBar(name, d, iv, f) {
  if (!Array.isArray(iv) || iv.length !== 2 || iv[0] === null || iv[1] === null) return "–";
  const lo = Math.min(iv[0], 0);
  const hi = Math.max(iv[1], 0);
  const span = hi - lo || 1;
  const x = (v) => 8 + (184 * (v - lo)) / span;
  const crosses = iv[0] <= 0 && iv[1] >= 0;
  return s(
    "svg",
    { width: 200, height: 24, viewBox: "0 0 200 24", role: "img", "aria-label": `${name}: ${f(d)}, 95% interval ${range(iv, f)}${crosses ? ", includes no difference" : ""}` },
    s("line", { x1: x(0), x2: x(0), y1: 2, y2: 22, class: "zero" }),
    s("line", { x1: x(iv[0]), x2: x(iv[1]), y1: 12, y2: 12, class: crosses ? "iv unsure" : "iv" }),
    s("line", { x1: x(d), x2: x(d), y1: 6, y2: 18, class: "point" }),
  );
}

function byStep(steps) {
  return table(
    "By node and channel (conversions credited to the last message delivered before the order)",
    ["Node", "Channel", "Messages", "Sent", "Opened", "Clicked", "Converted", "Revenue"],
    steps.map((st) => [st.node, st.channel, fmt(st.messages), fmt((st.sent || 0) + (st.unconfirmed || 0)), fmt(st.opened), fmt(st.clicked), fmt(st.converted), money(st.revenue)]),
  );
}

function variants(node, v) {
  const rows = Object.entries(v.variants || {}).map(([name, r]) => [
    name + (v.promoted === name ? " (promoted)" : "") + (v.winner === name ? " (winning)" : ""),
    r.weight === null || r.weight === undefined ? "retired" : fmt(r.weight),
    fmt(r.sends),
    rate(r.open_rate),
    rate(r.click_rate),
    rate(r.conversion_rate),
  ]);
  return table(`Variants of ${node} (per send, with 95% intervals)`, ["Variant", "Weight", "Sends", "Opened", "Clicked", "Converted"], rows);
}

// A variant's rate: {value, low, high}.
const rate = (r) => (r && r.value !== null && r.value !== undefined ? `${pct(r.value)} (${pct(r.low)} to ${pct(r.high)})` : "–");

function byDay(days) {
  return table(
    "By day (UTC)",
    ["Day", "Entries", "Sent", "Opened", "Clicked", "Converted", "Revenue"],
    days.map((d) => [d.day, fmt(d.entries), fmt(d.sent), fmt(d.opened), fmt(d.clicked), fmt(d.converted), money(d.revenue)]),
  );
}
