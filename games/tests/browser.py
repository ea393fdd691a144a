"""Driving Debian's Chromium through Playwright for the game's browser tests (never `playwright install`).

Helpers shared by the browser tests: the browser fixture, painting along an image's object
with a mouse or a finger, and telling expected HTTP errors from real ones.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from games.models import Round

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]  # fmt: skip
PAINT_SPEED = 130  # image px per second: just under the trail's 7 px / 50 ms, so it keeps up


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Headless Chromium. Playwright's sync API runs an event loop in this thread, so the test's
    own ORM reads need Django's async-safety check lifted (as Django's docs advise for Playwright)."""
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    expect.set_options(timeout=15_000)  # a busy CI machine can take seconds to load a page
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    expect.set_options(timeout=5_000)


def object_path(round_: Round) -> list[tuple[float, float]]:
    """A zig-zag over the round's object mask, in image px, densified to 3 px steps."""
    mask = np.asarray(PILImage.open(round_.image.mask.open("rb")).convert("L")) > 127
    rows, cols = np.nonzero(mask)
    corners = []
    for index, y in enumerate(range(rows.min() + 5, rows.max() - 4, 12)):
        xs = cols[rows == y]
        if xs.size:
            ends = [(xs.min() + 4, y), (xs.max() - 4, y)]
            corners += ends if index % 2 == 0 else ends[::-1]
    corners = corners or [(cols.mean(), rows.mean())]
    corners += corners[::-1]  # and back again, in case the partner needs the whole 7 s
    points = [corners[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        steps = max(1, int(np.hypot(x1 - x0, y1 - y0) // 3))
        points += [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(1, steps + 1)]
    return points


def to_screen(box: dict, point: tuple[float, float]) -> tuple[float, float]:
    return box["x"] + (point[0] + 0.5) * box["width"] / 256, box["y"] + (point[1] + 0.5) * box["height"] / 256


def playing_round(client_round_id: str) -> Round:
    return Round.objects.select_related("image").get(client_round_id=client_round_id)


def current_round_id(page: object, slug: str = "demo") -> str:
    """The client_round_id the page keeps in localStorage for the round it plays."""
    return page.evaluate(
        f"JSON.parse(Object.entries(localStorage).find(([key]) => key.startsWith('clickme:current:{slug}:'))[1])"
    )


def shown_guesses(page: object) -> tuple[str, str] | None:
    """The partner panel: its guesses (labels and percentages) and the note on how many squares it saw."""
    if page.locator("#guesses li").count() == 0:
        return None
    return page.locator("#guesses").inner_text().strip(), page.locator("#partner-note").inner_text().strip()


def paint_round(page: object, shots: Path | None) -> set[tuple[str, str]]:
    """Paint along the object with the mouse in real time until the round ends; the guesses seen."""
    round_ = playing_round(current_round_id(page))
    box = page.locator("#game-canvas").bounding_box()
    path = object_path(round_)
    seen: set[tuple[str, str] | None] = set()
    page.mouse.move(*to_screen(box, path[0]))
    page.mouse.down()
    step_s = 3 / PAINT_SPEED
    next_move = time.monotonic()
    give_up = next_move + 10  # the round itself ends after 7 s
    for index in itertools.count(1):
        # Pace each move from the previous one, so that a slow screenshot never makes the
        # pointer race ahead of the bubble trail.
        next_move = max(next_move + step_s, time.monotonic())
        time.sleep(max(0.0, next_move - time.monotonic()))
        page.mouse.move(*to_screen(box, path[index % len(path)]))
        if index % 8 == 0:
            seen.add(shown_guesses(page))
            if page.locator("#round-end").is_visible() or time.monotonic() > give_up:
                break
            if shots and len(seen - {None}) >= 2:
                page.screenshot(path=shots / "play-painting.png")
                shots = None
    page.mouse.up()
    return seen - {None}


def failed(response: object) -> bool:
    """An HTTP error the page should never meet. A 503 from guess/ is the documented "partner busy",
    which the page shows and plays on through (a loaded CI machine can make a query time out)."""
    expected = "favicon" in response.url or (response.status == 503 and response.url.endswith("/guess/"))
    return response.status >= 400 and not expected


def finger_paint(page: object, touch: object, steps: int) -> None:
    """Drag a finger along the current round's object for `steps` moves (CDP touch events)."""
    box = page.locator("#game-canvas").bounding_box()
    path = object_path(playing_round(current_round_id(page)))
    for index in range(steps):
        x, y = to_screen(box, path[index % len(path)])
        kind = "touchStart" if index == 0 else "touchMove"
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
        time.sleep(3 / PAINT_SPEED)
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
