// "Export": the bundle, an ONNX export (float or int8) followed as a job, the command line
// that trains the same model again, and the dataset it reads.

import { api, guarded, showError } from "./api.js";
import { $, h } from "./dom.js";
import { followJob } from "./jobs.js";
import { on, state } from "./store.js";

export function setupExport() {
  $("export-onnx").addEventListener("click", () => guarded(exportOnnx));
  $("export-copy").addEventListener("click", copyCommand);
  on("run", (run) => guarded(() => showRun(run)));
}

async function showRun(run) {
  $("export-empty").hidden = Boolean(run);
  $("export-body").hidden = !run;
  $("onnx-result").replaceChildren();
  $("onnx-progress").hidden = true;
  if (!run) return;
  $("export-bundle").href = `/api/runs/${run.id}/export/bundle`;
  $("export-command").textContent = "…";
  const { command, dataset_url: dataset } = await api(`/api/runs/${run.id}/command`);
  if (state.run !== run) return;
  $("export-command").textContent = command;
  $("export-dataset").href = dataset;
}

async function exportOnnx() {
  const run = state.run;
  const int8 = $("export-int8").checked;
  const button = $("export-onnx");
  button.disabled = true;
  $("onnx-result").replaceChildren();
  $("onnx-progress").hidden = false;
  $("onnx-stage").textContent = "exporting…";
  $("onnx-bar").removeAttribute("value");
  try {
    const { job_id: jid } = await api(`/api/runs/${run.id}/export/onnx`, {
      method: "POST", json: { quantize: int8 ? "int8" : null },
    });
    const job = await followJob(jid, (event) => {
      $("onnx-stage").textContent = event.name;
      const d = event.data || {};
      if (event.kind === "progress" && d.total) $("onnx-bar").value = d.n / d.total;
    });
    if (state.run !== run) return;
    if (job.state !== "done") {
      showError(`The ONNX export ${job.state === "cancelled" ? "was cancelled" : "failed"}` +
        (job.error ? `: ${job.error}` : ""));
      return;
    }
    const r = job.result || {};
    const facts = [r.size_bytes ? `${(r.size_bytes / 1e6).toFixed(1)} MB` : null,
      parity(r.parity)].filter(Boolean).join(" · ");
    $("onnx-result").replaceChildren(
      h("a", { class: "button", id: "export-onnx-download", href: r.download, download: "",
        text: `Download the ONNX model${int8 ? " (int8)" : ""}` }),
      h("span", { class: "muted", text: facts ? ` ${facts}` : "" }));
  } finally {
    button.disabled = false;
    $("onnx-progress").hidden = true;
  }
}

function parity(value) {
  if (!value || value.max_abs_diff_probabilities === undefined) return null;
  const diff = Number(value.max_abs_diff_probabilities).toExponential(1);
  return `probabilities within ${diff} of the bundle's on ${value.examples} held-out examples`;
}

async function copyCommand() {
  const text = $("export-command").textContent;
  const button = $("export-copy");
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // no clipboard permission (an insecure origin, a locked-down browser): select it instead
    const range = document.createRange();
    range.selectNodeContents($("export-command"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}
