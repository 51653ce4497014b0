// Every call to the studio's API: the CSRF header, the server's error shape, the banner.

const csrf = document.querySelector('meta[name="studio-csrf"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, code, message, detail = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

const banner = document.getElementById("banner");
const bannerText = document.getElementById("banner-text");
document.getElementById("banner-close").addEventListener("click", clearError);

/** Show a message in the red banner at the top (the server's own words when it sent some). */
export function showError(message) {
  bannerText.textContent = message;
  banner.hidden = false;
}

export function clearError() {
  banner.hidden = true;
  bannerText.textContent = "";
}

/**
 * Call the API. `json` is sent as a JSON body, `form` as multipart; the answer is parsed JSON
 * (null for 204). A failure shows its message in the banner (unless `quiet`) and throws ApiError.
 */
export async function api(path, { method = "GET", json, form, quiet = false } = {}) {
  const headers = { "X-Studio-CSRF": csrf, Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary itself
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch {
    return fail(new ApiError(0, "network",
      "The studio server cannot be reached: is `transferkit studio` still running?"), quiet);
  }
  if (response.status === 204) return null;
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const data = isJson ? await response.json() : await response.text();
  if (response.ok) return data;
  const error = (isJson && data && data.error) || {};
  let message = error.message || `${response.status} ${response.statusText}`;
  if (response.status === 401) {
    message = "This studio asks for its token: open the address printed by `transferkit studio`.";
  }
  return fail(new ApiError(response.status, error.code || "http", message, data), quiet);
}

function fail(error, quiet) {
  if (!quiet) showError(error.message);
  throw error;
}

/** Run an async UI action; its ApiError is already in the banner, anything else goes there too. */
export async function guarded(action) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError)) showError(String(error.message || error));
    return undefined;
  }
}
