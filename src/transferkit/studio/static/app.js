// The studio page's entry point: loads what the server offers, wires each panel, and follows
// the address (#project/<pid>[/run/<rid>]) so a reload comes back to the same place.

import { api, guarded } from "./api.js";
import { setupClasses } from "./classes.js";
import { setupExport } from "./export.js";
import { setupLive } from "./live.js";
import { closeProject, openProject, refreshProjects, setupProjects } from "./projects.js";
import { state } from "./store.js";
import { setupTrain } from "./train.js";

async function route() {
  const match = location.hash.match(/^#project\/([^/]+)(?:\/run\/([^/]+))?$/);
  if (!match) {
    closeProject();
    await refreshProjects();
    return;
  }
  const [, pid, rid] = match.map((part) => part && decodeURIComponent(part));
  if (state.project && state.project.id === pid && (!rid || (state.run && state.run.id === rid))) {
    return; // already open (the address was rewritten by the page itself)
  }
  await openProject(pid, rid);
}

async function boot() {
  state.modalities = await api("/api/modalities");
  setupProjects();
  setupClasses();
  setupTrain();
  setupLive();
  setupExport();
  window.addEventListener("hashchange", () => guarded(route));
  await route();
  document.body.dataset.ready = "true"; // the browser tests wait for this
}

guarded(boot);
