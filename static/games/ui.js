// The play page's DOM outside the canvas: counters, timer bar, the partner's guesses, the
// round-end overlay and status messages. Element ids are those of templates/games/play.html.

const OUTCOME_TITLES = {
  correct: "Recognised!",
  wrong: "Time's up",
  skipped: "Skipped",
};

const percent = (p) => `${Math.round(p * 100)}%`;

export function createUi(doc = document) {
  const $ = (id) => doc.getElementById(id);
  const el = {
    round: $("round-counter"),
    score: $("score"),
    highScore: $("high-score"),
    timer: $("timer"),
    timerFill: $("timer-fill"),
    hint: $("stage-hint"),
    guesses: $("guesses"),
    partnerNote: $("partner-note"),
    end: $("round-end"),
    endTitle: $("round-end-title"),
    endPoints: $("round-end-points"),
    endAnswer: $("round-end-answer"),
    target: $("target-label"),
    skipWhy: $("skip-why"),
    next: $("next-button"),
    skip: $("skip-button"),
    status: $("game-status"),
  };

  return {
    el,
    setRound(number, total) {
      el.round.textContent = `${number} / ${total}`;
    },
    // The class to reveal, shown before and during the round (and named by the skip button's note).
    setTarget(label) {
      el.target.textContent = label;
      el.skipWhy.textContent = `Is “${label}” a strange label for this picture, or is the picture poor? Skip it.`;
    },
    // After scoring: the answer, the partner's best guess, and whether the round counted.
    showAnswer(label, partnerGuess, counted, minBubbles) {
      const parts = [`It was: ${label}.`];
      if (partnerGuess) parts.push(`Your partner's best guess: ${partnerGuess.label} (${percent(partnerGuess.probability)}).`);
      if (!counted) parts.push(`This picture does not count towards your rounds: paint at least ${minBubbles} squares.`);
      el.endAnswer.textContent = parts.join(" ");
    },
    setScores({ score, high_score: highScore }) {
      el.score.textContent = String(score);
      el.highScore.textContent = String(highScore);
    },
    // fraction of the time left, 1 → 0
    setTimer(fraction) {
      const left = Math.max(0, Math.min(1, fraction));
      el.timerFill.style.transform = `scaleX(${left})`;
      el.timerFill.classList.toggle("low", left < 0.25);
      el.timer.setAttribute("aria-valuenow", String(Math.round(left * 100)));
    },
    showHint(text) {
      el.hint.hidden = !text;
      if (text) el.hint.textContent = text;
    },
    showGuesses(guesses, recognised, bubbleCount) {
      const items = guesses.map(({ label, probability }, index) => {
        const item = doc.createElement("li");
        item.className = index === 0 && recognised ? "guess hit" : "guess";
        const name = doc.createElement("span");
        name.className = "guess-label";
        name.textContent = label;
        const bar = doc.createElement("span");
        bar.className = "guess-bar";
        const fill = doc.createElement("span");
        fill.style.width = percent(probability);
        bar.append(fill);
        const value = doc.createElement("span");
        value.className = "guess-value";
        value.textContent = percent(probability);
        item.append(name, bar, value);
        return item;
      });
      el.guesses.replaceChildren(...items);
      el.partnerNote.textContent = recognised
        ? `Your partner got it after ${bubbleCount} squares!`
        : `Your partner's guess after ${bubbleCount} squares.`;
    },
    clearGuesses(note) {
      el.guesses.replaceChildren();
      el.partnerNote.textContent = note;
    },
    partnerNote(text) {
      el.partnerNote.textContent = text;
    },
    showEnd(outcome, title = null) {
      el.endTitle.textContent = title || OUTCOME_TITLES[outcome] || "Round over";
      el.end.dataset.outcome = outcome;
      el.endPoints.textContent = "scoring…";
      el.endAnswer.textContent = "";
      el.next.disabled = true;
      el.end.hidden = false;
    },
    // The authoritative outcome, once scored: a guess that arrived after the clock ran out can
    // still have recognised the picture from bubbles painted in time, and the score says so.
    setOutcome(outcome) {
      if (!OUTCOME_TITLES[outcome] || el.end.dataset.outcome === outcome) return;
      el.endTitle.textContent = OUTCOME_TITLES[outcome];
      el.end.dataset.outcome = outcome;
    },
    showPoints(points) {
      el.endPoints.textContent = points === null ? "scoring…" : `+${points} points`;
    },
    enableNext(label) {
      el.next.textContent = label;
      el.next.disabled = false;
      el.next.focus();
    },
    hideEnd() {
      el.end.hidden = true;
    },
    setSkipEnabled(enabled) {
      el.skip.disabled = !enabled;
    },
    status(message, kind = "info") {
      el.status.textContent = message;
      el.status.dataset.kind = kind;
    },
  };
}
