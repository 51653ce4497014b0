// Class cards: name (rename in place), delete, the examples grid, and every way to add
// examples — files, folders, drag and drop, the webcam, the microphone, pasted text.

import { api, guarded, showError } from "./api.js";
import { Microphone, grabFrame, holdToRecord, openCamera, stopStream } from "./capture.js";
import { $, editableText, h, plural } from "./dom.js";
import { exampleTile } from "./examples.js";
import { reloadProject, refreshProjects } from "./projects.js";
import { modality, on, state } from "./store.js";
import { filesFromDrop, filesFromInput, splitTexts, uploadBlobs, uploadTexts } from "./uploads.js";

const FRAMES_PER_SECOND = 5;
const CLIP_SECONDS = 1;

let shownProject = null; // the project whose cards are on the page
let classKey = ""; // its classes' ids and names, as the tiles' move selects list them
const cards = new Map(); // class id → card
let activeCapture = null; // one webcam / microphone open at a time: { close() }

export function setupClasses() {
  $("add-class").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const input = $("add-class-name");
      await api(`/api/projects/${state.project.id}/classes`, {
        method: "POST", json: { name: input.value.trim() },
      });
      input.value = "";
      await reloadProject();
    });
  });
  on("project", render);
}

function render(project) {
  if (!project || !shownProject || project.id !== shownProject) {
    closeCapture();
    cards.clear();
    $("classes").replaceChildren();
    classKey = "";
  }
  shownProject = project ? project.id : null;
  if (!project) return;
  $("classes-empty").hidden = project.classes.length > 0;
  const ids = new Set(project.classes.map((c) => c.id));
  for (const [cid, card] of cards) {
    if (!ids.has(cid)) {
      card.el.remove();
      cards.delete(cid);
    }
  }
  for (const cls of project.classes) {
    let card = cards.get(cls.id);
    if (!card) {
      card = makeCard(cls);
      cards.set(cls.id, card);
      $("classes").append(card.el);
      guarded(card.load);
    }
    card.update(cls);
  }
  // a tile's move select lists the other classes: redraw the tiles when those changed
  const key = project.classes.map((c) => `${c.id}:${c.name}`).join("|");
  if (classKey && key !== classKey) for (const card of cards.values()) guarded(card.load);
  classKey = key;
}

function makeCard(cls) {
  const el = $("class-card-template").content.firstElementChild.cloneNode(true);
  el.dataset.class = cls.id;
  const q = (sel) => el.querySelector(sel);
  const grid = q(".examples");
  const m = modality();
  const card = { el, id: cls.id, count: cls.count };

  const setCount = (n) => {
    card.count = n;
    q(".count").textContent = plural(n, m.noun || "example");
  };
  card.update = (c) => {
    if (!q(".class-name input")) q(".class-name").textContent = c.name;
    setCount(c.count);
  };
  card.load = async () => {
    const examples = await api(`/api/classes/${cls.id}/examples`);
    grid.replaceChildren(...examples.map((e) => tile(e)));
    setCount(examples.length);
  };
  const tile = (example) =>
    exampleTile(example, {
      classes: state.project.classes,
      onRemoved: (movedTo) => {
        setCount(card.count - 1);
        if (movedTo && cards.has(movedTo)) guarded(cards.get(movedTo).load);
        guarded(refreshProjects);
      },
    });
  card.added = (examples) => {
    grid.append(...examples.map((e) => tile(e)));
    setCount(card.count + examples.length);
    guarded(refreshProjects);
  };

  editableText(q(".class-name"), (name) =>
    guarded(async () => {
      await api(`/api/classes/${cls.id}`, { method: "PATCH", json: { name } });
      await reloadProject();
    }).then((r) => r !== undefined));
  q(".class-delete").addEventListener("click", () => {
    const name = q(".class-name").textContent;
    if (!confirm(`Delete the class “${name}” and its ${plural(card.count, "example")}?`)) return;
    guarded(async () => {
      await api(`/api/classes/${cls.id}`, { method: "DELETE" });
      await reloadProject();
    });
  });

  const status = q(".drop-hint");
  const send = (items, source) =>
    guarded(async () => {
      if (!items.length) return;
      const added = await uploadBlobs(cls.id, items, source, (done, total) => {
        status.textContent = `Uploading ${done} / ${total}…`;
      });
      card.added(added);
    }).finally(() => {
      status.textContent = "…or drop files and folders here";
    });

  const accept = (m.accept || []).join(",");
  for (const input of [q(".upload-files"), q(".upload-folder")]) {
    if (accept && input.classList.contains("upload-files")) input.accept = accept;
    input.addEventListener("change", () => {
      const items = filesFromInput(input);
      input.value = "";
      send(items, "upload");
    });
  }
  el.addEventListener("dragover", (event) => {
    event.preventDefault();
    el.classList.add("dropping");
  });
  el.addEventListener("dragleave", (event) => {
    if (!el.contains(event.relatedTarget)) el.classList.remove("dropping");
  });
  el.addEventListener("drop", (event) => {
    event.preventDefault();
    el.classList.remove("dropping");
    guarded(async () => send(await filesFromDrop(event.dataTransfer), "upload"));
  });

  if (m.inline_inputs) setupPaste(card, q);
  if (m.capture) setupCapture(card, q, m.capture, send);
  return card;
}

