"""The browser's bubbles (static/games/reveal.js) reveal exactly the pixels the network sees."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from model_server.reveal import bubble_masks, pad_bubbles

REVEAL_JS = Path(__file__).resolve().parents[2] / "static" / "games" / "reveal.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")

SCRIPT = """
import { paintMask, bubbleRect } from %s;
const cases = JSON.parse(process.argv[1]);
const masks = cases.map(({ bubbles, size }) =>
  Array.from(paintMask(new Uint8Array(256 * 256), bubbles, size)).join(""));
console.log(JSON.stringify({ masks, rect: bubbleRect(3, 250, 14) }));
"""


def make_cases() -> list[dict]:
    """Fixed bubble sets: corners, edges, overlaps and random points, odd and even sizes."""
    rng = random.Random(0)
    corners = [[0, 0], [255, 255], [0, 255], [255, 0], [128, 128], [130, 131]]
    cases = []
    for size in (1, 2, 14, 21):
        cases.append({"bubbles": corners, "size": size})
        points = [[rng.randrange(256), rng.randrange(256)] for _ in range(30)]
        cases.append({"bubbles": points, "size": size})
    return cases


def test_browser_masks_agree_with_the_network_masks() -> None:
    cases = make_cases()
    completed = subprocess.run(
        ["node", "--input-type=module", "-e", SCRIPT % json.dumps(REVEAL_JS.as_uri()),
         json.dumps(cases)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    result = json.loads(completed.stdout)
    assert result["rect"] == {"x": 0, "y": 243, "width": 10, "height": 13}
    for case, painted in zip(cases, result["masks"], strict=True):
        bubbles, counts = pad_bubbles([[tuple(point) for point in case["bubbles"]]])
        expected = bubble_masks(bubbles, counts, case["size"])[0].flatten()
        browser = torch.tensor([char == "1" for char in painted])
        assert torch.equal(browser, expected), case["size"]
