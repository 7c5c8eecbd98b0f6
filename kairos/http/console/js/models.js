// Models: the send-time model in service (the newest published version, else the bundled one), when and on what
// it was trained, and the figures of its card: hit rates and log-likelihood by history bucket for Kairos and the
// baselines, the calibration and decision blend, off-policy estimates and the lifecycle figures.
import { get } from "./api.js";
import { announce, fmt, h, table, view } from "./ui.js";

const BUCKETS = ["0", "1-2", "3-9", "10+", "overall"];
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
const num = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const day = (s) => (s ? String(s).slice(0, 10) : "–");

function dl(pairs) {
  return h("dl", { class: "pairs" }, pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "–" : v))));
}

function bucketsOf(rows) {
  // The card's buckets in their order, then any other it names.
  const seen = new Set(Object.values(rows).flatMap((r) => Object.keys(r || {})));
  return [...BUCKETS.filter((b) => seen.has(b)), ...[...seen].filter((b) => !BUCKETS.includes(b))];
}

function sendTime(name, ev) {
  const methods = Object.entries(ev.send_time || {});
  if (!methods.length) return [h("p", {}, "No send-time figures in this card.")];
  const hits = Object.fromEntries(methods.map(([m, f]) => [m, f.hit_within_1h]));
  const buckets = bucketsOf(hits);
  const counts = ev.buckets || {};
  const header = ["method", ...buckets.map((b) => `${b === "overall" ? "overall" : `${b} moments`}${counts[b] ? ` (${fmt(counts[b].customers)} customers)` : ""}`), "log-likelihood (overall)"];
  const best = Object.fromEntries(buckets.map((b) => [b, Math.max(...methods.map(([, f]) => (f.hit_within_1h || {})[b] ?? -1))]));
  const rows = methods.map(([m, f]) => [
    m,
    ...buckets.map((b) => {
      const v = (f.hit_within_1h || {})[b];
      return v !== null && v !== undefined && v === best[b] ? h("strong", {}, pct(v)) : pct(v);
    }),
    num((f.log_likelihood || {}).overall),
  ]);
  const t = table(`${name}: hit within one hour by history bucket (the best of each bucket in bold)`, header, rows);
  t.id = `send-time-${name}`;
  const gain = ev.relative_gain_overall;
  return [
    dl([
      ["Trained from", day((ev.split || {}).train_start)],
      ["Cut-off", day((ev.split || {}).cutoff)],
      ["Tested until", day((ev.split || {}).test_end)],
      ["Strongest baseline", ev.strongest_baseline],
      ["Gain over it (overall)", gain === null || gain === undefined ? null : `${gain >= 0 ? "+" : ""}${(gain * 100).toFixed(1)}%`],
    ]),
    t,
  ];
}

function calibration(caption, rows, id) {
  const entries = Object.entries(rows || {});
  if (!entries.length) return [];
  const order = (b) => (BUCKETS.indexOf(b) === -1 ? 99 : BUCKETS.indexOf(b));
  entries.sort(([a], [b]) => order(a) - order(b));
  const t = table(
    caption,
    ["bucket", "moments", "temperature", "model weight", "smoothed share", "pseudo-moments", "hit: model", "hit: smoothed count", "hit: blend", "log-likelihood", "prior log-likelihood"],
    entries.map(([b, r]) => [b, fmt(r.moments), num(r.temperature, 2), num(r.weight, 2), num(r.smoothed_share, 2), fmt(r.pseudo_moments), pct(r.hit_rate_model), pct(r.hit_rate_smoothed_count), pct(r.hit_rate_blend), num(r.log_likelihood), num(r.prior_log_likelihood)]),
  );
  t.id = id;
  return [t];
}

function offPolicy(name, op) {
  if (!op) return [h("p", { class: "help" }, "No off-policy estimates: this model was evaluated without a message log.")];
  const t = table(
    `${name}: off-policy estimates on ${fmt(op.sends)} logged sends (engagement per send, 95% interval)`,
    ["policy", "IPS", "IPS interval", "SNIPS", "SNIPS interval", "sends at its hour", "sends with a propensity"],
    (op.estimates || []).map((e) => [e.policy, num(e.ips), `${num(e.ips_low)} – ${num(e.ips_high)}`, num(e.snips), `${num(e.snips_low)} – ${num(e.snips_high)}`, fmt(e.matched), fmt(e.rows)]),
  );
  t.id = `off-policy-${name}`;
  return [t];
}

function lifecycle(name, life) {
  if (!life) return [];
  const t = table(
    `${name}: purchase in the next ${life.horizon_days || 90} days for ${fmt(life.customers)} customers (purchase rate ${pct(life.purchase_rate)})`,
    ["method", "AUC", "Brier", "spend Spearman", "spend mean absolute error"],
    Object.entries(life.methods || {}).map(([m, f]) => [m, num(f.auc), num(f.brier), num(f.spend_spearman), fmt(f.spend_mae)]),
  );
  t.id = `lifecycle-${name}`;
  const out = [t];
  const next = Object.entries(life.next_purchase || {});
  if (next.length) out.push(table(`${name}: next purchase date, mean absolute error`, ["method", "days", "products"], next.map(([m, f]) => [m, num(f.mae_days, 1), fmt(f.products)])));
  return out;
}

export async function modelsPage() {
  const card = await get("/v1/models/current");
  const w = card.training_window || {};
  const life = card.lifecycle || {};
  // main (the latest cut-off) first, then the other splits.
  const evaluations = Object.entries(card.evaluations || {}).sort(([a], [b]) => (a === "main" ? -1 : b === "main" ? 1 : a.localeCompare(b)));
  const sections = evaluations.map(([name, ev]) =>
    h(
      "section",
      { "aria-labelledby": `eval-${name}`, "data-evaluation": name },
      h("h2", { id: `eval-${name}` }, `Evaluation: ${name}`),
      h("h3", {}, "Send time"),
      ...sendTime(name, ev),
      ...calibration(`${name}: calibration and decision blend by history bucket, on the test days`, ev.calibration, `calibration-${name}`),
      h("h3", {}, "Off-policy estimates"),
      ...offPolicy(name, ev.off_policy),
      h("h3", {}, "Lifecycle"),
      ...lifecycle(name, ev.lifecycle),
    ),
  );
  view(
    "Model in service",
    h(
      "section",
      { "aria-labelledby": "model-title" },
      h("h2", { id: "model-title" }, "Training"),
      h(
        "div",
        { id: "model-facts" },
        dl([
          ["Version", h("code", { id: "model-version" }, card.version)],
          ["Served from", card.source === "published" ? `the models bucket (${card.published_version})` : "the bundled model"],
          ["Trained", card.trained_at ? String(card.trained_at).replace("T", " ").slice(0, 16) : null],
          ["On events from", `${day(w.start)} to ${day(w.end)}`],
          ["Customers", fmt(card.customers)],
          ["Training took", card.training_seconds ? `${fmt(card.training_seconds)} s` : null],
          ["Lifecycle rows", fmt(life.rows)],
          ["Lifecycle Brier (raw → calibrated)", life.brier_raw !== undefined ? `${num(life.brier_raw, 4)} → ${num(life.brier_calibrated, 4)}` : null],
        ]),
      ),
      ...calibration("Calibration and decision blend by history bucket, fitted on a label window the first booster never saw", card.calibration_fit, "calibration-fit"),
    ),
    ...(sections.length ? sections : [h("p", {}, "This model's card holds no evaluation: it was trained without `python -m training card`.")]),
  );
  announce(`Model ${card.version}, ${sections.length} evaluations`);
}
