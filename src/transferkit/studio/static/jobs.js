// Following a job (training, ONNX export): its events as they happen over SSE, with polling
// of GET /api/jobs/{jid} as the fallback when the stream breaks.

import { api } from "./api.js";

const FINISHED = new Set(["done", "failed", "cancelled"]);

/** Resolve with the job's final state (GET /api/jobs/{jid}); `onEvent` hears each event. */
export function followJob(jid, onEvent = () => {}) {
  return new Promise((resolve) => {
    let over = false;
    const finish = async () => {
      if (over) return;
      over = true;
      resolve(await poll(jid, onEvent));
    };
    const source = new EventSource(`/api/jobs/${encodeURIComponent(jid)}/events`);
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.kind === "end") {
        source.close();
        finish();
      } else {
        onEvent(event);
      }
    };
    source.onerror = () => {
      // the stream broke (or was never there): ask for the job's state until it ends
      source.close();
      finish();
    };
  });
}

async function poll(jid, onEvent) {
  for (;;) {
    const job = await api(`/api/jobs/${encodeURIComponent(jid)}`, { quiet: true });
    if (FINISHED.has(job.state)) return job;
    if (job.progress) {
      onEvent({ kind: "progress", name: job.progress.desc, data: job.progress });
    } else if (job.stage) {
      onEvent({ kind: "stage", name: job.stage, data: {} });
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
