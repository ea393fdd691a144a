// The bubble rule (docs/game-api.md, "Painting") for the browser: the same squares model_server/reveal.py reveals
// to the partner network (checked pixel for pixel by model_server/tests/test_reveal_js.py).
// Coordinates are image pixels of the 256x256 canvas, whatever its size on screen.

export const IMAGE_SIZE = 256;
export const BUBBLE_SIZE = 21;

// The clipped square of a bubble centred on (x, y): columns x - floor(size/2) up to
// x - floor(size/2) + size - 1, rows likewise. Width or height is 0 when it misses the image.
export function bubbleRect(x, y, size = BUBBLE_SIZE, imageSize = IMAGE_SIZE) {
  const half = Math.floor(size / 2);
  const left = Math.min(Math.max(x - half, 0), imageSize);
  const top = Math.min(Math.max(y - half, 0), imageSize);
  const right = Math.min(Math.max(x - half + size, 0), imageSize);
  const bottom = Math.min(Math.max(y - half + size, 0), imageSize);
  return { x: left, y: top, width: right - left, height: bottom - top };
}

// Mark the pixels revealed by bubbles [[x, y], ...] in a row-major Uint8Array mask (1 = shown).
export function paintMask(mask, bubbles, size = BUBBLE_SIZE, imageSize = IMAGE_SIZE) {
  for (const [x, y] of bubbles) {
    const rect = bubbleRect(x, y, size, imageSize);
    for (let row = rect.y; row < rect.y + rect.height; row += 1) {
      mask.fill(1, row * imageSize + rect.x, row * imageSize + rect.x + rect.width);
    }
  }
  return mask;
}

// Copy one bubble's clean pixels from source (an image or canvas at image resolution) onto ctx.
export function drawBubble(ctx, source, x, y, size = BUBBLE_SIZE, imageSize = IMAGE_SIZE) {
  const rect = bubbleRect(x, y, size, imageSize);
  if (rect.width > 0 && rect.height > 0) {
    ctx.drawImage(source, rect.x, rect.y, rect.width, rect.height,
      rect.x, rect.y, rect.width, rect.height);
  }
}
