// Customers: a list a page at a time (each page one bounded read of the store) to click into one, or find one by
// id; their profile, consent and topics, zone, a timeline of what they did and what was sent to them, and the
// send-time model's 168 hour scores as a heat map.
import { ApiError, get } from "./api.js";
import { announce, fmt, h, table, view } from "./ui.js";

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const hourName = (how) => `${DAYS[Math.floor(how / 24)]} ${String(how % 24).padStart(2, "0")}:00`;

export async function customersPage(id) {
  const input = h("input", { id: "customer-id", name: "customer_id", value: id || "", required: true, autocomplete: "off" });
  const form = h(
    "form",
    { id: "customer-find", role: "search", onsubmit: (ev) => (ev.preventDefault(), (location.hash = `#/customers/${encodeURIComponent(input.value.trim())}`)) },
    h("label", { for: "customer-id" }, "Customer id"),
    input,
    h("button", { type: "submit" }, "Find"),
  );
  if (!id) {
    const list = h("section", { "aria-labelledby": "list-title" }, h("h2", { id: "list-title" }, "All customers"));
    view("Customers", form, list);
    await listPage(list, [null]);
    return;
  }
  let customer;
  try {
    customer = await get(`/v1/customers/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      view("Customers", form, h("p", { id: "customer-missing" }, `No customer ${id}.`));
      announce(`No customer ${id}`);
      return;
    }
    throw err;
  }
  const [messages, rec, events, sent] = await Promise.all([
    get(`/v1/customers/${encodeURIComponent(id)}/messages`).catch(() => ({ messages: [] })),
    get(`/v1/customers/${encodeURIComponent(id)}/recommendation`).catch((err) => ({ error: err.message })),
    get(`/v1/customers/${encodeURIComponent(id)}/events?limit=${EVENTS}`).catch(() => null),
    localOutbox(),
  ]);
  const p = customer.profile || {};
  const a = customer.aggregates || {};
  view(
    `Customer ${id}`,
    form,
    h(
      "div",
      { class: "two" },
      h("section", { "aria-labelledby": "profile-title" }, h("h2", { id: "profile-title" }, "Profile"), profile(p, a)),
      h("section", { "aria-labelledby": "figures-title" }, h("h2", { id: "figures-title" }, "Figures"), figures(a)),
    ),
    h("section", { "aria-labelledby": "hours-title" }, h("h2", { id: "hours-title" }, "Best hours"), recommendation(rec, p, a)),
    h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline(a, messages.messages || [], events, sent)),
  );
  announce(`Customer ${id}: ${(messages.messages || []).length} messages`);
}

function dl(pairs) {
  return h("dl", { class: "pairs" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v === null || v === "" ? "–" : v))));
}

function profile(p, a) {
  const consent = Object.entries(p.consent || {}).map(([ch, ok]) => `${ch} ${ok ? "yes" : "no"}`).join(", ");
  const contact = Object.entries(p.contact || {}).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}`).join(", ");
  const topics = [
    ...Object.keys(a.subscribed || {}).map((t) => `${t} subscribed`),
    ...Object.keys(a.unsubscribed || {}).map((t) => `${t} unsubscribed`),
  ].join(", ");
  return dl([
    ["Zone", `${p.timezone || a.timezone || "unknown"}${a.timezone_inferred ? " (inferred from events)" : ""}`],
    ["Locale", p.locale],
    ["Contact", contact],
    ["Consent", consent],
    ["Topics", topics || "no choice made"],
    ["Attributes", Object.keys(p.attributes || {}).length ? h("code", {}, JSON.stringify(p.attributes)) : null],
  ]);
}

function figures(a) {
  return dl([
    ["Purchases", fmt(a.purchase_count)],
    ["Spent", fmt(a.monetary_total)],
    ["Engagement moments", fmt(a.engagement_moments)],
    ["Stage", a.stage ? (typeof a.stage === "object" ? a.stage.name || JSON.stringify(a.stage) : a.stage) : null],
    ["Events", Object.entries(a.event_counts || {}).map(([t, n]) => `${t} ${n}`).join(", ")],
  ]);
}

function heatMap(scores, best) {
  const max = Math.max(...scores, 1e-12);
  const rows = DAYS.map((day, d) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, day),
      Array.from({ length: 24 }, (_, hr) => {
        const how = d * 24 + hr;
        const v = scores[how] || 0;
        const level = Math.round((v / max) * 9);
        return h(
          "td",
          { class: `heat l${level}${how === best ? " best" : ""}`, title: `${hourName(how)}: ${(v * 100).toFixed(2)}%`, "data-hour": how },
          h("span", { class: "visually-hidden" }, `${(v * 100).toFixed(1)}%${how === best ? ", best hour" : ""}`),
        );
      }),
    ),
  );
  return h(
    "table",
    { class: "heatmap", id: "heatmap" },
    h("caption", {}, "Chance of engaging per local hour of the week (darker is likelier; the outlined cell is the best hour)"),
    h("thead", {}, h("tr", {}, h("td", {}), Array.from({ length: 24 }, (_, hr) => h("th", { scope: "col" }, hr % 3 === 0 ? String(hr) : h("span", { class: "visually-hidden" }, String(hr)))))),
    h("tbody", {}, rows),
  );
}

