"""Export a checkpoint to ONNX for Triton/KServe: ``python -m model_server.export_onnx CKPT OUT.onnx``.

Input ``images`` (B, 3, 224, 224) floats in [0, 1] (the ImageNet normalisation is inside the
graph); outputs ``logits`` (B, classes) and ``attention_<i>`` (B, 1, h, w), one per GALA block in
network order. The class names and version ride along as ONNX metadata ("classes" as JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import onnx
import torch
from torch import nn

from model_server.network import GALANet, load_checkpoint

logger = logging.getLogger(__name__)


class _LogitsAndMaps(nn.Module):
    """Flatten ``forward_with_attention`` into a tuple of tensors, which ONNX outputs must be."""

    def __init__(self, model: GALANet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return logits followed by every GALA block's attention map."""
        logits, maps = self.model.forward_with_attention(images)
        return (logits, *maps)


def export(checkpoint_path: Path, out: Path) -> list[str]:
    """Write the checkpoint's network as a checked ONNX model; return its output names."""
    model, checkpoint = load_checkpoint(checkpoint_path)
    size = model.config.image_size
    example = torch.rand(2, 3, size, size)  # batch 2: a batch of 1 would be specialised away
    with torch.inference_mode():
        num_maps = len(model.forward_with_attention(example)[1])
    names = ["logits"] + [f"attention_{index}" for index in range(num_maps)]
    program = torch.onnx.export(
        _LogitsAndMaps(model).eval(),
        (example,),
        input_names=["images"],
        output_names=names,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
    )
    proto = program.model_proto
    metadata = {"classes": json.dumps(checkpoint["classes"]), "version": checkpoint["version"]}
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, out)
    logger.info("exported %s to %s with outputs %s", checkpoint_path, out, names)
    return names


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one line per folded constant
    names = export(args.checkpoint, args.out)
    print(f"wrote {args.out}: images -> {', '.join(names)}")


if __name__ == "__main__":
    main()
