// JSON over fetch for the game API (docs/game-api.md): same-origin cookies, Django's CSRF
// header on writes, and every failure surfaced as an ApiError carrying the server's message.

export class ApiError extends Error {
  // status 0 means the request never got an answer (offline, DNS, connection reset).
  constructor(status, message, body = null, retryAfterMs = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.retryAfterMs = retryAfterMs; // what the server's Retry-After asked for (503, 429), 0 if nothing
  }

  // Worth retrying: no answer, a server error, or "too many requests".
  get transient() {
    return this.status === 0 || this.status >= 500 || this.status === 429;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

// The cookie is the documented source; the page's {% csrf_token %} input is the fallback
// for deployments that make the cookie HttpOnly or keep the token in the session.
export function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return cookie("csrftoken") || (input ? input.value : "");
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: text.slice(0, 200) };
  }
}

export async function request(method, url, body = undefined, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, `network error: ${error.message}`);
  }
  const data = await readBody(response);
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(response.status, message, data, Number.isFinite(retryAfter) ? retryAfter * 1000 : 0);
  }
  return data;
}

export const getJSON = (url, options) => request("GET", url, undefined, options);
export const postJSON = (url, body, options) => request("POST", url, body, options);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... capped at 8 s.
export function backoffMs(attempt) {
  const base = Math.min(8000, 500 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

// Run call() until it succeeds, retrying transient failures for up to giveUpMs in a row.
export async function withRetry(call, { giveUpMs = 30000, onRetry = () => {} } = {}) {
  const started = Date.now();
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof ApiError) || !error.transient) throw error;
      if (Date.now() - started > giveUpMs) throw error;
      onRetry(error, attempt);
      // Never sooner than the server asked (a database restarting answers 503 + Retry-After).
      await sleep(Math.max(backoffMs(attempt), Math.min(error.retryAfterMs, 30000)));
    }
  }
}
