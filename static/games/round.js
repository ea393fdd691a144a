// One round of play: the painting rule of docs/game-api.md ("Painting") and the state machine
// idle → playing → submitting → done. No DOM here, so node --test can drive it with a fake clock.

export const IDLE = "idle";
export const PLAYING = "playing";
export const SUBMITTING = "submitting";
export const DONE = "done";

// The integer point at most maxStep px (Euclidean) from prev on the line towards target,
// or null when the trail already sits on the target's pixel.
export function stepTowards(prev, target, maxStep) {
  const dx = target[0] - prev[0];
  const dy = target[1] - prev[1];
  const distance = Math.hypot(dx, dy);
  if (distance < 0.5) return null;
  // Rounding to pixels can lengthen a step by up to ~0.7 px: shorten it until it fits.
  for (let step = Math.min(distance, maxStep); step > 0; step -= 0.25) {
    const x = Math.round(prev[0] + (dx * step) / distance);
    const y = Math.round(prev[1] + (dy * step) / distance);
    const moved = Math.hypot(x - prev[0], y - prev[1]);
    if (moved > maxStep) continue;
    return moved === 0 ? null : [x, y];
  }
  return null;
}

// The bubble trail: the first bubble where the pointer first goes down (t = 0), then one every
// intervalMs, bounded by maxStep, towards wherever the pointer is while it is down.
export function createPainter({ intervalMs, maxStep }) {
  const bubbles = [];
  let pointer = null;
  let down = false;
  return {
    bubbles,
    get isDown() {
      return down;
    },
    down(point) {
      pointer = point;
      down = true;
      if (bubbles.length > 0) return null;
      const first = [point[0], point[1], 0];
      bubbles.push(first);
      return first;
    },
    move(point) {
      if (down) pointer = point;
    },
    up() {
      down = false;
    },
    // Time tMs (integer ms since the first pointer down) has come: the new bubble, or null.
    tick(tMs) {
      const last = bubbles[bubbles.length - 1];
      if (!down || !last || tMs - last[2] < intervalMs) return null;
      const next = stepTowards(last, pointer, maxStep);
      if (next === null) return null;
      const bubble = [next[0], next[1], tMs];
      bubbles.push(bubble);
      return bubble;
    },
    // When (t ms) the next bubble may be placed.
    nextDue() {
      const last = bubbles[bubbles.length - 1];
      return last ? last[2] + intervalMs : 0;
    },
  };
}

// The state of one round, owned here. Callbacks: onBubble(bubble, count) for every bubble,
// onEnd(outcome) once when play stops ("correct" | "wrong" | "skipped").
export function createRound({ settings, onBubble, onEnd, now = () => performance.now() }) {
  const painter = createPainter({
    intervalMs: settings.bubble_interval_ms,
    maxStep: settings.bubble_max_step,
  });
  const limit = settings.time_limit_ms;
  const round = { state: IDLE, outcome: null, startedAt: null, timer: null, painter };

  const elapsed = () => (round.startedAt === null ? 0 : Math.floor(now() - round.startedAt));

  function schedule() {
    const t = elapsed();
    const due = painter.isDown ? Math.min(painter.nextDue(), limit) : limit;
    round.timer = setTimeout(tick, Math.max(1, due - t));
  }

  function tick() {
    round.timer = null;
    if (round.state !== PLAYING) return;
    const t = elapsed();
    const bubble = t <= limit ? painter.tick(t) : null;
    if (bubble) onBubble(bubble, painter.bubbles.length);
    if (round.state !== PLAYING) return; // onBubble may have ended the round
    if (t >= limit) end("wrong");
    else schedule();
  }

  function end(outcome) {
    if (round.state !== PLAYING && round.state !== IDLE) return false;
    round.state = SUBMITTING;
    round.outcome = outcome;
    clearTimeout(round.timer);
    painter.up();
    onEnd(outcome);
    return true;
  }

  return {
    round,
    elapsed,
    get state() {
      return round.state;
    },
    get bubbles() {
      return painter.bubbles;
    },
    pointerDown(point) {
      if (round.state === IDLE) {
        round.state = PLAYING;
        round.startedAt = now();
        const first = painter.down(point);
        onBubble(first, painter.bubbles.length);
      } else if (round.state === PLAYING) {
        painter.down(point);
      } else {
        return;
      }
      clearTimeout(round.timer);
      if (round.state === PLAYING) schedule();
    },
    pointerMove(point) {
      if (round.state === PLAYING) painter.move(point);
    },
    pointerUp() {
      painter.up();
    },
    // End play; false when the round had already ended.
    end,
    done() {
      round.state = DONE;
    },
  };
}
