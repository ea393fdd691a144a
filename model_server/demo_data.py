"""Procedural demo image set: filled shapes on cluttered backgrounds, with object masks.

Design: docs/architecture.md, "Simulated players and demo data".

No real image set can be downloaded at run time, so the project draws its own. Every sample is a
pure function of (seed, split, class, index): ``generate(n_per_class=5)`` is a prefix of
``generate(n_per_class=10)``, and the train and test splits use disjoint derived seeds. Only the
standard library, Pillow and NumPy are used, so the Django site can import this module without
torch.

    python -m model_server.demo_data OUT --per-class N [--seed S] [--split train|test] \
        [--background-cue]
"""

from __future__ import annotations

import argparse
import colorsys
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from model_server.canvas import IMAGE_SIZE  # the game's 256 x 256 coordinate space

CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "arrow",
    "crescent",
    "heart",
)
# Object area as a fraction of the image, inside the 5-25 % the game is designed for: a 21 px
# bubble then uncovers 1-3 % of the object, so a few dozen bubbles are needed to recognise it.
MIN_AREA, MAX_AREA = 0.06, 0.22
# The partner model the demo set is played with: seed_demo registers it, `make run` serves it.
DEMO_PARTNER = "demo-gala"
SPLITS = {"train": 0, "test": 1}
# Background cues (docs/training.md, "The shortcut demonstration"): none, the image's own class's,
# or a wrong class's ("cue-conflict" test images). "class"/"conflict" colour the whole background
# (its hue and stripe direction); "patch"/"patch-conflict" leave the background as without a cue
# and add a small class-coloured, class-striped square in a corner, away from the object, like
# decoy MNIST's corner patch (Ross et al. 2017).
CUES = ("none", "class", "conflict", "patch", "patch-conflict")
PATCH_SIZE, PATCH_INSET = 40, 24  # canvas pixels; the inset keeps the patch inside the partner's 224 crop
# Drawing at twice the resolution and downsampling gives anti-aliased object edges.
SUPERSAMPLE = 2

Polygon = list[tuple[float, float]]


@dataclass(frozen=True)
class DemoSample:
    """One demo image with its class and ground-truth object mask."""

    name: str
    label: int
    class_name: str
    image: Image.Image  # RGB, 256x256
    mask: np.ndarray  # bool (256, 256), True on the object


def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> Polygon:
    """Return the vertices of a regular n-gon of the given circumradius."""
    return [
        (
            radius * math.cos(phase + 2 * math.pi * k / n),
            radius * math.sin(phase + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _heart() -> Polygon:
    """Return the classic parametric heart curve scaled into the unit disk."""
    points = []
    for k in range(96):
        t = 2 * math.pi * k / 96
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x / 17.5, -(y + 2.5) / 17.5))
    return points


@cache
def _shape(class_name: str) -> list[tuple[Polygon, bool]]:
    """Return a class's outline in the unit disk as (polygon, filled) layers; unfilled cut holes."""
    star = [
        (r * math.cos(-math.pi / 2 + math.pi * k / 5), r * math.sin(-math.pi / 2 + math.pi * k / 5))
        for k in range(10)
        for r in [1.0 if k % 2 == 0 else 0.42]
    ]
    arm = 0.3
    cross = [(-arm, -1), (arm, -1), (arm, -arm), (1, -arm), (1, arm), (arm, arm), (arm, 1)]
    cross += [(-arm, 1), (-arm, arm), (-1, arm), (-1, -arm), (-arm, -arm)]
    arrow = [
        (-1, -0.25),
        (0.15, -0.25),
        (0.15, -0.65),
        (1, 0),
        (0.15, 0.65),
        (0.15, 0.25),
        (-1, 0.25),
    ]
    shapes: dict[str, list[tuple[Polygon, bool]]] = {
        "circle": [(_regular(72), True)],
        "square": [(_regular(4, phase=math.pi / 4), True)],
        "triangle": [(_regular(3, phase=-math.pi / 2), True)],
        "star": [(star, True)],
        "cross": [(cross, True)],
        "ring": [(_regular(72), True), (_regular(72, radius=0.55), False)],
        "hexagon": [(_regular(6), True)],
        "arrow": [(arrow, True)],
        "crescent": [
            (_regular(72), True),
            ([(x + 0.45, y - 0.15) for x, y in _regular(72, radius=0.85)], False),
        ],
        "heart": [(_heart(), True)],
    }
    return shapes[class_name]


def _place(
    layers: list[tuple[Polygon, bool]], cx: float, cy: float, scale: float, angle: float
) -> list[tuple[Polygon, bool]]:
    """Rotate, scale and translate every layer of a unit shape into image coordinates."""
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (
            [(cx + scale * (cos * x - sin * y), cy + scale * (sin * x + cos * y)) for x, y in poly],
            fill,
        )
        for poly, fill in layers
    ]


