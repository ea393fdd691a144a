// Pointer Events for mouse, touch and pen in one API. Only the first pointer down counts (a
// second finger is ignored); pointer capture keeps the stroke when it leaves the canvas.
// The canvas has `touch-action: none` (game.css), so a finger paints instead of scrolling.

export function attachPointer(canvas, toImagePoint, { onDown, onMove, onUp }) {
  let active = null;

  const point = (event) => toImagePoint(event.clientX, event.clientY);

  function down(event) {
    if (active !== null) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    active = event.pointerId;
    try {
      canvas.setPointerCapture(event.pointerId);
    } catch {
      // Capture can fail for a pointer that is already gone; the stroke still works inside.
    }
    onDown(point(event), event.pointerType || "unknown");
  }

  function move(event) {
    if (event.pointerId !== active) return;
    event.preventDefault();
    onMove(point(event));
  }

  function up(event) {
    if (event.pointerId !== active) return;
    active = null;
    onUp();
  }

  const noMenu = (event) => event.preventDefault(); // a long press must not open a menu
  const listeners = [
    ["pointerdown", down],
    ["pointermove", move],
    ["pointerup", up],
    ["pointercancel", up],
    ["lostpointercapture", up],
    ["contextmenu", noMenu],
  ];
  for (const [type, listener] of listeners) canvas.addEventListener(type, listener);
  return () => {
    for (const [type, listener] of listeners) canvas.removeEventListener(type, listener);
  };
}
