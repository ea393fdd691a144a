"""Crash-safe uploads (static/games/uploads.js) against a scripted server, run under node --test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UPLOADS_JS = Path(__file__).resolve().parents[2] / "static" / "games" / "uploads.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")

TESTS = """
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

const saved = new Map();
globalThis.window = globalThis;
globalThis.localStorage = {
  getItem: (key) => (saved.has(key) ? saved.get(key) : null),
  setItem: (key, value) => saved.set(key, String(value)),
  removeItem: (key) => saved.delete(key),
};
globalThis.document = { cookie: "other=1; csrftoken=tok%%3D1", querySelector: () => null };

const { createUploader, currentRoundId, forgetRound } = await import("%(uploads)s");

// A server that stores bubbles like games/services/rounds.py, after scripted failures.
function fakeServer({ failures = [], stored = 0 } = {}) {
  const server = { stored, requests: [] };
  globalThis.fetch = async (url, init) => {
    const body = JSON.parse(init.body);
    server.requests.push({ url, body, csrf: init.headers["X-CSRFToken"] });
    const failure = failures.shift();
    if (failure === "network") throw new TypeError("Failed to fetch");
    if (failure) return new Response(JSON.stringify({ error: "scripted" }), { status: failure });
    if (body.start_seq > server.stored) {
      return new Response(JSON.stringify({ error: "gap", next_seq: server.stored }), { status: 409 });
    }
    server.stored = Math.max(server.stored, body.start_seq + body.clicks.length);
    return new Response(JSON.stringify({ stored: server.stored, next_seq: server.stored }), { status: 200 });
  };
  return server;
}

const bubbles = (n) => Array.from({ length: n }, (_, i) => [10 + i, 20, i * 50]);

beforeEach(() => saved.clear());

test("network errors and 5xx are retried until the batch is stored, with the CSRF token", async () => {
  const server = fakeServer({ failures: ["network", 503] });
  const uploader = createUploader({ clicksUrl: "/api/rounds/r1/clicks/", clientRoundId: "r1" });
  for (const bubble of bubbles(25)) uploader.add(bubble);
  await uploader.flush();
  assert.equal(uploader.stored, 25);
  assert.equal(server.stored, 25);
  assert.equal(server.requests.length, 3);
  assert.ok(server.requests.every((r) => r.body.start_seq === 0 && r.body.clicks.length === 25));
  assert.equal(server.requests[0].csrf, "tok=1");
});

test("a database outage's 503 with Retry-After holds the clicks until the server asked", async () => {
  const server = fakeServer();
  const upload = globalThis.fetch;
  let first = true;
  globalThis.fetch = async (url, init) => {
    if (!first) return upload(url, init);
    first = false;
    server.requests.push({ at: Date.now() });
    return new Response(JSON.stringify({ error: "database unavailable" }),
                        { status: 503, headers: { "Retry-After": "2" } });
  };
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r7" });
  for (const bubble of bubbles(9)) uploader.add(bubble);
  const started = Date.now();
  await uploader.flush();
  assert.ok(Date.now() - started >= 1900, `resent after ${Date.now() - started} ms, not the 2 s asked`);
  assert.deepEqual([uploader.stored, server.stored], [9, 9]);
});

test("batches hold at most 200 bubbles and carry their start_seq", async () => {
  const server = fakeServer();
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r2" });
  for (const bubble of bubbles(450)) uploader.add(bubble);
  await uploader.flush();
  const batches = server.requests.map((r) => [r.body.start_seq, r.body.clicks.length]);
  assert.deepEqual(batches, [[0, 200], [200, 200], [400, 50]]);
});

test("a flush stops at what was queued when called, however fast painting goes on", { timeout: 5000 }, async () => {
  const server = fakeServer();
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r6" });
  for (const bubble of bubbles(10)) uploader.add(bubble);
  const upload = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    uploader.add([5, 5, 1000 + server.requests.length * 50]); // a bubble lands during every request
    return upload(url, init);
  };
  await uploader.flush();
  assert.ok(server.requests.length <= 2, `${server.requests.length} requests chased the painting`);
  assert.ok(uploader.stored >= 10);
});

test("a 409 gap answer makes the uploader resend from the server's next_seq", async () => {
  saved.set("clickme:round:r3", JSON.stringify({ clicks: bubbles(12), acked: 8, outcome: null }));
  const server = fakeServer({ stored: 5 });
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r3" });
  await uploader.flush();
  assert.deepEqual(server.requests.map((r) => r.body.start_seq), [8, 5]);
  assert.deepEqual(server.requests[1].body.clicks, bubbles(12).slice(5));
  assert.equal(uploader.stored, 12);
});

test("the queue survives a reload in localStorage until the round is forgotten", async () => {
  fakeServer({ failures: ["network", "network", "network", "network", "network"] });
  const id = currentRoundId("demo");
  assert.equal(currentRoundId("demo"), id, "the same round id until it is submitted");
  const before = createUploader({ clicksUrl: "/c/", clientRoundId: id });
  for (const bubble of bubbles(7)) before.add(bubble);
  before.setOutcome("skipped");
  await assert.rejects(before.flush({ giveUpMs: 0 }));
  const after = createUploader({ clicksUrl: "/c/", clientRoundId: id });  // the page was reloaded
  assert.deepEqual([after.total, after.stored, after.outcome], [7, 0, "skipped"]);
  const server = fakeServer();
  await after.flush();
  assert.equal(server.stored, 7);
  forgetRound("demo", id);
  assert.equal(saved.size, 0);
  assert.notEqual(currentRoundId("demo"), id);
});

test("a guess carries the unconfirmed bubbles as one batch, and its next_seq confirms them", async () => {
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r8" });
  assert.equal(uploader.pendingBatch(), null, "nothing painted: nothing to carry");
  for (const bubble of bubbles(12)) uploader.add(bubble);
  assert.deepEqual(uploader.pendingBatch(), { start_seq: 0, clicks: bubbles(12) });
  uploader.acknowledge(10); // the server stored up to 10 (the guess's answer)
  assert.equal(uploader.stored, 10);
  assert.deepEqual(uploader.pendingBatch(), { start_seq: 10, clicks: bubbles(12).slice(10) });
  uploader.acknowledge(undefined); // an answer without next_seq changes nothing
  uploader.acknowledge(4); // nor does an older one
  assert.equal(uploader.stored, 10);
  const reloaded = createUploader({ clicksUrl: "/c/", clientRoundId: "r8" });
  assert.equal(reloaded.stored, 10, "the confirmation is kept across a reload");
});

test("more than one request's worth of bubbles is not carried: the caller uploads first", async () => {
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r9" });
  for (const bubble of bubbles(201)) uploader.add(bubble);
  assert.equal(uploader.pendingBatch(), null);
});

test("a permanent 4xx stops the round's uploads and is reported", async () => {
  const server = fakeServer({ failures: [400] });
  const uploader = createUploader({ clicksUrl: "/c/", clientRoundId: "r5" });
  for (const bubble of bubbles(3)) uploader.add(bubble);
  await assert.rejects(uploader.flush(), /scripted/);
  assert.equal(uploader.failure.status, 400);
  uploader.add([1, 1, 500]);
  await uploader.flush();
  assert.equal(server.requests.length, 1);
});
"""


def test_uploads_in_node(tmp_path: Path) -> None:
    script = tmp_path / "uploads.test.mjs"
    script.write_text(TESTS % {"uploads": UPLOADS_JS.as_uri()})
    completed = subprocess.run(
        ["node", "--test", "--test-reporter=tap", str(script)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