def _alpha(layers: list[tuple[Polygon, bool]], size: int = IMAGE_SIZE) -> np.ndarray:
    """Rasterise placed layers into an anti-aliased coverage map in [0, 1] of shape (size, size)."""
    canvas = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for poly, fill in layers:
        draw.polygon([(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in poly], fill=255 if fill else 0)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


@cache
def _unit_area(class_name: str) -> float:
    """Return the area of a class's unit shape, measured once by rasterising it large."""
    size = 400
    layers = _place(_shape(class_name), size / 2, size / 2, size / 2 - 1, 0.0)
    return float(_alpha(layers, size).sum()) / (size / 2 - 1) ** 2


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """Convert an HSV colour to an RGB float array in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32)


def _background(rng: np.random.Generator, label: int, cue: bool, classes: int = len(CLASSES)) -> np.ndarray:
    """Paint a cluttered, low-contrast background (float32 HxWx3 in [0, 1]).

    ``label`` is the cue's class, its position among ``classes`` cued classes.
    """
    size = IMAGE_SIZE
    # With the cue, the hue and the stripe direction are the class's: a shortcut humans never use.
    hue = label / classes + rng.normal(0, 0.015) if cue else rng.random()
    base = _rgb(hue, rng.uniform(0.1, 0.35) + 0.25 * cue, rng.uniform(0.35, 0.65))
    canvas = Image.fromarray((base * 255).astype(np.uint8)[None, None].repeat(size, 0).repeat(size, 1))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(8, 16)):  # low-contrast blobs and lines
        shade = np.clip(base + rng.normal(0, 0.06, 3), 0, 1)
        fill = tuple(int(v * 255) for v in shade)
        x, y = rng.uniform(-20, size + 20, 2)
        r = rng.uniform(8, 50)
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r * rng.uniform(0.5, 1.5), y + r], fill=fill)
        else:
            x2, y2 = rng.uniform(0, size, 2)
            draw.line([x, y, x2, y2], fill=fill, width=int(rng.integers(2, 7)))
    for _ in range(rng.integers(3, 7)):  # distractor fragments: pieces of outlines, never a whole shape
        fragment = _place(
            _shape(CLASSES[rng.integers(len(CLASSES))]),
            *rng.uniform(0, size, 2),
            rng.uniform(10, 25),
            rng.uniform(0, 2 * math.pi),
        )
        outline = fragment[0][0]
        start = int(rng.integers(len(outline)))
        piece = [outline[(start + k) % len(outline)] for k in range(max(2, len(outline) // 3))]
        shade = np.clip(base + rng.choice([-1, 1]) * rng.uniform(0.08, 0.15), 0, 1)
        draw.line(piece, fill=tuple(int(v * 255) for v in shade), width=int(rng.integers(2, 4)))
    pixels = np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255.0
    if cue:
        angle = math.pi * label / classes
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / 12)
        pixels = pixels + 0.06 * stripes[..., None]
    pixels = pixels + 0.03 * rng.standard_normal((size, size, 3), dtype=np.float32)  # grain
    return np.clip(pixels, 0, 1)


def cue_label(label: int, index: int, cue: str, classes: int = len(CLASSES)) -> int | None:
    """The class whose background cue sample ``index`` of class ``label`` carries (None: no cue).

    ``class``: its own class's. ``conflict``: a wrong class's, each of the other nine in turn, so
    a network that reads the cue names a wrong class on every image. Labels are positions among
    ``classes`` classes.
    """
    if cue not in CUES:
        raise ValueError(f"cue must be one of {CUES}, not {cue!r}")
    if cue == "none":
        return None
    if cue in ("class", "patch"):
        return label
    return (label + 1 + index % (classes - 1)) % classes


def _patch(pixels: np.ndarray, mask: np.ndarray, label: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Paint the class-coded patch in the corner (of four, tried in a random order) that overlaps the object least."""
    low, high = PATCH_INSET, IMAGE_SIZE - PATCH_INSET - PATCH_SIZE
    corners = [(low, low), (high, low), (low, high), (high, high)]
    order = rng.permutation(len(corners))
    x, y = min(
        (corners[i] for i in order), key=lambda c: mask[c[1] : c[1] + PATCH_SIZE, c[0] : c[0] + PATCH_SIZE].sum()
    )
    yy, xx = np.mgrid[0:PATCH_SIZE, 0:PATCH_SIZE].astype(np.float32)
    angle = math.pi * label / classes
    stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / 10)
    patch = np.clip(_rgb(label / classes, 0.9, 0.8) + 0.2 * stripes[..., None], 0, 1)
    pixels = pixels.copy()
    pixels[y : y + PATCH_SIZE, x : x + PATCH_SIZE] = patch
    return pixels


