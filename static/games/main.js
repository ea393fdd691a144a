// The play page: wires the canvas, the pointer, the round's state machine, uploads and the API
// (docs/game-api.md). Initial data comes from <script id="game-config"> (Django json_script).

import { postJSON } from "./api.js";
import { createCanvasView, loadImage } from "./canvas.js";
import { attachPointer } from "./input.js";
import { PLAYING, createRound } from "./round.js";
import { createSessionClient } from "./session.js";
import { createUi } from "./ui.js";
import { createUploader } from "./uploads.js";

const config = JSON.parse(document.getElementById("game-config").textContent);
const ui = createUi();
const view = createCanvasView(document.getElementById("game-canvas"));
const server = createSessionClient(config);
const game = { round: null, limit: config.settings.time_limit_ms };

function fail(error) {
  ui.status(`${error.message}. Reload the page to try again.`, "error");
  document.getElementById("results-link").hidden = false;
}

async function refreshScores() {
  try {
    ui.setScores(await server.summary());
  } catch (error) {
    ui.status(`Could not load the scores: ${error.message}`, "error");
  }
}

async function endRound(id, uploader, outcome, state, title = null) {
  ui.setSkipEnabled(false);
  ui.showEnd(outcome, title);
  // The server says when the session is complete (rounds with work in them, not rounds started).
  let last = false;
  try {
    const submitted = await server.closeRound(id, uploader, outcome, (text) => ui.status(text, "error"));
    last = submitted.session.complete;
    const scored = await server.awaitPoints(id, submitted);
    ui.showPoints(scored.points);
    if (scored.status === "scored") ui.setOutcome(scored.outcome);
    const counted = scored.session.rounds_done >= scored.round_number;
    ui.showAnswer(state.label, scored.partner_guess, counted, state.settings.query_every);
  } catch (error) {
    ui.status(`The round could not be submitted (${error.message}); it will be retried.`, "error");
  }
  await refreshScores();
  ui.el.next.onclick = last ? () => server.finish() : () => nextRound().catch(fail);
  ui.enableNext(last ? "See results" : "Next");
}

// Every query_every bubbles: ask the partner, the new bubbles riding along with the guess (one
// request; the server stores them first). One guess at a time; if painting outruns the partner,
// the newest query point is asked next and the skipped ones are not.
function partnerQueries(id, uploader, ctl) {
  let busy = false;
  let wanted = 0;
  async function ask(count) {
    const batch = uploader.pendingBatch();
    if (batch !== null) {
      try {
        const answer = await postJSON(server.roundUrl(id, "guess/"), { bubble_count: count, ...batch });
        uploader.acknowledge(answer.next_seq);
        return answer;
      } catch (error) {
        uploader.acknowledge(error.body?.next_seq); // a 503 still stored the bubbles
        // A gap or a clash (409): the uploader resends from where the server is; a refused batch
        // (400): the uploader records the failure as a plain upload would, and says so.
        if (error.status !== 409 && error.status !== 400) throw error;
      }
    }
    await uploader.flush(); // nothing to carry, more than one request holds, or the batch was refused
    return postJSON(server.roundUrl(id, "guess/"), { bubble_count: count });
  }
  return async function query(count) {
    wanted = Math.max(wanted, count);
    if (busy) return;
    busy = true;
    try {
      const answer = await ask(count);
      if (game.round === ctl) ui.showGuesses(answer.guesses, answer.recognised, answer.bubble_count);
      if (answer.recognised && ctl.state === PLAYING) ctl.end("correct");
      // Late: the clock ran out while the partner looked at bubbles painted in time. Those
      // bubbles count (scoring goes by their timestamps), so the page says so at once.
      else if (answer.recognised && game.round === ctl && ui.el.end.dataset.outcome === "wrong") ui.setOutcome("correct");
    } catch (error) {
      const text = error.status === 503 ? "Your partner is not answering right now; keep painting." : error.message;
      if (game.round === ctl) ui.partnerNote(text);
    } finally {
      busy = false;
    }
    if (wanted > count && ctl.state === PLAYING) query(wanted);
  };
}

function animateTimer(ctl) {
  const frame = () => {
    if (game.round !== ctl) return;
    ui.setTimer(1 - ctl.elapsed() / game.limit);
    if (ctl.state === PLAYING) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

async function play(id, state) {
  const uploader = createUploader({
    clicksUrl: server.roundUrl(id, "clicks/"),
    clientRoundId: id,
    onRetry: (error) => ui.status(`Connection trouble (${error.message}); retrying…`, "warning"),
  });
  ui.setRound(state.round_number, state.rounds_total);
  ui.setTarget(state.label);
  if (state.next_seq > 0 || uploader.total > 0) {
    // Interrupted by a reload or a crash: its clock cannot be resumed, so close it cleanly.
    uploader.resumeAt(state.next_seq);
    ui.status("Your interrupted round was saved.");
    return endRound(id, uploader, uploader.outcome || "wrong", state, "Round interrupted");
  }
  const { settings } = state;
  view.setImage(await loadImage(state.image_url), settings.bubble_size);
  let query = null;
  const ctl = createRound({
    settings,
    onBubble(bubble, count) {
      view.reveal(bubble);
      uploader.add(bubble);
      if (count % settings.query_every === 0) query(count);
    },
    onEnd: (outcome) => endRound(id, uploader, outcome, state),
  });
  query = partnerQueries(id, uploader, ctl);
  game.round = ctl;
  game.limit = settings.time_limit_ms;
  ui.showHint("Press and drag on the picture to start");
  ui.setTimer(1);
  ui.setSkipEnabled(true);
  ui.el.skip.onclick = () => ctl.end("skipped");
}

async function nextRound() {
  const fromNext = document.activeElement === ui.el.next;
  ui.hideEnd();
  ui.clearGuesses("Your partner will guess as you paint.");
  ui.setSkipEnabled(false);
  view.clear();
  game.round = null;
  const started = await server.startRound();
  if (started === null) return server.finish();
  const { id, state } = started;
  if (state.status !== "playing") {
    server.forgetRound(id); // submitted just before a reload
    return state.session.complete ? server.finish() : nextRound();
  }
  ui.status("");
  if (fromNext) document.getElementById("stage").focus({ preventScroll: true }); // keep focus in the game
  return play(id, state);
}

attachPointer(view.canvas, view.toImagePoint, {
  onDown(point) {
    const ctl = game.round;
    if (!ctl) return;
    const starting = ctl.state !== PLAYING;
    ctl.pointerDown(point);
    if (starting && ctl.state === PLAYING) {
      ui.showHint(null);
      animateTimer(ctl);
    }
  },
  onMove: (point) => game.round?.pointerMove(point),
  onUp: () => game.round?.pointerUp(),
});

refreshScores();
server.open(view.cssSize()).then(nextRound).catch(fail);
