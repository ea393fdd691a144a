// The play canvas: a darkened, blurred backdrop of the image (something to aim at, too vague to
// recognise) with the painted bubbles shown clean. The backing store is the image itself
// (256×256 image px); CSS scales it to the screen, and toImagePoint maps CSS px back.

import { IMAGE_SIZE, drawBubble } from "./reveal.js";

const BLUR_SIZE = 40; // backdrop resolution: a cheap blur that works where ctx.filter does not
const SHADE = "rgba(12, 16, 28, 0.62)";

export function createCanvasView(canvas) {
  canvas.width = IMAGE_SIZE;
  canvas.height = IMAGE_SIZE;
  const ctx = canvas.getContext("2d");
  let image = null;
  let bubbleSize = 21;

  function drawBackdrop() {
    ctx.clearRect(0, 0, IMAGE_SIZE, IMAGE_SIZE);
    if (!image) {
      ctx.fillStyle = "#1d2230";
      ctx.fillRect(0, 0, IMAGE_SIZE, IMAGE_SIZE);
      return;
    }
    const small = document.createElement("canvas");
    small.width = small.height = BLUR_SIZE;
    const smallCtx = small.getContext("2d");
    smallCtx.imageSmoothingQuality = "high";
    smallCtx.drawImage(image, 0, 0, BLUR_SIZE, BLUR_SIZE);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(small, 0, 0, IMAGE_SIZE, IMAGE_SIZE);
    ctx.fillStyle = SHADE;
    ctx.fillRect(0, 0, IMAGE_SIZE, IMAGE_SIZE);
  }

  return {
    canvas,
    // Show a new round's image (an HTMLImageElement already decoded), nothing revealed yet.
    setImage(nextImage, size) {
      image = nextImage;
      bubbleSize = size;
      drawBackdrop();
    },
    clear() {
      image = null;
      drawBackdrop();
    },
    // Show the clean pixels under one bubble [x, y, t].
    reveal(bubble) {
      if (image) drawBubble(ctx, image, bubble[0], bubble[1], bubbleSize, IMAGE_SIZE);
    },
    // CSS px of a pointer event → integer image px, clamped inside the image.
    toImagePoint(clientX, clientY) {
      const box = canvas.getBoundingClientRect();
      const scaleX = IMAGE_SIZE / (box.width || IMAGE_SIZE);
      const scaleY = IMAGE_SIZE / (box.height || IMAGE_SIZE);
      const clamp = (v) => Math.min(IMAGE_SIZE - 1, Math.max(0, Math.floor(v)));
      return [clamp((clientX - box.left) * scaleX), clamp((clientY - box.top) * scaleY)];
    },
    // Rendered size in CSS px, reported when the session starts.
    cssSize() {
      const box = canvas.getBoundingClientRect();
      return { width: Math.round(box.width), height: Math.round(box.height) };
    },
  };
}

// Load the round's image (same-origin, so the participant cookie goes along) and decode it.
export async function loadImage(url) {
  const image = new Image();
  image.decoding = "async";
  image.src = url;
  await image.decode();
  return image;
}