def _sample(
    seed: int, split: str, label: int, index: int, background_cue: bool | str, classes: Sequence[str] = CLASSES
) -> DemoSample:
    """Draw one sample as a pure function of its coordinates (``background_cue``: a bool or a ``CUES`` name).

    ``label`` indexes ``CLASSES``; the sample's label is the class's position in ``classes`` (a
    subset of them), among which the cues are spread.
    """
    class_name = CLASSES[label]
    position = list(classes).index(class_name)
    # Separate streams for object and background: the cue changes the background only.
    object_seq, background_seq = np.random.SeedSequence([seed, SPLITS[split], label, index]).spawn(2)
    rng = np.random.default_rng(object_seq)
    area = rng.uniform(MIN_AREA, MAX_AREA) * IMAGE_SIZE**2
    scale = math.sqrt(area / _unit_area(class_name))
    margin = scale + 2  # every vertex lies in the unit disk, so the object stays fully inside
    cx, cy = rng.uniform(margin, IMAGE_SIZE - margin, 2)
    alpha = _alpha(_place(_shape(class_name), cx, cy, scale, rng.uniform(0, 2 * math.pi)))
    cue = {True: "class", False: "none"}.get(background_cue, background_cue)
    cued = cue_label(position, index, cue, len(classes))
    patch = cue.startswith("patch")
    background = _background(
        np.random.default_rng(background_seq),
        position if cued is None else cued,
        cued is not None and not patch,
        len(classes),
    )
    # The object contrasts with the background in value, so it is visible but not trivially so.
    bg_value = float(background.max(axis=2).mean())
    value = bg_value + rng.choice([-1, 1]) * rng.uniform(0.25, 0.4)
    value = value if 0.1 <= value <= 0.95 else bg_value - (value - bg_value)
    colour = _rgb(rng.random(), rng.uniform(0.5, 0.9), float(np.clip(value, 0.1, 0.95)))
    shading = np.linspace(-0.06, 0.06, IMAGE_SIZE, dtype=np.float32)[:, None, None]
    grain = 0.02 * rng.standard_normal(background.shape, dtype=np.float32)
    foreground = np.clip(colour + shading + grain, 0, 1)
    pixels = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    if patch:
        patch_rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], label, index, 1]))
        pixels = _patch(pixels, alpha >= 0.5, cued, len(classes), patch_rng)
    image = Image.fromarray(np.round(pixels * 255).astype(np.uint8), "RGB")
    return DemoSample(f"{class_name}_{index:04d}", position, class_name, image, alpha >= 0.5)


def generate(
    *,
    n_per_class: int,
    seed: int = 0,
    split: str = "train",
    background_cue: bool | str = False,
    classes: Sequence[str] = CLASSES,
) -> Iterator[DemoSample]:
    """Yield ``n_per_class`` samples of every class (or of ``classes``), interleaved by class, deterministically.

    A class's images are the same whichever subset of classes is drawn; only the cue (spread
    over the drawn classes) and the label (a position among them) depend on the subset.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown or len(classes) < 2:
        raise ValueError(f"classes must be two or more of {CLASSES}, not {unknown or list(classes)}")
    for index in range(n_per_class):
        for name in classes:
            yield _sample(seed, split, CLASSES.index(name), index, background_cue, classes)


def save_demo_set(
    root: Path,
    *,
    n_per_class: int,
    seed: int = 0,
    split: str = "train",
    background_cue: bool | str = False,
    classes: Sequence[str] = CLASSES,
) -> list[Path]:
    """Write ``root/<class>/<name>.png`` and ``<name>.mask.png`` (L, 0/255); return image paths."""
    root = Path(root)
    paths = []
    samples = generate(n_per_class=n_per_class, seed=seed, split=split, background_cue=background_cue, classes=classes)
    for sample in tqdm(samples, total=n_per_class * len(classes), desc="demo images", unit="img"):
        folder = root / sample.class_name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sample.name}.png"
        sample.image.save(path)
        Image.fromarray(sample.mask.astype(np.uint8) * 255, "L").save(folder / f"{sample.name}.mask.png")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: write a demo set as a folder of class sub-folders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder (class sub-folders are created)")
    parser.add_argument("--per-class", type=int, required=True, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=sorted(SPLITS), default="train")
    parser.add_argument("--background-cue", action="store_true", help="class-correlated background")
    parser.add_argument("--cue", choices=CUES, help="background cue: none, class (= --background-cue), conflict")
    parser.add_argument("--classes", nargs="+", choices=CLASSES, default=list(CLASSES), help="a subset of the classes")
    args = parser.parse_args(argv)
    paths = save_demo_set(
        args.out,
        n_per_class=args.per_class,
        seed=args.seed,
        split=args.split,
        background_cue=args.cue or args.background_cue,
        classes=args.classes,
    )
    print(f"wrote {len(paths)} images to {args.out}")


if __name__ == "__main__":
    main()
