// Segments: filters built with a form (groups of all / any / none), the audience count and a sample updating as
// they change (POST /v1/segments/preview), and the saved segments.
import { api, ApiError, get } from "./api.js";
import { FIELDS } from "./fields.js";
import { alertError, announce, debounce, h, table, view } from "./ui.js";

const OPS = [
  ["eq", "is"],
  ["ne", "is not"],
  ["gt", ">"],
  ["gte", "≥"],
  ["lt", "<"],
  ["lte", "≤"],
  ["in", "is one of"],
  ["exists", "is set"],
  ["not_exists", "is not set"],
];
const MODES = [
  ["all", "all of"],
  ["any", "any of"],
  ["none", "none of"],
];
let uid = 0;
const nextId = () => `f${++uid}`;

const fieldInfo = (name) => FIELDS.find((f) => f.field === name) || { field: name, value: "any JSON value" };
const pattern = (name) => name.match(/^(attributes|events|messages)\.<(\w+)>$/);
const windowed = (name) => /^(events|messages)\./.test(name);

// The builder's model: a group {mode, items: [condition | group]}; a condition {field, name, op, value, within_days}.
const newCondition = () => ({ kind: "condition", field: "purchase_count", name: "", op: "gte", value: "1", within_days: "30" });
const newGroup = (mode = "all") => ({ kind: "group", mode, items: [] });

function fieldName(c) {
  const p = pattern(c.field);
  return p ? `${p[1]}.${c.name}` : c.field;
}

function parseValue(c) {
  const kind = fieldInfo(c.field).value;
  if (c.op === "in") return c.value.split(",").map((v) => v.trim()).filter(Boolean).map((v) => (kind.startsWith("number") && v !== "" && !isNaN(v) ? Number(v) : v));
  if (kind.startsWith("number")) return c.value === "" || isNaN(c.value) ? c.value : Number(c.value);
  if (kind === "true or false") return c.value === "true";
  if (kind === "any JSON value") {
    try {
      return JSON.parse(c.value);
    } catch {
      return c.value;
    }
  }
  return c.value;
}

function toFilter(item) {
  if (item.kind === "group") {
    const inner = item.items.map(toFilter);
    if (item.mode === "all") return { all: inner };
    if (item.mode === "any") return { any: inner };
    return { not: { any: inner } };
  }
  const f = { field: fieldName(item), op: item.op };
  if (item.op !== "exists" && item.op !== "not_exists") f.value = parseValue(item);
  if (windowed(item.field)) f.within_days = Number(item.within_days);
  return f;
}

export function toFilters(root) {
  if (!root.items.length) return [];
  if (root.mode === "all") return root.items.map(toFilter);
  return [toFilter(root)];
}

function fromFilter(f) {
  if (f.all) return { kind: "group", mode: "all", items: f.all.map(fromFilter) };
  if (f.any) return { kind: "group", mode: "any", items: f.any.map(fromFilter) };
  if (f.not) {
    const inner = fromFilter(f.not);
    return inner.kind === "group" && inner.mode === "any" ? { ...inner, mode: "none" } : { kind: "group", mode: "none", items: [inner] };
  }
  const m = (f.field || "").match(/^(attributes|events|messages)\.(.+)$/);
  const value = f.value === undefined || f.value === null ? "" : Array.isArray(f.value) ? f.value.join(", ") : typeof f.value === "object" ? JSON.stringify(f.value) : String(f.value);
  return {
    kind: "condition",
    field: m ? `${m[1]}.<${{ attributes: "name", events: "type", messages: "status" }[m[1]]}>` : f.field,
    name: m ? m[2] : "",
    op: f.op || "eq",
    value,
    within_days: String(f.within_days || 30),
  };
}

function fromFilters(filters) {
  if (filters.length === 1 && (filters[0].any || filters[0].not)) return fromFilter(filters[0]);
  return { kind: "group", mode: "all", items: filters.map(fromFilter) };
}

