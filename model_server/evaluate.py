"""Evaluate a checkpoint on held-out images: ``python -m model_server.evaluate CHECKPOINT --maps EXPORT_DIR``.

Accuracy: top-1 and top-5 on whole images, and top-1 after N bubbles painted on the human maps in
the game's rendering (``train.evaluate``). Alignment with humans: the mean Spearman correlation
between a model map and the human map, divided by the split-half ceiling of the same maps (the
mean ``split_half_spearman`` an export stores, or ``--ceiling``), for the GALA attention (mean of
the layers' mean_c(A^2), upsampled to 224) and for gradient saliency (|d logit_true / d pixels|,
max over colours), per class and overall. Under the Harmonization protocol (Fel et al. 2022) the
saliency's mean Spearman is also divided by that paper's fixed ClickMe human ceiling instead
(``harmonization``: comparable with its published scores when the maps are ClickMe's validation
maps; docs/training.md, "Evaluation"). Writes ``<checkpoint>.eval.json`` and a PNG grid
``<checkpoint>.eval.png`` (image, human map, attention, saliency) beside the checkpoint, and stores
the results under ``metrics["evaluation"]`` in the checkpoint itself.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from model_server import train as training
from model_server.data import DemoDataset, ImageFolder
from model_server.export_data import ExportDataset, read_maps
from model_server.network import GALANet, load_checkpoint

# The human ceiling the Harmonization benchmark divides by (the ClickMe validation maps' inter-rater
# Spearman, Fel et al. 2022): its "alignment score" is mean Spearman(saliency, map) / this.
HARMONIZATION_CEILING = 0.65753


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of a 1-D array, ties sharing their average rank (as Spearman's definition needs)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps of the same shape (0 when either is constant)."""
    ra, rb = average_ranks(a.ravel()), average_ranks(b.ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def model_maps(model: GALANet, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Return the GALA attention map (B, 1, H, W; None without GALA) and the gradient saliency."""
    images = images.clone().requires_grad_(True)
    logits, maps = model.forward_with_attention(images)
    (grad,) = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), images)
    saliency = grad.abs().amax(1, keepdim=True)
    attention = None
    if maps:
        size = images.shape[-2:]
        attention = torch.stack([F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps])
        attention = attention.mean(0).detach()
    return attention, saliency.detach()


def grey(values: np.ndarray) -> Image.Image:
    """A map as an 8-bit grey image, scaled to its own range."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return Image.fromarray((255 * scaled).astype(np.uint8), "L").convert("RGB")


def evaluate(model: GALANet, dataset: Dataset, classes: list[str], *, ceiling: float, grid: int = 6) -> dict:
    """Accuracy and alignment on ``dataset``; also return up to ``grid`` rows of pictures as '_rows'."""
    model.eval()
    scores: dict[str, dict[str, list[float]]] = {"attention": defaultdict(list), "saliency": defaultdict(list)}
    top1 = top5 = total = 0
    rows = []
    for images, labels, maps, has_map in DataLoader(dataset, batch_size=32):
        with torch.inference_mode():
            logits = model(images)
        top1 += int((logits.argmax(1) == labels).sum())
        top5 += int((logits.topk(min(5, logits.shape[1]), 1).indices == labels[:, None]).any(1).sum())
        total += len(labels)
        if not has_map.any():
            continue
        attention, saliency = model_maps(model, images[has_map], labels[has_map])
        for row, index in enumerate(torch.nonzero(has_map).flatten().tolist()):
            human, name = maps[index, 0].numpy(), classes[int(labels[index])]
            kinds = {"saliency": saliency[row, 0].numpy()}
            if attention is not None:
                kinds["attention"] = attention[row, 0].numpy()
            for kind, values in kinds.items():
                scores[kind][name].append(spearman(values, human))
            if len(rows) < grid:
                pictures = [images[index].permute(1, 2, 0).numpy(), human, *kinds.values()]
                rows.append(pictures)
    result: dict[str, Any] = {"top1": top1 / max(total, 1), "top5": top5 / max(total, 1), "images": total}
    result["ceiling"] = ceiling
    for kind, per_class in scores.items():
        if not per_class:
            continue
        every = [value for values in per_class.values() for value in values]
        result[kind] = {
            "spearman": float(np.mean(every)),
            "alignment": float(np.mean(every)) / ceiling,
            "maps": len(every),
            "per_class": {name: float(np.mean(values)) / ceiling for name, values in sorted(per_class.items())},
        }
        if kind == "saliency":  # the Harmonization protocol: gradient saliency, its fixed human ceiling
            result[kind]["harmonization"] = float(np.mean(every)) / HARMONIZATION_CEILING
    result["_rows"] = rows
    return result


def write_grid(rows: list[list[np.ndarray]], path: Path, size: int = 112) -> None:
    """A PNG with one row per image: the image, the human map, then the model's maps."""
    if not rows:
        return
    columns = max(len(row) for row in rows)
    sheet = Image.new("RGB", (columns * size, len(rows) * size), "white")
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            tile = (
                Image.fromarray((255 * picture.clip(0, 1)).astype(np.uint8), "RGB")
                if picture.ndim == 3
                else grey(picture)
            )
            sheet.paste(tile.resize((size, size)), (c * size, r * size))
    sheet.save(path)


def main(argv: list[str] | None = None) -> dict:
    """Evaluate, write the JSON and PNG beside the checkpoint, store the results in it; return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--maps", type=Path, help="a ClickMe export (its held-out split is evaluated)")
    parser.add_argument("--images", type=Path, help="the export's image files")
    parser.add_argument("--data", type=Path, help="a folder of class sub-folders (maps: <name>.mask.png beside)")
    parser.add_argument("--demo", action="store_true", help="the demo test set, object masks as maps")
    parser.add_argument("--per-class", type=int, default=10, help="demo images per class")
    parser.add_argument("--split", default="val", help="the export split to evaluate: val, train or all")
    parser.add_argument("--ceiling", type=float, help="split-half ceiling (default: the export's, or 1)")
    parser.add_argument("--eval-bubbles", type=int, nargs="+", default=[10, 30, 80])
    parser.add_argument(
        "--tag",
        default="",
        help="name of this test set: writes <checkpoint>.<tag>.eval.json, metrics['evaluation_<tag>']",
    )
    args = parser.parse_args(argv)
    model, checkpoint = load_checkpoint(args.checkpoint)
    classes, run = checkpoint["classes"], checkpoint.get("train", {})
    ceiling = args.ceiling
    if args.maps:
        options = {"val_fraction": run.get("val_fraction", 0.2), "seed": run.get("seed", 0)}
        dataset = ExportDataset(args.maps, images=args.images, split=args.split, classes=classes, **options)
        if ceiling is None:
            halves = [h for h in read_split_halves(args.maps) if np.isfinite(h)]
            ceiling = float(np.mean(halves)) if halves else 1.0
    elif args.data:
        dataset = ImageFolder(args.data, classes=classes)
    elif args.demo:
        dataset = DemoDataset(n_per_class=args.per_class, seed=run.get("seed", 0) + 1, split="test")
    else:
        parser.error("give --maps EXPORT_DIR, --data DIR or --demo")
    result = evaluate(model, dataset, classes, ceiling=ceiling or 1.0)
    rows = result.pop("_rows")
    config = training.TrainConfig(eval_bubbles=tuple(args.eval_bubbles), seed=run.get("seed", 0))
    result["revealed"] = training.evaluate(model, dataset, config)["top1_revealed"]
    base = args.checkpoint.with_name(args.checkpoint.name.removesuffix(".pt") + (f".{args.tag}" if args.tag else ""))
    json_path, png_path = base.with_name(base.name + ".eval.json"), base.with_name(base.name + ".eval.png")
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_grid(rows, png_path)
    stored = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    stored.setdefault("metrics", {})[f"evaluation_{args.tag}" if args.tag else "evaluation"] = result
    partial = args.checkpoint.with_name(args.checkpoint.name + ".partial")
    torch.save(stored, partial)
    os.replace(partial, args.checkpoint)
    print(json.dumps({k: v for k, v in result.items() if k not in ("attention", "saliency")}, indent=2))
    for kind in ("attention", "saliency"):
        if kind in result:
            line = f"{kind}: Spearman {result[kind]['spearman']:.3f}, alignment {result[kind]['alignment']:.1%}"
            if "harmonization" in result[kind]:
                line += f", Harmonization score {result[kind]['harmonization']:.1%}"
            print(line)
    return result


def read_split_halves(export: Path) -> list[float]:
    """The split-half Spearman of every map in an export (maps.h5 attributes or maps_index.csv)."""
    import csv

    index = Path(export) / "maps_index.csv"
    if index.exists():
        with index.open(newline="", encoding="utf-8") as handle:
            return [float(row["split_half_spearman"]) for row in csv.DictReader(handle) if row["split_half_spearman"]]
    if (Path(export) / "maps.h5").exists():
        import h5py

        with h5py.File(Path(export) / "maps.h5", "r") as file:
            groups = file["clickmaps"].values()
            return [float(g.attrs["split_half_spearman"]) for g in groups if "split_half_spearman" in g.attrs]
    read_maps(export)  # raises the reader's error for a folder that is no export
    return []


if __name__ == "__main__":
    main()
