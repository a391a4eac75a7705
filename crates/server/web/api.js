// The JSON API, as the pages use it: the session cookie and its CSRF token. Errors are
// problem documents; `ApiError.message` is their human `detail`.

let csrf = "";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `The server answered ${status}.`);
    this.status = status;
    this.code = problem && problem.code;
    this.errors = (problem && problem.errors) || [];
  }
}

export function setCsrf(token) {
  csrf = token || "";
}

export async function api(method, path, body, options = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (typeof body === "string") {
    headers["Content-Type"] = options.contentType || "application/json";
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    throw new ApiError(0, { detail: "The server could not be reached. Check your connection and try again." });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = { detail: `The server answered ${response.status} with something that is not JSON.` };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const ws = (slug) => `/api/workspaces/${encodeURIComponent(slug)}`;
