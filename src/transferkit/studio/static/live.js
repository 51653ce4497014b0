// "Try it": the chosen model's predictions, continuously, on the webcam, the microphone or
// typed text, with a bar per class; and on a single uploaded file.

import { ApiError, api, showError } from "./api.js";
import { Microphone, grabFrame, openCamera, stopStream } from "./capture.js";
import { $, h, pct } from "./dom.js";
import { modality, on, state } from "./store.js";

const FRAME_EVERY_MS = 300;
const CLIP_SECONDS = 1;

let live = null; // the running live source: { stop() }
let typing = null; // the debounce timer of the text box

export function setupLive() {
  $("live-toggle").addEventListener("click", () => (live ? stopLive() : startLive()));
  $("live-text").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(predictTyped, 300);
  });
  $("test-file").addEventListener("change", testFile);
  on("run", showRun);
}

function showRun(run) {
  stopLive();
  $("live-bars").replaceChildren();
  $("test-file-view").replaceChildren();
  $("live-status").textContent = "";
  $("try-empty").hidden = Boolean(run);
  $("try-body").hidden = !run;
  if (!run) return;
  const m = modality();
  $("live-toggle").hidden = !m.capture;
  $("live-toggle").textContent = startLabel(m.capture);
  $("live-text").hidden = !m.inline_inputs;
  $("live-text").value = "";
  $("test-file").accept = (m.accept || []).join(",");
}

const startLabel = (capture) => `Start the ${capture === "webcam" ? "webcam" : "microphone"}`;

/** Ask the model; `body` is {form} or {json}. Shows the bars; null when it failed. */
async function predict(body, into = $("live-bars")) {
  const run = state.run;
  const started = performance.now();
  let answer;
  try {
    answer = await api(`/api/runs/${run.id}/predict`, { method: "POST", quiet: true, ...body });
  } catch (error) {
    stopLive();
    showError(error instanceof ApiError ? error.message : String(error));
    return null;
  }
  if (state.run !== run) return null; // another model was chosen meanwhile
  const prediction = answer.predictions[0];
  if (prediction.label === null) { // this input could not be read; the server says why
    into.replaceChildren();
    $("live-status").textContent = prediction.error || "this input could not be read";
    return null;
  }
  into.replaceChildren(...bars(answer.labels, prediction));
  $("live-status").textContent =
    `${prediction.label} — answered in ${Math.round(performance.now() - started)} ms`;
  return prediction;
}

function bars(labels, prediction) {
  return labels.map((label) => {
    const p = prediction.probabilities[label] || 0;
    const fill = h("div", { class: "bar-fill" });
    fill.style.width = `${(100 * p).toFixed(1)}%`; // CSSOM: allowed by the page's CSP
    return h("div", { class: `bar ${label === prediction.label ? "top" : ""}`, "data-label": label },
      h("span", { class: "bar-label", text: label }),
      h("div", { class: "bar-track" }, fill),
      h("span", { class: "bar-value", text: pct(p, 0) }));
  });
}

const fileForm = (blob, name) => {
  const form = new FormData();
  form.append("files", blob, name);
  return { form };
};

async function startLive() {
  const m = modality();
  const button = $("live-toggle");
  try {
    live = m.capture === "webcam" ? await liveWebcam() : await liveMicrophone();
  } catch (error) {
    showError(`The ${m.capture} could not be opened (${error.message}): allow it in the ` +
      "browser's site settings and try again.");
    return;
  }
  button.textContent = "Stop";
  button.classList.add("active");
}

function stopLive() {
  if (!live) return;
  live.stop();
  live = null;
  $("live-toggle").textContent = startLabel(modality().capture);
  $("live-toggle").classList.remove("active");
}

async function liveWebcam() {
  const video = $("live-video");
  const stream = await openCamera(video);
  video.hidden = false;
  let on = true;
  let timer = null;
  const loop = async () => {
    const started = performance.now();
    let frame;
    try {
      frame = await grabFrame(video);
    } catch (error) {
      stopLive();
      showError(`The webcam gave no picture: ${error.message}`);
      return;
    }
    if (!on) return;
    await predict(fileForm(frame, "frame.png"));
    if (on) timer = setTimeout(loop, Math.max(0, FRAME_EVERY_MS - (performance.now() - started)));
  };
  loop();
  return {
    stop() {
      on = false;
      clearTimeout(timer);
      stopStream(stream);
      video.srcObject = null;
      video.hidden = true;
    },
  };
}

async function liveMicrophone() {
  const mic = await new Microphone().open();
  let busy = false;
  // a clip every second; one that arrives while the last is still being answered is skipped
  mic.record(CLIP_SECONDS, async (wav) => {
    if (busy) return;
    busy = true;
    await predict(fileForm(wav, "clip.wav"));
    busy = false;
  });
  $("live-status").textContent = "listening…";
  return { stop: () => mic.close() };
}

async function predictTyped() {
  const text = $("live-text").value.trim();
  if (!text) {
    $("live-bars").replaceChildren();
    return;
  }
  await predict({ json: { texts: [text] } });
}

async function testFile() {
  const input = $("test-file");
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  stopLive();
  const view = $("test-file-view");
  const kind = (file.type || "").split("/")[0];
  const url = URL.createObjectURL(file);
  const shown = kind === "image"
    ? h("img", { src: url, alt: file.name, class: "test-image" })
    : kind === "audio"
      ? h("audio", { src: url, controls: true })
      : h("p", { class: "snippet", text: (await file.text()).slice(0, 300) });
  const result = h("div", { class: "bars" });
  view.replaceChildren(h("div", { class: "small muted", text: file.name }), shown, result);
  const body = modality().inline_inputs && kind !== "image" && kind !== "audio"
    ? { json: { texts: [await file.text()] } }
    : fileForm(file, file.name);
  $("live-bars").replaceChildren();
  await predict(body, result);
}