function setupPaste(card, q) {
  const form = q(".paste-box");
  const open = q(".paste-open");
  open.hidden = false;
  open.addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) q(".paste-text").focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const texts = splitTexts(q(".paste-text").value, q(".paste-split").value);
    if (!texts.length) return;
    guarded(async () => {
      card.added(await uploadTexts(card.id, texts));
      q(".paste-text").value = "";
      form.hidden = true;
    });
  });
}

function setupCapture(card, q, kind, send) {
  const open = q(".capture-open");
  const label = kind === "webcam" ? "Webcam" : "Microphone";
  open.hidden = false;
  open.textContent = label;
  open.addEventListener("click", async () => {
    if (activeCapture && activeCapture.card === card) {
      closeCapture();
      return;
    }
    closeCapture();
    try {
      const start = kind === "webcam" ? startWebcam : startMicrophone;
      activeCapture = await start(card, q, send);
    } catch (error) {
      showError(`The ${label.toLowerCase()} could not be opened (${error.message}): allow it ` +
        "in the browser's site settings and try again.");
      return;
    }
    activeCapture.card = card;
    q(".capture-box").hidden = false;
    open.textContent = `Close the ${label.toLowerCase()}`;
    open.classList.add("active");
  });
  card.closeCapture = () => {
    q(".capture-box").hidden = true;
    open.textContent = label;
    open.classList.remove("active");
  };
}

function closeCapture() {
  if (!activeCapture) return;
  activeCapture.close();
  activeCapture.card.closeCapture();
  activeCapture = null;
}

async function startWebcam(card, q, send) {
  const video = q(".capture-video");
  const stream = await openCamera(video);
  video.hidden = false;
  const counter = q(".capture-count");
  const button = q(".capture-hold");
  let timer = null;
  let frames = [];
  const release = holdToRecord(button, {
    start() {
      frames = [];
      const max = Number(q(".capture-max").value) || 30;
      const take = () => {
        if (frames.length >= max) {
          release();
          return;
        }
        frames.push(grabFrame(video));
        counter.textContent = `${frames.length} frames`;
      };
      take();
      timer = setInterval(take, 1000 / FRAMES_PER_SECOND);
    },
    stop() {
      clearInterval(timer);
      guarded(async () => {
        const blobs = await Promise.all(frames);
        const at = Date.now();
        await send(blobs.map((blob, i) => ({ name: `webcam-${at}-${i + 1}.png`, blob })), "webcam");
        counter.textContent = `${blobs.length} frames added`;
      });
    },
  });
  return {
    close() {
      release();
      stopStream(stream);
      video.srcObject = null;
      video.hidden = true;
    },
  };
}

async function startMicrophone(card, q, send) {
  const mic = await new Microphone().open();
  const meter = q(".capture-level");
  meter.hidden = false;
  const g = meter.getContext("2d");
  mic.onLevel = (rms) => {
    g.clearRect(0, 0, meter.width, meter.height);
    g.fillStyle = "#3559d1";
    g.fillRect(0, 8, Math.min(1, rms * 4) * meter.width, meter.height - 16);
  };
  const counter = q(".capture-count");
  const button = q(".capture-hold");
  let clips = [];
  let max = 30;
  const release = holdToRecord(button, {
    start() {
      clips = [];
      max = Number(q(".capture-max").value) || 30;
      mic.record(CLIP_SECONDS, (blob) => {
        if (clips.length >= max) return;
        clips.push(blob);
        counter.textContent = `${plural(clips.length, "clip")} of ${CLIP_SECONDS} s`;
        if (clips.length >= max) release();
      });
    },
    stop() {
      mic.stop();
      const at = Date.now();
      const items = clips.map((blob, i) => ({ name: `microphone-${at}-${i + 1}.wav`, blob }));
      send(items, "microphone").then(() => {
        counter.textContent = `${plural(items.length, "clip")} added`;
      });
    },
  });
  return {
    close() {
      release();
      mic.close();
      meter.hidden = true;
    },
  };
}
