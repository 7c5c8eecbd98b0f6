// A journey drawn as SVG: nodes in rows by their distance from the start, edges labelled with the field they leave
// by. Each node shows its figures (now / passed / exited, messages by channel) and the errors that name it.
import { s } from "./ui.js";

const W = 210;
const H = 96;
const GAP_X = 64;
const GAP_Y = 64;

// The field -> node edges leaving a node, as kairos.journeys.graph.successors reads them.
export function successors(node) {
  if (!node || typeof node !== "object") return [];
  const out = [];
  const add = (field, target) => typeof target === "string" && out.push([field, target]);
  switch (node.type) {
    case "wait_for":
      add("on_event", node.on_event);
      add("on_timeout", node.on_timeout);
      break;
    case "split":
      (node.branches || []).forEach((b, i) => add(`branches[${i}]`, b && b.next));
      add("else", node.else);
      break;
    case "random_split":
      (node.variants || []).forEach((v, i) => add(v && v.name ? v.name : `variants[${i}]`, v && v.next));
      break;
    case "cycle":
      add("next", node.next);
      add("on_expiry", node.on_expiry);
      break;
    case "exit":
      break;
    default:
      add("next", node.next);
  }
  return out;
}

export function layout(definition) {
  const nodes = definition.nodes || {};
  const depth = {};
  const queue = [];
  if (definition.start in nodes) {
    depth[definition.start] = 0;
    queue.push(definition.start);
  }
  while (queue.length) {
    const id = queue.shift();
    for (const [, t] of successors(nodes[id])) {
      if (t in nodes && !(t in depth)) {
        depth[t] = depth[id] + 1;
        queue.push(t);
      }
    }
  }
  // Nodes no path reaches go on a last row, so an edit that strands one still shows it.
  const maxDepth = Math.max(-1, ...Object.values(depth));
  for (const id of Object.keys(nodes)) if (!(id in depth)) depth[id] = maxDepth + 1;
  const rows = [];
  for (const id of Object.keys(nodes)) (rows[depth[id]] ||= []).push(id);
  // Each row in the order of its parents' places (fewer crossing edges), rows placed top to bottom.
  const place = {};
  const parents = {};
  for (const [id, node] of Object.entries(nodes)) for (const [, t] of successors(node)) (parents[t] ||= []).push(id);
  rows.forEach((row, y) => {
    if (!row) return;
    const key = (id) => {
      const known = (parents[id] || []).filter((p) => p in place && depth[p] < y);
      return known.length ? known.reduce((sum, p) => sum + place[p], 0) / known.length : Infinity;
    };
    if (y > 0) row.sort((a, b) => key(a) - key(b));
    row.forEach((id, x) => (place[id] = x - (row.length - 1) / 2));
  });
  const widest = Math.max(1, ...rows.map((r) => (r ? r.length : 0)));
  const width = widest * (W + GAP_X) + GAP_X;
  const pos = {};
  rows.forEach((row, y) => {
    if (!row) return;
    const rowWidth = row.length * (W + GAP_X) - GAP_X;
    row.forEach((id, x) => {
      pos[id] = { x: (width - rowWidth) / 2 + x * (W + GAP_X), y: GAP_Y / 2 + y * (H + GAP_Y) };
    });
  });
  return { pos, width, height: rows.length * (H + GAP_Y) + GAP_Y / 2, order: rows.flat().filter(Boolean) };
}

