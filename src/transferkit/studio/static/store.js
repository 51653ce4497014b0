// The page's state (the open project, its runs, the chosen model) and who listens to it.

const listeners = new Map();

export const state = {
  modalities: [], // GET /api/modalities
  project: null, // GET /api/projects/{pid}
  runs: [], // newest first
  run: null, // the run the Try it and Export panels use (GET /api/runs/{rid})
};

export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, []);
  listeners.get(name).push(fn);
}

export function emit(name, value) {
  for (const fn of listeners.get(name) || []) fn(value);
}

/** What the page knows about the open project's kind of examples (capture, accept, noun). */
export function modality() {
  const name = state.project && state.project.modality;
  return state.modalities.find((m) => m.name === name) || { name, capture: null, accept: [] };
}
