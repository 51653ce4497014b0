// The example tiles inside a class card: a thumbnail, a waveform or a text snippet, with
// delete and move-to-class.

import { api, guarded } from "./api.js";
import { h } from "./dom.js";

// previews are fetched a few at a time, so a class of hundreds does not flood the server
const queue = [];
let running = 0;
function limited(task) {
  return new Promise((resolve, reject) => {
    queue.push({ task, resolve, reject });
    pump();
  });
}
function pump() {
  while (running < 4 && queue.length) {
    const { task, resolve, reject } = queue.shift();
    running++;
    task().then(resolve, reject).finally(() => {
      running--;
      pump();
    });
  }
}

/** One tile; `classes` are the project's classes (for the move select). */
export function exampleTile(example, { classes, onRemoved }) {
  const kind = example.media_type.split("/")[0];
  const body = h("div", { class: `tile-body ${kind}` });
  const tile = h("figure", { class: "tile", "data-example": example.id, title: example.name });
  fillPreview(body, example, kind);
  const move = h("select", { class: "tile-move", "aria-label": "Move to class" },
    h("option", { value: "", text: "move…" }),
    ...classes.filter((c) => c.id !== example.class_id)
      .map((c) => h("option", { value: c.id, text: c.name })));
  move.addEventListener("change", () => {
    const target = move.value;
    if (!target) return;
    guarded(async () => {
      await api(`/api/examples/${example.id}`, { method: "PATCH", json: { class_id: target } });
      tile.remove();
      onRemoved(target);
    });
  });
  const remove = h("button", { type: "button", class: "icon-button tile-delete",
    "aria-label": `Delete ${example.name}`, text: "✕" });
  remove.addEventListener("click", () =>
    guarded(async () => {
      await api(`/api/examples/${example.id}`, { method: "DELETE" });
      tile.remove();
      onRemoved(null);
    }));
  tile.append(body, h("figcaption", {}, move, remove));
  return tile;
}

function fillPreview(body, example, kind) {
  const url = `/api/examples/${example.id}/preview`;
  if (kind === "image") {
    body.append(h("img", { src: url, alt: example.name, loading: "lazy", width: 96, height: 96 }));
    return;
  }
  if (kind === "audio") {
    const canvas = h("canvas", { width: 96, height: 48, class: "wave" });
    const play = h("button", { type: "button", class: "icon-button play", text: "▶",
      "aria-label": `Play ${example.name}` });
    const seconds = h("span", { class: "small muted" });
    play.addEventListener("click", () => {
      new Audio(`/api/examples/${example.id}/content`).play().catch(() => {});
    });
    body.append(canvas, h("div", { class: "wave-row" }, play, seconds));
    limited(() => api(url, { quiet: true })).then((preview) => {
      drawPeaks(canvas, preview.peaks);
      seconds.textContent = `${preview.seconds.toFixed(1)} s`;
    }).catch(() => { seconds.textContent = "no preview"; });
    return;
  }
  const snippet = h("p", { class: "snippet", text: "…" });
  body.append(snippet);
  limited(() => api(url, { quiet: true })).then((preview) => {
    snippet.textContent = preview.text;
  }).catch(() => { snippet.textContent = example.name; });
}

/** A waveform from peaks in 0..1, mirrored around the middle line. */
export function drawPeaks(canvas, peaks) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#3559d1";
  const step = width / Math.max(1, peaks.length);
  peaks.forEach((p, i) => {
    const bar = Math.max(1, p * (height - 2));
    g.fillRect(i * step, (height - bar) / 2, Math.max(1, step - 0.5), bar);
  });
}
