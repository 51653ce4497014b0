// The projects list, the New project form, the open project's header, and the address
// (#project/<pid>, plus /run/<rid> for a chosen model) that a reload comes back to.

import { api, guarded } from "./api.js";
import { $, editableText, h, plural } from "./dom.js";
import { emit, state } from "./store.js";

export async function refreshProjects() {
  const projects = await api("/api/projects");
  const list = $("project-list");
  list.replaceChildren(
    ...projects.map((p) =>
      h("li", { class: state.project && state.project.id === p.id ? "active" : "" },
        h("a", { href: `#project/${p.id}`, "data-project": p.id },
          h("span", { class: "project-title", text: p.name }),
          h("span", { class: "muted small",
            text: `${p.modality} · ${plural(p.classes, "class", "classes")}` +
              ` · ${plural(p.examples, "example")}` }))),
    ),
  );
  if (!projects.length) list.append(h("li", { class: "muted small", text: "No projects yet." }));
}

/** Load a project (and its runs) into the page; `rid` picks a model, else the newest trained. */
export async function openProject(pid, rid = null) {
  const project = await api(`/api/projects/${encodeURIComponent(pid)}`);
  state.project = project;
  state.runs = project.runs || [];
  $("welcome").hidden = true;
  $("project").hidden = false;
  $("project-name").textContent = project.name;
  $("project-modality").textContent = project.modality;
  document.title = `${project.name} — transferkit studio`;
  emit("project", project);
  const done = state.runs.filter((r) => r.state === "done");
  const chosen = (rid && done.find((r) => r.id === rid)) || done[0] || null;
  await selectRun(chosen ? chosen.id : null);
  await refreshProjects();
}

/** Re-read the open project (class counts, runs) without changing the chosen model. */
export async function reloadProject() {
  if (!state.project) return;
  const project = await api(`/api/projects/${encodeURIComponent(state.project.id)}`);
  state.project = project;
  state.runs = project.runs || [];
  emit("project", project);
  await refreshProjects();
}

export async function selectRun(rid) {
  state.run = rid ? await api(`/api/runs/${encodeURIComponent(rid)}`) : null;
  const base = `#project/${state.project.id}`;
  const wanted = rid ? `${base}/run/${rid}` : base;
  // replaceState: choosing a model is not a page to go back to, and fires no hashchange
  if (location.hash !== wanted) history.replaceState(null, "", wanted);
  emit("run", state.run);
}

export function closeProject() {
  state.project = null;
  state.runs = [];
  state.run = null;
  $("project").hidden = true;
  $("welcome").hidden = false;
  document.title = "transferkit studio";
  emit("project", null);
  emit("run", null);
}

export function setupProjects() {
  const select = $("new-project-modality");
  select.replaceChildren(
    ...state.modalities.map((m) => h("option", { value: m.name,
      text: m.noun && m.noun !== m.name ? `${m.name} (${m.noun}s)` : m.name })),
  );
  $("new-project").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const name = $("new-project-name").value.trim();
      const project = await api("/api/projects", {
        method: "POST", json: { name, modality: select.value },
      });
      $("new-project-name").value = "";
      location.hash = `#project/${project.id}`;
    });
  });
  editableText($("project-name"), (name) =>
    guarded(async () => {
      await api(`/api/projects/${state.project.id}`, { method: "PATCH", json: { name } });
      state.project.name = name;
      await refreshProjects();
    }).then((r) => r !== undefined),
  );
  $("project-delete").addEventListener("click", () => {
    const p = state.project;
    if (!p || !confirm(`Delete the project “${p.name}” with all its examples and models?`)) return;
    guarded(async () => {
      await api(`/api/projects/${p.id}`, { method: "DELETE" });
      location.hash = "";
      closeProject();
      await refreshProjects();
    });
  });
}
