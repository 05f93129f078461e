// Every request the pages make to the server: where it is, the presenter's token, JSON in and
// out, and every refusal turned into one sentence a person can act on.

const TOKEN_KEY = "backprop-live-token";
// This module is served from <root>/static/js/: the API lives beside the pages at <root>.
const ROOT = new URL("../../", import.meta.url);

let token = null;

/**
 * An answer the server refused, or no answer at all (`status` 0). Over a rate limit (429),
 * `retryAfter` is the seconds the server asks to wait (its Retry-After), else null.
 */
export class ApiError extends Error {
  constructor(message, status, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }

  get tooFast() {
    return this.status === 429;
  }
}

/**
 * The presenter token: taken once from ?token= in the address, kept for this tab in
 * sessionStorage, and removed from the address bar so it is not projected or bookmarked.
 * Returns it, or null on a viewer's page.
 */
/** The presenter token this tab holds (see takeToken), or null. */
export function presenterToken() {
  return token;
}

export function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  return token;
}

/** The absolute URL of a server path such as "/api/run" or "/ws". */
export function serverUrl(path) {
  return new URL(path.replace(/^\//, ""), ROOT);
}

/**
 * One request; resolves to the answer's JSON. `body` is sent as JSON, or as it is when it is a
 * Blob (an image); `presenter` adds the token. Rejects with an ApiError whose message says
 * what went wrong.
 */
async function request(method, path, { body, presenter = false } = {}) {
  return (await answer(method, path, { body, presenter })).json();
}

/** The server's answer to one request, if it is not a refusal (see `request`). */
async function answer(method, path, { body, presenter = false } = {}) {
  const headers = {};
  if (presenter && token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined && !(body instanceof Blob)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(serverUrl(path), { method, headers, body });
  } catch (error) {
    throw new ApiError(`could not reach the server: ${error.message}`, 0);
  }
  if (!response.ok) throw new ApiError(await refusal(response), response.status, retryAfter(response));
  return response;
}

/** Save a file only the presenter may fetch (an export) under `filename`. */
export async function download(path, filename) {
  const blob = await (await answer("GET", path, { presenter: true })).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** Whole seconds from a Retry-After header (it may also be a date), or null without one. */
function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(1, Math.ceil(seconds)) : null;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, { body });
/** A request only the presenter may make (the server checks the token on every one). */
export const control = (method, path, body) => request(method, path, { body, presenter: true });

/** The server's refusal as one line: "lr: must be above 0", "the server refused …". */
async function refusal(response) {
  if (response.status === 401 || response.status === 403) {
    return `the server refused the presenter token (${response.status}): open the presenter URL again`;
  }
  try {
    const body = await response.json();
    if (typeof body.message === "string") return body.message;
    const detail = body.detail ?? body;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
    }
    return JSON.stringify(detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}
