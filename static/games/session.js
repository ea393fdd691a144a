// The server side of a play session, as the play page sees it: open (or reuse) the session,
// start or resume a round, close it (upload the rest, submit), and wait briefly for its points.

import { ApiError, getJSON, postJSON, sleep, withRetry } from "./api.js";
import * as store from "./uploads.js";

export function createSessionClient(config) {
  const scope = `${config.experiment}:${config.username}`;
  const roundUrl = (id, action = "") => `${config.urls.rounds}${id}/${action}`;
  let sessionId = null;
  let lastCanvasSize = { width: 0, height: 0 };

  // The session of this browser (kept across reloads), or a new one recording the device.
  async function open(canvasSize, { fresh = false } = {}) {
    lastCanvasSize = canvasSize;
    sessionId = fresh ? null : store.savedSession(scope);
    if (sessionId !== null) return sessionId;
    const device = {
      screen_width: window.screen.width,
      screen_height: window.screen.height,
      canvas_width: canvasSize.width,
      canvas_height: canvasSize.height,
      device_pixel_ratio: window.devicePixelRatio || 1,
      pointer_type: window.matchMedia("(pointer: coarse)").matches ? "touch" : "mouse",
    };
    const answer = await withRetry(() => postJSON(config.urls.session, device));
    sessionId = answer.session_id;
    store.saveSession(scope, sessionId);
    return sessionId;
  }

  return {
    roundUrl,
    open,
    summary: () => getJSON(config.urls.summary),
    // The current round's state (new, or the one a reload left), or null when all are played.
    async startRound(retried = false) {
      const id = store.currentRoundId(scope);
      try {
        const body = { session_id: sessionId, client_round_id: id };
        const state = await withRetry(() => postJSON(config.urls.rounds, body));
        if (state.client_round_id !== id) store.adoptRound(scope, state.client_round_id);
        return { id: state.client_round_id, state };
      } catch (error) {
        if (error.status === 409) return null; // the session is over (complete, ended or out of pictures)
        if (error.status !== 404 || retried) throw error;
        await open(lastCanvasSize, { fresh: true }); // a stale saved session: start a new one
        return this.startRound(true);
      }
    },
    forgetRound: (id) => store.forgetRound(scope, id),
    finish() {
      store.forgetSession(scope);
      window.location.assign(config.urls.results);
    },
    // Upload what is left, then submit; the server's next_seq settles any disagreement on the
    // count. Calls warn(message) when some bubbles could not be stored.
    async closeRound(id, uploader, outcome, warn) {
      uploader.setOutcome(outcome);
      try {
        await uploader.flush({ giveUpMs: 20000 });
      } catch (error) {
        warn(`Some of your painting could not be saved (${error.message}).`);
      }
      let count = uploader.stored;
      for (let attempt = 0; ; attempt += 1) {
        try {
          const body = { outcome, bubble_count: count };
          const state = await withRetry(() => postJSON(roundUrl(id, "submit/"), body), { giveUpMs: 20000 });
          store.forgetRound(scope, id);
          return state;
        } catch (error) {
          const nextSeq = error.body?.next_seq;
          if (error.status !== 409 || !Number.isInteger(nextSeq) || attempt >= 2) throw error;
          count = nextSeq;
        }
      }
    },
    // The authoritative points come from the worker: look for a few seconds, then give up.
    async awaitPoints(id, state, waitMs = 8000) {
      const until = Date.now() + waitMs;
      while (state.points === null && Date.now() < until) {
        await sleep(700);
        try {
          state = await getJSON(roundUrl(id));
        } catch (error) {
          if (!(error instanceof ApiError) || !error.transient) throw error;
        }
      }
      return state;
    },
  };
}
