"""The partner's wire contract: the infer request's tensors and parameters, in one torch-free module.

What the model server accepts (protocol.py parses it, metadata.py declares it), what the site's
client sends (client.py) and what the serving benchmark sends (bench/serving.py) all come from
here, so the names cannot drift apart (docs/model-server.md). Plain Python: the web and worker
images import it without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model_server.canvas import IMAGE_SIZE

# Input tensor names.
IMAGE_KEY, IMAGE, BUBBLES, NOISE_SEED = "image_key", "image", "bubbles", "noise_seed"
ATTENTION_PREFIX = "attention_"  # output attention_<n>: the map of GALA block n


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the metadata declares it; -1 in a shape means any size."""

    datatype: str
    shape: list[int]
    description: str
    optional: bool = False


ONE_IMAGE = "Send exactly one of 'image_key' and 'image'."
INPUTS = {
    IMAGE_KEY: TensorSpec(
        "BYTES",
        [-1],
        f"Path of each image under the server's --image-root (decoded once, then cached). {ONE_IMAGE}",
        optional=True,
    ),
    IMAGE: TensorSpec(
        "UINT8",
        [-1, IMAGE_SIZE, IMAGE_SIZE, 3],
        f"The 256x256 RGB canvas of each image, row-major. {ONE_IMAGE}",
        optional=True,
    ),
    BUBBLES: TensorSpec("INT32", [-1, -1, 2], "Bubble centres (x, y) in 0..255, each item padded with (-1, -1)."),
    NOISE_SEED: TensorSpec("INT64", [-1], "Seed of each item's hidden-pixel noise, 0..2**63-1."),
}
OUTPUTS = {
    "classes": TensorSpec("BYTES", [-1, -1], "The top-k class names of each item, most probable first."),
    "indices": TensorSpec("INT64", [-1, -1], "Their class indices."),
    "probabilities": TensorSpec("FP32", [-1, -1], "Their probabilities."),
}
DEFAULT_OUTPUTS = tuple(OUTPUTS)  # what a request that names no outputs gets (and attention with attention=true)

# Waiting requests are batched in this order: a participant waiting on a live guess comes before
# the authoritative re-scoring of finished rounds, which nobody watches.
PRIORITIES = ("interactive", "bulk")
INTERACTIVE, BULK = PRIORITIES


def infer_request(
    image_keys: Sequence[str], bubbles: Sequence[Sequence[tuple[int, int]]], seeds: Sequence[int], **parameters: Any
) -> dict:
    """The JSON infer request for items by image key, padding bubble lists with (-1, -1)."""
    longest = max((len(points) for points in bubbles), default=0)
    flat: list[int] = []
    for points in bubbles:
        for x, y in points:
            flat += (int(x), int(y))
        flat += [-1, -1] * (longest - len(points))
    batch = len(image_keys)
    return {
        "inputs": [
            {"name": IMAGE_KEY, "datatype": INPUTS[IMAGE_KEY].datatype, "shape": [batch], "data": list(image_keys)},
            {"name": BUBBLES, "datatype": INPUTS[BUBBLES].datatype, "shape": [batch, longest, 2], "data": flat},
            {"name": NOISE_SEED, "datatype": INPUTS[NOISE_SEED].datatype, "shape": [batch],
             "data": [int(seed) for seed in seeds]},
        ],
        "parameters": parameters,
    }  # fmt: skip
