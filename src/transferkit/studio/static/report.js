// The report's summary drawn in the page from GET /api/runs/{rid}: accuracy with its interval,
// per-class results, the confusion grid, the learning curve (inline SVG), the baseline verdict.

import { h, pct, s } from "./dom.js";

export function reportSummary(run) {
  const m = run.metrics || {};
  const out = [];
  const support = m.n_test ||
    Object.values(m.per_class || {}).reduce((a, c) => a + (c.support || 0), 0);
  const interval = m.accuracy_interval;
  out.push(
    h("div", { class: "headline" },
      h("div", { class: "big", "data-metric": "accuracy", text: pct(m.accuracy) }),
      h("div", {},
        h("div", { text: "accuracy on examples held out from training" }),
        interval
          ? h("div", { class: "muted small", "data-metric": "interval",
            text: `95 % interval ${pct(interval[0])} – ${pct(interval[1])}` +
              (support ? ` (${support} test examples)` : "") })
          : null,
        m.macro_f1 !== undefined
          ? h("div", { class: "muted small", text: `macro F1 ${m.macro_f1.toFixed(3)}` })
          : null,
        h("div", { class: "muted small",
          text: [m.backbone, m.strategy].filter(Boolean).join(" · ") +
            (m.seconds ? ` · ${seconds(m.seconds)}` : "") }))),
  );
  for (const reason of [m.backbone_reason, m.strategy_reason]) {
    if (reason) out.push(h("p", { class: "small muted reason", text: reason }));
  }
  if (m.baseline) out.push(verdict(m.baseline));
  // long class names scroll inside their table rather than widen the panel
  const wrap = (table) => h("div", { class: "table-wrap" }, table);
  if (m.per_class) out.push(h("h3", { text: "Per class" }), wrap(perClass(m)));
  if (m.confusion && m.labels) out.push(h("h3", { text: "Confusion" }), wrap(confusion(m)));
  if (m.learning_curve && m.learning_curve.points && m.learning_curve.points.length) {
    out.push(h("h3", { text: "Learning curve" }), curve(m.learning_curve),
      h("p", { class: "small", text: m.learning_curve.advice || "" }));
  }
  return out;
}

function seconds(value) {
  const total = typeof value === "number" ? value : value.total;
  return total === undefined ? "" : `trained in ${total.toFixed(1)} s`;
}

function verdict(baseline) {
  return h("div", { class: `verdict ${baseline.verdict || ""}`, "data-verdict": baseline.verdict },
    h("strong", { text: baseline.message || baseline.verdict }),
    ...(baseline.advice || []).map((a) => h("div", { class: "small", text: a })));
}

function perClass(m) {
  const rows = (m.labels || Object.keys(m.per_class)).map((label) => {
    const c = m.per_class[label] || {};
    const num = (x) => (x === undefined ? "" : x.toFixed(2));
    return h("tr", {}, h("th", { text: label }), h("td", { text: num(c.precision) }),
      h("td", { text: num(c.recall) }), h("td", { text: num(c.f1) }),
      h("td", { text: String(c.support ?? "") }));
  });
  return h("table", { class: "per-class" },
    h("thead", {}, h("tr", {}, ...["class", "precision", "recall", "F1", "test examples"]
      .map((t) => h("th", { text: t })))),
    h("tbody", {}, rows));
}

function confusion(m) {
  const labels = m.labels;
  const head = h("tr", {}, h("th", { class: "corner", text: "true ↓ predicted →" }),
    ...labels.map((l) => h("th", { text: l })));
  const rows = m.confusion.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return h("tr", {}, h("th", { text: labels[i] }),
      ...row.map((n, j) => {
        const cell = h("td", { class: i === j ? "diag" : "off", text: String(n) });
        // shade by the share of the true class (CSSOM, which the CSP allows; no style attribute)
        cell.style.setProperty("--share", String(n / total));
        return cell;
      }));
  });
  return h("table", { class: "confusion" }, h("thead", {}, head), h("tbody", {}, rows));
}

/** Accuracy against examples per class, log-scaled x, with ±1 std bars from the draws. */
function curve(lc) {
  const W = 360;
  const H = 200;
  const pad = { l: 40, r: 12, t: 10, b: 34 };
  const pts = lc.points;
  const xs = pts.map((p) => Math.log(p.per_class));
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1e-9);
  const X = (p) => pad.l + ((Math.log(p.per_class) - x0) / (x1 - x0 || 1)) * (W - pad.l - pad.r);
  const Y = (a) => pad.t + (1 - a) * (H - pad.t - pad.b);
  const parts = [];
  for (const a of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(s("line", { x1: pad.l, x2: W - pad.r, y1: Y(a), y2: Y(a), class: "grid" }),
      s("text", { x: pad.l - 6, y: Y(a) + 4, "text-anchor": "end", class: "tick" },
        `${Math.round(a * 100)}%`));
  }
  for (const p of pts) {
    parts.push(s("text", { x: X(p), y: H - pad.b + 16, "text-anchor": "middle", class: "tick" },
      String(p.per_class)));
    if (p.std) {
      parts.push(s("line", { x1: X(p), x2: X(p), y1: Y(Math.min(1, p.accuracy + p.std)),
        y2: Y(Math.max(0, p.accuracy - p.std)), class: "err" }));
    }
  }
  parts.push(
    s("polyline", { points: pts.map((p) => `${X(p)},${Y(p.accuracy)}`).join(" "),
      class: "line" }),
    ...pts.map((p) => s("circle", { cx: X(p), cy: Y(p.accuracy), r: 3.5, class: "dot" },
      s("title", {}, `${p.per_class} per class: ${pct(p.accuracy)}`))),
    s("text", { x: (W + pad.l) / 2, y: H - 4, "text-anchor": "middle", class: "axis" },
      "training examples per class"),
  );
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "curve", role: "img",
    "aria-label": "learning curve" }, parts);
}
