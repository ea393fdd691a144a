// Moderators' replay (docs/architecture.md, "Quality and moderation"): a round's recorded bubbles appear over its image in their recorded
// timing, so a bot's metronome or a raster sweep is visible at a glance. Data comes from the
// admin page through json_script (#replay-data); the canvas says data-state="done" when finished.

import { IMAGE_SIZE, drawBubble } from "./reveal.js";

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = url;
  });
}

// Draw the image dimmed, then reveal each bubble once its time has come; resolves at the end.
export async function replay(canvas, round, { speed = 1, caption = null } = {}) {
  const ctx = canvas.getContext("2d");
  const image = await loadImage(round.image_url);
  canvas.dataset.state = "playing";
  ctx.drawImage(image, 0, 0, IMAGE_SIZE, IMAGE_SIZE);
  ctx.fillStyle = "rgba(0, 0, 0, 0.8)";
  ctx.fillRect(0, 0, IMAGE_SIZE, IMAGE_SIZE);
  const clicks = round.clicks;
  const started = performance.now();
  let shown = 0;
  await new Promise((resolve) => {
    function frame(now) {
      const elapsed = (now - started) * speed;
      while (shown < clicks.length && clicks[shown][2] <= elapsed) {
        const [x, y] = clicks[shown];
        drawBubble(ctx, image, x, y, round.bubble_size);
        ctx.strokeStyle = "rgba(255, 200, 0, 0.9)";
        ctx.strokeRect(x - 0.5, y - 0.5, 1, 1); // the bubble's centre, where the pointer was
        shown += 1;
      }
      if (caption) {
        const last = shown ? clicks[shown - 1][2] : 0;
        caption.textContent = `${round.label}: ${shown} / ${clicks.length} bubbles, ${last} ms`;
      }
      if (shown < clicks.length) requestAnimationFrame(frame);
      else resolve();
    }
    requestAnimationFrame(frame);
  });
  canvas.dataset.state = "done";
  canvas.dataset.shown = String(shown);
}

function setUp() {
  const source = document.getElementById("replay-data");
  const canvas = document.getElementById("replay-canvas");
  if (!source || !canvas) return;
  const rounds = JSON.parse(source.textContent);
  const caption = document.getElementById("replay-caption");
  const speed = document.getElementById("replay-speed");
  let playing = false;
  for (const button of document.querySelectorAll("[data-replay]")) {
    button.disabled = false; // rendered disabled until this listener exists
    button.addEventListener("click", async (event) => {
      event.preventDefault();
      if (playing) return;
      playing = true;
      try {
        await replay(canvas, rounds[Number(button.dataset.replay)], { speed: Number(speed?.value || 1), caption });
      } catch (error) {
        if (caption) caption.textContent = error.message;
      } finally {
        playing = false;
      }
    });
  }
}

setUp();
