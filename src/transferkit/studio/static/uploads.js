// Sending examples: files in batches under the server's limits, folders (picked or dropped),
// pasted text; what the server refused is said in the banner, naming each file.

import { ApiError, api, showError } from "./api.js";

const MAX_FILES = 50; // the server takes 200 a request; smaller batches show progress sooner
const MAX_BYTES = 32 * 1024 * 1024; // half the request limit, headroom for multipart overhead

/** Post `items` ([{name, blob}]) to a class; `onProgress(done, total)`; returns the added. */
export async function uploadBlobs(cid, items, source, onProgress = () => {}) {
  const added = [];
  const refused = [];
  let done = 0;
  for (const batch of batches(items)) {
    const form = new FormData();
    form.append("source", source);
    for (const { name, blob } of batch) form.append("files", blob, name);
    const answer = await post(cid, { form });
    added.push(...answer.added);
    refused.push(...answer.refused);
    done += batch.length;
    onProgress(done, items.length);
  }
  tellRefused(refused);
  return added;
}

/** Post pasted texts to a class (one example each). */
export async function uploadTexts(cid, texts, source = "paste") {
  const added = [];
  const refused = [];
  for (let i = 0; i < texts.length; i += 200) {
    const answer = await post(cid, { json: { texts: texts.slice(i, i + 200), source } });
    added.push(...answer.added);
    refused.push(...answer.refused);
  }
  tellRefused(refused);
  return added;
}

async function post(cid, body) {
  try {
    return await api(`/api/classes/${cid}/examples`, { method: "POST", quiet: true, ...body });
  } catch (error) {
    // every item refused: the answer lists why, like a partial refusal does
    const detail = error instanceof ApiError && error.detail;
    const refused = detail && (detail.refused || (detail.error && detail.error.refused));
    if (error.code === "no_usable_examples" && refused) return { added: [], refused };
    showError(error.message);
    throw error;
  }
}

function tellRefused(refused) {
  if (!refused.length) return;
  const shown = refused.slice(0, 5).map((r) => `${r.name}: ${r.reason}`).join("; ");
  const more = refused.length > 5 ? ` (and ${refused.length - 5} more)` : "";
  showError(`${refused.length} not added — ${shown}${more}`);
}

function* batches(items) {
  let batch = [];
  let bytes = 0;
  for (const item of items) {
    if (batch.length && (batch.length >= MAX_FILES || bytes + item.blob.size > MAX_BYTES)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(item);
    bytes += item.blob.size;
  }
  if (batch.length) yield batch;
}

const hidden = (name) => name.startsWith(".");

/** Files from a file input (a folder picker gives every file below it). */
export function filesFromInput(input) {
  return [...input.files]
    .filter((f) => !hidden(f.name))
    .map((f) => ({ name: f.webkitRelativePath || f.name, blob: f }));
}

/** Files from a drop: plain files, and every file inside dropped folders. */
export async function filesFromDrop(dataTransfer) {
  const entries = [...dataTransfer.items]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((f) => ({ name: f.name, blob: f }));
  const out = [];
  for (const entry of entries) await walk(entry, out);
  return out;
}

async function walk(entry, out) {
  if (hidden(entry.name)) return;
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ name: entry.fullPath.replace(/^\//, ""), blob: file });
    return;
  }
  const reader = entry.createReader();
  // readEntries answers in pieces (100 at a time in Chromium) until it answers none
  for (;;) {
    const some = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!some.length) break;
    for (const child of some) await walk(child, out);
  }
}

/** Pasted text → examples: one per non-empty line, or per blank-line-separated paragraph. */
export function splitTexts(text, by) {
  const parts = by === "paragraph" ? text.split(/\n\s*\n/) : text.split(/\r?\n/);
  return parts.map((t) => t.trim()).filter(Boolean);
}