function conditionRow(c, parent, onChange, path) {
  const id = nextId();
  const info = fieldInfo(c.field);
  const p = pattern(c.field);
  const rerender = () => onChange(true);
  const set = (key, structural) => (ev) => {
    c[key] = ev.target.value;
    onChange(structural);
  };
  const valueInput =
    c.op === "exists" || c.op === "not_exists"
      ? null
      : info.value === "true or false"
        ? h("select", { id: `${id}-value`, onchange: set("value") }, ["true", "false"].map((v) => h("option", { value: v, selected: c.value === v }, v)))
        : h("input", { id: `${id}-value`, value: c.value, oninput: set("value"), inputmode: info.value.startsWith("number") ? "decimal" : null, placeholder: c.op === "in" ? "a, b, c" : "" });
  return h(
    "li",
    { class: "condition", "data-path": path },
    h("label", { for: `${id}-field`, class: "visually-hidden" }, "Field"),
    h(
      "select",
      { id: `${id}-field`, name: "field", title: info.meaning, onchange: (ev) => ((c.field = ev.target.value), (c.value = fieldInfo(c.field).value === "true or false" ? "true" : c.value), rerender()) },
      FIELDS.map((f) => h("option", { value: f.field, selected: f.field === c.field, title: f.meaning }, f.field)),
    ),
    p ? [h("label", { for: `${id}-name`, class: "visually-hidden" }, p[2]), h("input", { id: `${id}-name`, name: "name", value: c.name, placeholder: p[2], oninput: set("name"), size: 14 })] : null,
    h("label", { for: `${id}-op`, class: "visually-hidden" }, "Operator"),
    h("select", { id: `${id}-op`, name: "op", onchange: (ev) => ((c.op = ev.target.value), rerender()) }, OPS.map(([v, t]) => h("option", { value: v, selected: v === c.op }, t))),
    valueInput ? [h("label", { for: `${id}-value`, class: "visually-hidden" }, "Value"), valueInput] : null,
    windowed(c.field)
      ? [h("label", { for: `${id}-days` }, "in the last"), h("input", { id: `${id}-days`, name: "within_days", type: "number", min: 1, max: 3650, value: c.within_days, oninput: set("within_days"), size: 5 }), " days"]
      : null,
    h("button", { type: "button", class: "link", "aria-label": `Remove condition ${fieldName(c)}`, onclick: () => (parent.items.splice(parent.items.indexOf(c), 1), rerender()) }, "Remove"),
  );
}

function groupBox(group, parent, onChange, path = "root") {
  const id = nextId();
  return h(
    "fieldset",
    { class: "group", "data-path": path },
    h(
      "legend",
      {},
      h("label", { for: `${id}-mode` }, parent ? "Customers matching " : "Customers matching "),
      h("select", { id: `${id}-mode`, name: "mode", onchange: (ev) => ((group.mode = ev.target.value), onChange(true)) }, MODES.map(([v, t]) => h("option", { value: v, selected: v === group.mode }, t))),
      " these conditions",
    ),
    h("ul", { class: "conditions" }, group.items.map((item, i) => (item.kind === "group" ? h("li", {}, groupBox(item, group, onChange, `${path}.${i}`)) : conditionRow(item, group, onChange, `${path}.${i}`)))),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => (group.items.push(newCondition()), onChange(true)) }, "Add condition"),
      h("button", { type: "button", onclick: () => (group.items.push(newGroup("any")), onChange(true)) }, "Add group"),
      parent ? h("button", { type: "button", class: "link", onclick: () => (parent.items.splice(parent.items.indexOf(group), 1), onChange(true)) }, "Remove group") : null,
    ),
  );
}

