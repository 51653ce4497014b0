// The Train panel: backbone and strategy from /api/choices, the live progress of a training
// job, the choice of model among the project's runs, and the report of the chosen one.

import { api, guarded, showError } from "./api.js";
import { $, h } from "./dom.js";
import { followJob } from "./jobs.js";
import { reloadProject, selectRun } from "./projects.js";
import { reportSummary } from "./report.js";
import { on, state } from "./store.js";

const choicesFor = new Map(); // modality → GET /api/choices answer
const offered = new Map(); // select id → the choices it lists
let job = null; // the training job this page follows
let watchedRun = null; // a run that was training when the page loaded

export function setupTrain() {
  $("train-start").addEventListener("click", () => guarded(startTraining));
  $("train-cancel").addEventListener("click", () =>
    guarded(() => api(`/api/jobs/${job}/cancel`, { method: "POST" })));
  $("run-select").addEventListener("change", () => guarded(() => selectRun($("run-select").value)));
  for (const id of ["train-backbone", "train-strategy"]) {
    $(id).addEventListener("change", () => showDoc($(id)));
  }
  on("project", (project) => project && guarded(() => showProject(project)));
  on("run", showRun);
}

async function showProject(project) {
  if (!choicesFor.has(project.modality)) {
    choicesFor.set(project.modality,
      await api(`/api/choices?modality=${encodeURIComponent(project.modality)}`));
  }
  const { backbones, strategies } = choicesFor.get(project.modality);
  fillSelect($("train-backbone"), backbones);
  fillSelect($("train-strategy"), strategies);
  const running = state.runs.find((r) => r.state === "running");
  if (running && !job && watchedRun !== running.id) guarded(() => watch(running));
  fillRuns();
}

/** Options from the choices; each one's "doc" is its tooltip and shows under the select. */
function fillSelect(select, items) {
  const keep = select.value;
  select.replaceChildren(...items.map((it) =>
    h("option", { value: it.name, text: it.name, title: it.doc || "" })));
  const fallback = items.find((it) => it.default) || items[0];
  select.value = items.some((it) => it.name === keep) ? keep : fallback ? fallback.name : "";
  offered.set(select.id, items);
  showDoc(select);
}

function showDoc(select) {
  const item = (offered.get(select.id) || []).find((it) => it.name === select.value);
  $(`${select.id}-doc`).textContent = (item && item.doc) || "";
}

function fillRuns() {
  const done = state.runs.filter((r) => r.state === "done");
  const select = $("run-select");
  select.replaceChildren(...done.map((r, i) => {
    const settings = r.settings || {};
    const created = new Date(r.created * 1000);
    const when = created.toDateString() === new Date().toDateString()
      ? created.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : created.toLocaleDateString();
    // what was asked for, where it was more than the defaults
    const asked = [settings.backbone, settings.strategy]
      .filter((x) => x && x !== "auto" && x !== "default").join(" · ");
    return h("option", { value: r.id,
      text: `#${done.length - i} · ${when}${asked ? ` · ${asked}` : ""}` });
  }));
  if (!done.length) select.append(h("option", { value: "", text: "none yet" }));
  select.disabled = !done.length;
  if (state.run) select.value = state.run.id;
}

async function startTraining() {
  const body = {
    backbone: $("train-backbone").value || "default",
    strategy: $("train-strategy").value || "auto",
    seed: 0,
    baseline: $("train-baseline").checked,
  };
  const started = await api(`/api/projects/${state.project.id}/train`, { method: "POST", json: body });
  showProgress(true, "queued");
  await follow(started.job_id, started.run_id);
}

/** Follow a training job to its end; then show its run, or say why there is none. */
async function follow(jid, rid) {
  job = jid;
  const pid = state.project.id;
  $("train-cancel").hidden = false;
  $("train-start").disabled = true;
  let final;
  try {
    final = await followJob(jid, progressEvent);
  } finally {
    job = null;
    $("train-cancel").hidden = true;
    $("train-start").disabled = false;
  }
  if (!state.project || state.project.id !== pid) return; // the user went elsewhere
  if (final.state === "done") {
    showProgress(false);
    await reloadProject();
    await selectRun(rid);
  } else {
    logLine(final.state === "cancelled" ? "cancelled" : `failed: ${final.error}`, "warning");
    if (final.state === "failed") showError(`Training failed: ${final.error}`);
    await reloadProject();
  }
}

/** A run that was already training when the page loaded: follow its job when the server names
 * it, else wait for the run's state to change. */
async function watch(summary) {
  watchedRun = summary.id;
  showProgress(true, "training (started before this page was loaded)…");
  try {
    // the project's run list is rows; the run's own view names its job
    const run = await api(`/api/runs/${encodeURIComponent(summary.id)}`, { quiet: true })
      .catch(() => summary);
    if (run.job_id) {
      await follow(run.job_id, run.id);
      return;
    }
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      const now = await api(`/api/runs/${encodeURIComponent(run.id)}`, { quiet: true })
        .catch(() => null);
      if (!now || now.state !== "running" || !state.project) break;
    }
    showProgress(false);
    if (state.project) {
      await reloadProject();
      if (state.runs.some((r) => r.id === run.id && r.state === "done")) await selectRun(run.id);
    }
  } finally {
    watchedRun = null;
  }
}

function showProgress(visible, stage = "") {
  $("train-progress").hidden = !visible;
  if (!visible) return;
  $("train-stage").textContent = stage;
  $("train-count").textContent = "";
  $("train-bar").removeAttribute("value"); // indeterminate until a counter arrives
  $("train-log").replaceChildren();
}

function progressEvent(event) {
  const d = event.data || {};
  if (event.kind === "progress") {
    $("train-stage").textContent = event.name;
    if (d.total) {
      $("train-bar").value = d.n / d.total;
      $("train-count").textContent = `${d.n} / ${d.total}`;
    }
    if (d.state === "open") logLine(event.name);
  } else if (event.kind === "stage") {
    $("train-stage").textContent = event.name;
    logLine(`${event.name}${d.state ? ` (${d.state})` : ""}`);
  } else if (event.kind === "epoch") {
    const parts = Object.entries(d).filter(([k, v]) => k !== "epoch" && typeof v === "number")
      .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
    logLine(`${event.name} epoch ${d.epoch ?? ""}: ${parts.join(", ")}`);
  } else if (event.kind === "metric") {
    logLine(`${event.name}: ${JSON.stringify(d.value ?? d)}`);
  } else if (event.kind === "warning") {
    logLine(d.message || event.name, "warning");
  }
}

function logLine(text, kind = "") {
  const log = $("train-log");
  log.append(h("li", { class: kind, text }));
  while (log.children.length > 50) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function showRun(run) {
  fillRuns();
  const summary = $("report-summary");
  const full = $("report-full");
  if (!run) {
    summary.replaceChildren();
    full.hidden = true;
    $("report-frame").removeAttribute("src");
    return;
  }
  summary.replaceChildren(...reportSummary(run));
  const url = run.report_url || `/api/runs/${run.id}/report`;
  full.hidden = false;
  $("report-link").href = url;
  if ($("report-frame").getAttribute("src") !== url) $("report-frame").src = url;
}