function recommendation(rec, p, a) {
  if (rec.error) return h("p", { id: "no-recommendation" }, `No recommendation: ${rec.error}`);
  const parts = [];
  const conf = rec.confidence || {};
  parts.push(
    dl([
      ["Best hour", `${hourName(rec.best_hour_of_week)} (${p.timezone || a.timezone || "local time"})`],
      ["Scored", rec.scored === false ? "not yet: the population's answer" : "yes"],
      ["Confidence", conf.level ? `${conf.level}${conf.moments !== undefined ? `, ${conf.moments} moments` : ""}` : null],
      ["Channels, best first", (rec.channel_ranking || []).join(", ") || null],
      ["Next products", (rec.next_products || []).slice(0, 5).map((x) => x.product_id).join(", ") || null],
      ["Model", rec.model_version],
    ]),
  );
  if (Array.isArray(rec.hour_scores) && rec.hour_scores.length === 168) parts.push(heatMap(rec.hour_scores, rec.best_hour_of_week));
  const life = rec.lifecycle;
  if (life) {
    parts.push(
      h("h3", {}, "Lifecycle, next 90 days"),
      dl([
        ["Purchase probability", life.purchase_probability_90d !== undefined ? `${(life.purchase_probability_90d * 100).toFixed(1)}%` : null],
        ["Expected spend", fmt(life.expected_spend_90d)],
        ["Next purchases", Object.entries(life.next_purchase_at || {}).map(([k, v]) => `${k} ${v}`).join(", ") || null],
      ]),
    );
  }
  return h("div", { id: "recommendation" }, parts);
}

const EVENTS = 100;

// Locally, what the embedded providers received (GET /_local/outbox), by the provider's message id: the rendered
// content of each message. A deployment has no such endpoint, and the timeline shows the log alone.
async function localOutbox() {
  try {
    const res = await fetch("/_local/outbox");
    if (!res.ok) return {};
    const { messages } = await res.json();
    return Object.fromEntries((messages || []).filter((m) => m.kairos_message_id).map((m) => [m.kairos_message_id, m]));
  } catch {
    return {};
  }
}

function rendered(m) {
  if (!m) return null;
  const body = m.text || (m.payload ? (typeof m.payload === "string" ? m.payload : JSON.stringify(m.payload)) : "");
  return h(
    "details",
    { class: "rendered" },
    h("summary", {}, m.subject ? `As sent: “${m.subject}”` : "As sent"),
    h("pre", {}, body),
  );
}

