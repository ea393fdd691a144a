"""The browser's painting rule (static/games/round.js) keeps to docs/game-api.md, run under node --test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROUND_JS = Path(__file__).resolve().parents[2] / "static" / "games" / "round.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")

TESTS = """
import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { createPainter, createRound, stepTowards } from "%(round)s";

const INTERVAL = 50, MAX_STEP = 7, LIMIT = 7000;
const SETTINGS = { bubble_interval_ms: INTERVAL, bubble_max_step: MAX_STEP, time_limit_ms: LIMIT, query_every: 10 };

function random(seed) {  // mulberry32: the same "pointer" on every run
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function assertRule(bubbles) {
  assert.equal(bubbles[0][2], 0, "the first bubble is at t = 0");
  for (const [x, y, t] of bubbles) {
    assert.ok([x, y, t].every(Number.isInteger), `integers: ${[x, y, t]}`);
    assert.ok(x >= 0 && x < 256 && y >= 0 && y < 256, `inside the image: ${[x, y]}`);
    assert.ok(t <= LIMIT, `within the time limit: ${t}`);
  }
  for (let i = 1; i < bubbles.length; i += 1) {
    const [px, py, pt] = bubbles[i - 1];
    const [x, y, t] = bubbles[i];
    assert.ok(t - pt >= INTERVAL, `bubble ${i}: ${t - pt} ms after the previous one`);
    assert.ok(Math.hypot(x - px, y - py) <= MAX_STEP, `bubble ${i}: ${Math.hypot(x - px, y - py)} px away`);
  }
  assert.ok(bubbles.length <= LIMIT / INTERVAL + 1);
}

test("a jittery pointer path yields bubbles at least an interval and at most a step apart", () => {
  const rand = random(7);
  const painter = createPainter({ intervalMs: INTERVAL, maxStep: MAX_STEP });
  painter.down([20, 30]);
  let t = 0;
  while (t < LIMIT) {
    t += 1 + Math.floor(rand() * 23);  // irregular timer ticks
    const angle = t / 400;
    const jump = rand() < 0.02 ? 120 : 0;  // the pointer sometimes teleports
    painter.move([Math.round(128 + 100 * Math.cos(angle)) - jump, Math.round(128 + 90 * Math.sin(2 * angle))]
      .map((v) => Math.min(255, Math.max(0, v))));
    if (rand() < 0.01) painter.up(); else if (rand() < 0.05) painter.down([200, 200]);
    painter.tick(Math.min(t, LIMIT));
  }
  assert.deepEqual(painter.bubbles[0], [20, 30, 0]);
  assert.ok(painter.bubbles.length > 60, `only ${painter.bubbles.length} bubbles`);
  assertRule(painter.bubbles);
});

test("the trail reaches a still pointer, then stops adding bubbles; lifting pauses it", () => {
  const painter = createPainter({ intervalMs: INTERVAL, maxStep: MAX_STEP });
  painter.down([0, 0]);
  painter.move([30, 40]);  // 50 px away: 8 steps of at most 7 px
  for (let t = 50; t <= 1000; t += 50) painter.tick(t);
  assert.deepEqual(painter.bubbles.at(-1).slice(0, 2), [30, 40]);
  assert.equal(painter.bubbles.length, 9);
  painter.up();
  painter.move([100, 100]);
  assert.equal(painter.tick(1100), null);
  assertRule(painter.bubbles);
  assert.equal(stepTowards([5, 5], [5, 5], 7), null);
  assert.deepEqual(stepTowards([0, 0], [3, 4], 7), [3, 4]);
});

test("a round goes idle → playing → submitting → done and times out at the limit", () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  let clock = 1000;
  const ended = [];
  const seen = [];
  const round = createRound({
    settings: SETTINGS, now: () => clock, onBubble: (bubble, count) => seen.push([bubble, count]),
    onEnd: (outcome) => ended.push(outcome),
  });
  assert.equal(round.state, "idle");
  round.pointerDown([100, 100]);
  assert.equal(round.state, "playing");
  for (let ms = 0; ms < LIMIT + 200; ms += 1) {
    round.pointerMove([100 + Math.round(80 * Math.sin(ms / 300)), 100 + Math.round(ms / 60)]);
    clock += 1;
    mock.timers.tick(1);
  }
  assert.deepEqual(ended, ["wrong"]);
  assert.equal(round.state, "submitting");
  assert.deepEqual(seen.map(([, count]) => count), seen.map((_, i) => i + 1));
  assert.ok(seen.length >= 130, `only ${seen.length} bubbles in 7 s`);
  assertRule(round.bubbles);
  round.done();
  assert.equal(round.state, "done");
  assert.equal(round.end("skipped"), false, "a finished round cannot end twice");
  mock.timers.reset();
});

test("a round can be skipped before painting starts", () => {
  const ended = [];
  const round = createRound({ settings: SETTINGS, onBubble: () => {}, onEnd: (o) => ended.push(o) });
  assert.equal(round.end("skipped"), true);
  assert.deepEqual(ended, ["skipped"]);
  round.pointerDown([10, 10]);
  assert.equal(round.bubbles.length, 0);
});
"""


def test_painting_rule_in_node(tmp_path: Path) -> None:
    script = tmp_path / "painting.test.mjs"
    script.write_text(TESTS % {"round": ROUND_JS.as_uri()})
    completed = subprocess.run(
        ["node", "--test", "--test-reporter=tap", str(script)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
