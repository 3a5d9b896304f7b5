// The console's API client: the public REST API, as any client would call it (removebgvideo dialect,
// uploads, usage). The key lives in this tab's sessionStorage and travels only as the X-Api-Key header;
// requests never carry cookies (credentials: "omit").

const KEY_STORAGE = "videobg.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function authHeaders(extra = {}) {
  const key = getKey();
  return key ? { ...extra, "X-Api-Key": key } : { ...extra };
}

// Both error shapes the API answers with: removebgvideo's {"success": false, "error": {code, message}}
// and the house shape {"error": message, "error_code": code} (uploads, usage).
export function errorFrom(status, body) {
  if (body && body.error && typeof body.error === "object") {
    return new ApiError(status, body.error.code || `http_${status}`, body.error.message || "");
  }
  if (body && body.error_code) return new ApiError(status, body.error_code, String(body.error || ""));
  return new ApiError(status, `http_${status}`, `The gateway answered HTTP ${status}`);
}

async function call(method, path, body) {
  const init = {
    method,
    headers: authHeaders(body === undefined ? {} : { "Content-Type": "application/json" }),
    credentials: "omit",
    cache: "no-store",
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network_error", `The gateway did not answer (${e.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw errorFrom(response.status, data);
  return data;
}

export const createJob = (params) => call("POST", "/v1/jobs", params);
export const getJob = (id) => call("GET", `/v1/jobs/${encodeURIComponent(id)}`);
export const cancelJob = (id) => call("DELETE", `/v1/jobs/${encodeURIComponent(id)}`);
export const usage = () => call("GET", "/v1/usage");

export function listJobs({ limit = 10, cursor = "" } = {}) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set("cursor", cursor);
  return call("GET", `/v1/jobs?${q}`);
}

// POST /v1/uploads through XMLHttpRequest: fetch() cannot report upload progress.
// onProgress(fraction 0..1). Resolves to {asset_id, url, asset_url, size, content_type}.
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/uploads");
    xhr.withCredentials = false;
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data) {
        onProgress(1);
        resolve(data);
      } else reject(errorFrom(xhr.status, data));
    };
    xhr.onerror = () => reject(new ApiError(0, "network_error", "The upload was interrupted"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// The id of an upload of ours: asset://<id>, or this gateway's /v1/uploads/<id>/content URL; else "".
export function uploadId(url) {
  if (url.startsWith("asset://")) return url.slice("asset://".length);
  try {
    const u = new URL(url, location.href);
    const m = u.origin === location.origin && u.pathname.match(/^\/v1\/uploads\/([^/]+)\/content$/);
    return m ? decodeURIComponent(m[1]) : "";
  } catch {
    return "";
  }
}

// An upload's bytes as a blob: URL (GET /v1/uploads/{id}/content needs the key header, which a
// <video src> cannot send).
export async function uploadBlobUrl(id) {
  let response;
  try {
    response = await fetch(`/v1/uploads/${encodeURIComponent(id)}/content`, {
      headers: authHeaders(),
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, "network_error", `The gateway did not answer (${e.message})`);
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw errorFrom(response.status, data);
  }
  return URL.createObjectURL(await response.blob());
}
