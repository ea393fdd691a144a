// Crash-safe bubble uploads. Every bubble gets a sequence number (its index in the round) and is
// kept in localStorage under the round's client_round_id until the round is submitted, so a
// reload or a lost connection loses nothing: batches go out with start_seq, network errors and
// 5xx are retried with backoff, and a 409 gap answer (next_seq) makes us resend from there.

import { ApiError, postJSON, withRetry } from "./api.js";

const ROUND_KEY = "clickme:round:";
const CURRENT_KEY = "clickme:current:";
const MAX_BATCH = 200; // the API's limit per request

// localStorage may be missing or full (privacy modes): play goes on, only reload-safety is lost.
function safely(action) {
  try {
    return action(window.localStorage);
  } catch {
    return null;
  }
}
const read = (key) => safely((storage) => JSON.parse(storage.getItem(key) ?? "null"));
const write = (key, value) => safely((storage) => storage.setItem(key, JSON.stringify(value)));
const remove = (key) => safely((storage) => storage.removeItem(key));

function uuid4() {
  if (window.crypto.randomUUID) return window.crypto.randomUUID();
  // randomUUID needs a secure context; plain-HTTP development hosts fall back to this.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Keys are scoped to "<experiment>:<username>", so that a browser shared by two participants
// (or a cleared cookie) never carries one participant's round into another's.

// The round in progress: the same id until that round is submitted.
export function currentRoundId(scope) {
  let id = read(CURRENT_KEY + scope);
  if (typeof id !== "string") {
    id = uuid4();
    write(CURRENT_KEY + scope, id);
  }
  return id;
}

// The server answered a start with another round of the session (one still being played, say
// from another tab): that one becomes the current round, and the id this page made up is dropped.
export function adoptRound(scope, id) {
  const previous = read(CURRENT_KEY + scope);
  if (typeof previous === "string" && previous !== id) remove(ROUND_KEY + previous);
  write(CURRENT_KEY + scope, id);
}

// Forget a submitted round: its queue and, if it is the current one, the pointer to it.
export function forgetRound(scope, id) {
  remove(ROUND_KEY + id);
  if (read(CURRENT_KEY + scope) === id) remove(CURRENT_KEY + scope);
}

// The play session is kept across reloads (until its rounds are done, at most SESSION_TTL_MS),
// so that a reload goes on counting rounds in the same session instead of starting over.
const SESSION_KEY = "clickme:session:";
const SESSION_TTL_MS = 6 * 3600 * 1000;

export function savedSession(scope) {
  const saved = read(SESSION_KEY + scope);
  const fresh = saved && Number.isInteger(saved.id) && Date.now() - saved.at < SESSION_TTL_MS;
  return fresh ? saved.id : null;
}

export function saveSession(scope, id) {
  write(SESSION_KEY + scope, { id, at: Date.now() });
}

export function forgetSession(scope) {
  remove(SESSION_KEY + scope);
}

export function createUploader({ clicksUrl, clientRoundId, onRetry = () => {} }) {
  const saved = read(ROUND_KEY + clientRoundId) || {};
  const clicks = Array.isArray(saved.clicks) ? saved.clicks : [];
  let acked = Number.isInteger(saved.acked) ? saved.acked : 0;
  let outcome = saved.outcome || null;
  let failure = null; // a permanent error: nothing more is sent for this round
  let running = null;
  let target = 0; // upload up to here: what was queued when flush() was last called

  const persist = () => write(ROUND_KEY + clientRoundId, { clicks, acked, outcome });

  async function send(giveUpMs) {
    let conflicts = 0;
    while (acked < target && failure === null) {
      const start = acked;
      const batch = clicks.slice(start, start + MAX_BATCH);
      try {
        const body = { start_seq: start, clicks: batch };
        const answer = await withRetry(() => postJSON(clicksUrl, body), { giveUpMs, onRetry });
        acked = Math.min(clicks.length, answer.next_seq ?? start + batch.length);
        if (acked <= start) throw new ApiError(200, `the server stored nothing from ${start}`, answer);
      } catch (error) {
        const nextSeq = error instanceof ApiError ? error.body?.next_seq : undefined;
        if (error.status === 409 && Number.isInteger(nextSeq) && conflicts < 3) {
          conflicts += 1; // a gap or an overlap: the server says where to resume
          acked = Math.min(Math.max(nextSeq, 0), clicks.length);
          continue;
        }
        if (!(error instanceof ApiError) || !error.transient) failure = error;
        throw error;
      } finally {
        persist();
      }
    }
  }

  return {
    get stored() {
      return acked; // bubbles the server has confirmed
    },
    get pending() {
      return clicks.length - acked;
    },
    get total() {
      return clicks.length;
    },
    get failure() {
      return failure;
    },
    get outcome() {
      return outcome;
    },
    add(bubble) {
      clicks.push(bubble);
      persist();
    },
    // The server's next_seq is authoritative when resuming after a reload (beyond what this
    // browser kept, there is nothing it could resend).
    resumeAt(nextSeq) {
      acked = Math.min(nextSeq, clicks.length);
      persist();
    },
    setOutcome(value) {
      outcome = value;
      persist();
    },
    // The bubbles not yet confirmed, as one batch for a guess to carry ({start_seq, clicks}), or
    // null when there are none, too many for one request, an upload is under way, or uploads
    // failed for good: then the caller flushes first (docs/game-api.md, "API").
    pendingBatch() {
      const pending = clicks.length - acked;
      if (pending <= 0 || pending > MAX_BATCH || running !== null || failure !== null) return null;
      return { start_seq: acked, clicks: clicks.slice(acked) };
    },
    // The server's next_seq after a guess that carried a batch: those bubbles are stored.
    acknowledge(nextSeq) {
      if (!Number.isInteger(nextSeq)) return;
      acked = Math.max(acked, Math.min(nextSeq, clicks.length));
      persist();
    },
    // Upload everything queued so far; resolves when stored, rejects with the last error. Bubbles
    // added meanwhile wait for the next flush, so a slow network never keeps a guess waiting
    // behind an upload that chases the painting.
    flush({ giveUpMs = 15000 } = {}) {
      target = Math.max(target, clicks.length);
      if (running === null) {
        running = send(giveUpMs).finally(() => {
          running = null;
        });
      }
      return running;
    },
  };
}
