// Small DOM helpers: elements without innerHTML (names and values from the API are text, never markup).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function announce(text) {
  const el = document.getElementById("status");
  el.textContent = "";
  // A fresh text node so screen readers read it again even when it repeats.
  requestAnimationFrame(() => (el.textContent = text));
}

export function alertError(err) {
  document.getElementById("alert").textContent = err ? `Error: ${err.message || err}` : "";
}

export function view(title, ...children) {
  const root = document.getElementById("view");
  root.replaceChildren(h("h1", { id: "view-title" }, title), ...children);
  document.title = `${title} · Kairos console`;
  return root;
}

export function fmt(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n === "number") return n.toLocaleString("en", { maximumFractionDigits: 2 });
  return String(n);
}

export function table(caption, columns, rows) {
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((cell, i) => (i === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell)))))),
  );
}

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