// Lines of at most `width` characters, broken between words (a longer word stays whole).
function wrap(text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function describe(node) {
  if (!node) return "";
  if (node.type === "message") return `message · ${node.channel || "?"}`;
  if (node.type === "delay") return node.hours ? `delay · ${node.hours} h` : "delay";
  if (node.type === "wait_for") return `wait for ${node.event || "?"}`;
  return node.type || "?";
}

// figures[id] = {now, passed, exited, channels: {email: {sent, failed,...}}}; errors[id] = ["field: reason"].
export function drawGraph(definition, figures = {}, errors = {}) {
  const { pos, width, height, order } = layout(definition);
  const nodes = definition.nodes || {};
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    class: "graph",
    role: "group",
    "aria-label": `Journey graph: ${order.length} nodes, starting at ${definition.start}`,
  });
  svg.append(
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
  );
  const edges = s("g", { class: "edges", "aria-hidden": "true" });
  svg.append(edges);
  for (const id of order) {
    for (const [field, target] of successors(nodes[id])) {
      const a = pos[id];
      const b = pos[target];
      if (!a || !b) continue;
      const x1 = a.x + W / 2;
      const y1 = a.y + H;
      const x2 = b.x + W / 2;
      const y2 = b.y;
      const back = y2 <= y1;
      const level = back && Math.abs(a.y - b.y) < 1;
      // Same row: a straight line between facing sides; a loop back up: round the right-hand side.
      const [sx, tx] = b.x > a.x ? [a.x + W, b.x - 2] : [a.x, b.x + W + 2];
      const d = level
        ? `M${sx},${a.y + H / 2} L${tx},${b.y + H / 2}`
        : back
        ? `M${a.x + W},${a.y + H / 2} C${a.x + W + 60},${a.y + H / 2} ${b.x + W + 60},${b.y + H / 2} ${b.x + W},${b.y + H / 2}`
        : `M${x1},${y1} C${x1},${y1 + GAP_Y / 2} ${x2},${y2 - GAP_Y / 2} ${x2},${y2 - 2}`;
      edges.append(s("path", { d, class: "edge", "marker-end": "url(#arrow)" }));
      if (field !== "next") {
        const lx = level ? Math.min(sx, tx) + 4 : (x1 + x2) / 2 + 4;
        edges.append(s("text", { x: lx, y: back ? a.y + H / 2 - 6 : (y1 + y2) / 2, class: "edge-label" }, field));
      }
    }
  }
  for (const id of order) {
    const p = pos[id];
    const node = nodes[id];
    const f = figures[id] || {};
    const errs = errors[id] || [];
    const errLines = errs.flatMap((e) => wrap(`⚠ ${e}`, 28));
    const channels = Object.entries(f.channels || {}).map(([ch, c]) => `${ch} ${c.sent || 0} sent${c.failed ? `, ${c.failed} failed` : ""}`);
    const label = [
      `${id}, ${describe(node)}${id === definition.start ? ", start" : ""}`,
      `${f.now || 0} here now, ${f.passed || 0} passed, ${f.exited || 0} exited`,
      ...channels,
      ...errs.map((e) => `error: ${e}`),
    ].join(". ");
    const box = H + (errLines.length ? 8 + 16 * errLines.length : 0);
    const g = s("g", {
      class: `node node-${node && node.type}${errs.length ? " has-error" : ""}${id === definition.start ? " start" : ""}`,
      transform: `translate(${p.x},${p.y})`,
      "data-node": id,
      tabindex: 0,
      role: "img",
      "aria-label": label,
    });
    g.append(
      s("rect", { width: W, height: box, rx: 8 }),
      s("text", { x: 10, y: 20, class: "node-id" }, id),
      s("text", { x: 10, y: 38, class: "node-type" }, describe(node)),
      s(
        "text",
        { x: 10, y: 60, class: "node-counts" },
        s("tspan", { class: "count-now" }, `${f.now || 0} now`),
        " · ",
        s("tspan", { class: "count-passed" }, `${f.passed || 0} passed`),
        " · ",
        s("tspan", { class: "count-exited" }, `${f.exited || 0} exited`),
      ),
      s("text", { x: 10, y: 80, class: "node-channels" }, channels.join(" · ") || (node && (node.type === "message" || node.type === "cycle") ? "no message yet" : "")),
    );
    if (errLines.length) g.append(s("text", { class: "node-error" }, errLines.map((line, i) => s("tspan", { x: 10, y: 100 + 16 * i }, i < errLines.length - 1 ? `${line} ` : line))));
    svg.append(g);
  }
  // Room for the error lines under the last row.
  const extra = Math.max(0, ...Object.values(errors).map((e) => e.flatMap((x) => wrap(x, 28)).length)) * 16 + 8;
  svg.setAttribute("height", height + extra);
  svg.setAttribute("viewBox", `0 0 ${width + 80} ${height + extra}`);
  svg.setAttribute("width", width + 80);
  return svg;
}

// Per-node figures from GET /v1/journeys/{id}/results: at_node (here now), visits (passed), exit nodes' visits
// (exited there), and its messages per node and channel (steps).
export function nodeFigures(definition, results) {
  const out = {};
  const nodes = definition.nodes || {};
  for (const id of Object.keys(nodes)) {
    const passed = (results.visits || {})[id] || 0;
    out[id] = {
      now: (results.at_node || {})[id] || 0,
      passed,
      exited: nodes[id] && nodes[id].type === "exit" ? passed : 0,
      channels: {},
    };
  }
  for (const step of results.steps || []) {
    const f = out[step.node];
    if (!f) continue;
    const c = (f.channels[step.channel] ||= { sent: 0, failed: 0, opened: 0, clicked: 0 });
    c.sent += (step.sent || 0) + (step.unconfirmed || 0);
    c.failed += step.failed || 0;
    c.opened += step.opened || 0;
    c.clicked += step.clicked || 0;
  }
  return out;
}

// API errors by node: `nodes.<id>.<field>` names a node; anything else stays with the journey.
export function errorsByNode(errors, nodeIds) {
  const byNode = {};
  const other = [];
  for (const e of errors) {
    const field = e.field || "";
    const m = field.match(/^nodes\.([^.[\]]+)(?:[.[](.*))?$/);
    if (m && nodeIds.includes(m[1])) {
      const rest = m[2] ? field.slice(`nodes.${m[1]}.`.length) : "";
      (byNode[m[1]] ||= []).push(rest ? `${rest}: ${e.reason}` : e.reason);
    } else {
      other.push(field ? `${field}: ${e.reason}` : e.reason);
    }
  }
  return { byNode, other };
}