function timeline(a, messages, events, sent = {}) {
  const items = [];
  for (const m of messages) {
    items.push({ at: m.sent_at || m.finished_at || m.claimed_at || m.send_at || "", what: `${m.channel} message ${m.status}`, detail: `${m.node ? `node ${m.node}, ` : ""}${m.variant ? `variant ${m.variant}, ` : ""}from ${m.campaign_id}${m.reason && m.reason !== "ok" ? ` (${m.reason})` : ""}`, kind: "message", content: rendered(sent[m.message_id]) });
  }
  if (events) {
    // The customer's own events, as sent (newest first, at most EVENTS of events.total).
    for (const e of events.events) items.push({ at: e.timestamp, what: e.type.replaceAll("_", " "), detail: eventDetail(e), kind: "event" });
  } else {
    const moments = [
      ["last_purchase_at", "last purchase"],
      ["first_purchase_at", "first purchase"],
      ["last_engagement_at", "last engagement"],
      ["last_cart_abandon_at", `cart abandoned${a.last_cart_abandon_amount ? ` (${fmt(a.last_cart_abandon_amount)})` : ""}`],
    ];
    for (const [key, what] of moments) if (a[key]) items.push({ at: a[key], what, detail: "", kind: "event" });
  }
  items.sort((x, y) => (Date.parse(y.at) || 0) - (Date.parse(x.at) || 0));
  if (!items.length) return h("p", {}, "Nothing yet.");
  return h(
    "ol",
    { class: "timeline", id: "timeline" },
    items.map((i) => h("li", { class: `t-${i.kind}` }, h("time", { datetime: i.at }, i.at.replace("T", " ").slice(0, 16)), " ", h("strong", {}, i.what), i.detail ? ` — ${i.detail}` : "", i.content || null)),
  );
}

function eventDetail(e) {
  const parts = [];
  if (e.channel) parts.push(e.channel);
  if (e.product_id) parts.push(`${e.product_id}${e.quantity ? ` × ${fmt(e.quantity)}` : ""}`);
  if (e.amount !== null && e.amount !== undefined) parts.push(`${fmt(e.amount)}${e.currency ? ` ${e.currency}` : ""}`);
  if (e.message_id) parts.push(`answers message ${e.message_id}`);
  const props = Object.entries(e.properties || {}).slice(0, 3).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return [...parts, ...props].join(", ");
}

const PAGE = 50;
const day = (s) => (s ? String(s).replace("T", " ").slice(0, 16) : "–");

// cursors: the cursor of every page shown so far (null for the first); the last one is the page to show.
async function listPage(section, cursors) {
  const cursor = cursors[cursors.length - 1];
  const started = performance.now();
  const page = await get(`/v1/customers?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  const ms = Math.round(performance.now() - started);
  const rows = page.customers.map((c) => [
    h("a", { href: `#/customers/${encodeURIComponent(c.customer_id)}` }, c.customer_id),
    fmt(c.purchase_count),
    fmt(c.monetary_total),
    day(c.last_purchase_at),
    day(c.last_engagement_at),
    day(c.updated_at),
  ]);
  const t = table(`Page ${cursors.length}: ${page.customers.length} customers, in the store's order`, ["customer", "purchases", "spent", "last purchase", "last engagement", "updated"], rows);
  t.id = "customer-list";
  t.dataset.ms = String(ms);
  const go = (next) => async () => {
    await listPage(section, next);
    section.querySelector("#customer-list caption")?.focus();
  };
  const nav = h(
    "div",
    { class: "actions" },
    cursors.length > 1 ? h("button", { type: "button", onclick: go(cursors.slice(0, -1)) }, "Previous page") : null,
    page.next_cursor ? h("button", { type: "button", onclick: go([...cursors, page.next_cursor]) }, "Next page") : null,
  );
  const title = section.querySelector("h2");
  section.replaceChildren(title, h("p", { class: "help" }, `Each page reads at most ${PAGE} customers of the store; this one took ${ms} ms.`), page.customers.length ? t : h("p", {}, "No customers on this page."), nav);
  t.querySelector("caption").tabIndex = -1;
  announce(`Customers page ${cursors.length}: ${page.customers.length} customers${page.next_cursor ? ", more on the next page" : ""}`);
}