export async function segmentsPage() {
  let root = newGroup("all");
  const builder = h("div", { id: "builder" });
  const count = h("p", { id: "segment-count", class: "big", role: "status", "aria-live": "polite" }, "…");
  const sample = h("ul", { id: "segment-sample", class: "sample" });
  const errors = h("ul", { id: "segment-errors", class: "errors", "aria-live": "polite" });
  const saved = h("div", { id: "saved-segments" });
  let seq = 0;

  const preview = debounce(async () => {
    const mine = ++seq;
    errors.replaceChildren();
    try {
      const { body } = await api("POST", "/v1/segments/preview", { filters: toFilters(root), sample: 10 });
      if (mine !== seq) return;
      count.textContent = `${body.count.toLocaleString("en")} customer${body.count === 1 ? "" : "s"}${body.sampled ? ` in a sample of ${body.scanned.toLocaleString("en")} (about ${body.estimate.toLocaleString("en")} in all)` : ` of ${body.scanned.toLocaleString("en")}`}`;
      count.dataset.count = body.count;
      sample.replaceChildren(...body.sample.map((c) => h("li", {}, h("a", { href: `#/customers/${encodeURIComponent(c)}` }, c))));
    } catch (err) {
      if (mine !== seq) return;
      if (!(err instanceof ApiError)) throw err;
      count.textContent = "Not counted: fix the conditions";
      delete count.dataset.count;
      for (const e of err.errors) errors.append(h("li", {}, e.field ? `${e.field}: ${e.reason}` : e.reason));
    }
  }, 250);

  const redraw = (structural) => {
    if (structural) {
      const focused = document.activeElement && document.activeElement.closest("[data-path]");
      const path = focused && focused.dataset.path;
      builder.replaceChildren(groupBox(root, null, redraw));
      // Keep the keyboard where it was after the form is redrawn.
      const again = path && builder.querySelector(`[data-path="${path}"] select, [data-path="${path}"] input`);
      if (again) again.focus();
    }
    preview();
  };

  const loadSaved = async () => {
    const [{ segments }, journeys] = await Promise.all([get("/v1/segments"), allJourneys().catch(() => null)]);
    saved.replaceChildren(
      segments.length
        ? table(
            `${segments.length} saved segments`,
            ["Name", "Conditions", "Used by", ""],
            segments.map((sg) => [
              sg.name,
              h("code", {}, JSON.stringify(sg.filters)),
              usedBy(sg.name, journeys),
              h("button", { type: "button", "aria-label": `Edit segment ${sg.name}`, onclick: () => ((root = fromFilters(sg.filters)), (nameInput.value = sg.name), redraw(true), announce(`Segment ${sg.name} loaded`)) }, "Edit"),
            ]),
          )
        : h("p", {}, "No saved segment yet."),
    );
  };

  const nameInput = h("input", { id: "segment-name", name: "name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._:@+\\-]{0,127}", title: "letters, digits and . _ : @ + -, up to 128" });
  const saveForm = h(
    "form",
    {
      id: "segment-save",
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await api("PUT", `/v1/segments/${encodeURIComponent(nameInput.value)}`, { filters: toFilters(root) });
          announce(`Segment ${nameInput.value} saved`);
          await loadSaved();
        } catch (err) {
          alertError(err);
        }
      },
    },
    h("label", { for: "segment-name" }, "Save as"),
    nameInput,
    h("button", { type: "submit" }, "Save segment"),
  );

  view(
    "Segments",
    h("div", { class: "two" }, h("section", { "aria-labelledby": "build-title" }, h("h2", { id: "build-title" }, "Audience"), builder, errors, saveForm), h("section", { "aria-labelledby": "count-title", class: "side" }, h("h2", { id: "count-title" }, "Audience now"), count, h("h3", {}, "Sample"), sample)),
    h("section", { "aria-labelledby": "saved-title" }, h("h2", { id: "saved-title" }, "Saved segments"), saved),
  );
  builder.replaceChildren(groupBox(root, null, redraw));
  preview();
  await loadSaved();
}

// Every journey (and campaign), a page of 100 at a time: few enough for a console, and each page one read.
async function allJourneys() {
  const out = [];
  let token = null;
  for (let page = 0; page < 20; page += 1) {
    const res = await get(`/v1/journeys?limit=100${token ? `&next_token=${encodeURIComponent(token)}` : ""}`);
    out.push(...res.journeys);
    token = res.next_token;
    if (!token) break;
  }
  return out;
}

// The journeys whose definition names the segment (an entry on it, a campaign's audience, a condition on it).
function usedBy(name, journeys) {
  if (!journeys) return "–";
  const needle = `"segment":${JSON.stringify(name)}`;
  const users = journeys.filter((j) => JSON.stringify(j.definition).includes(needle));
  if (!users.length) return "nothing";
  return h(
    "ul",
    { class: "plain" },
    users.map((j) => h("li", {}, h("a", { href: `#/journeys/${encodeURIComponent(j.journey_id)}` }, j.definition.name), ` (${j.status})`)),
  );
}
