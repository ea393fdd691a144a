"""Open Inference Protocol (KServe v2) JSON for the partner: request parsing and response building.

Preprocess (`parse_infer`: JSON tensors to validated Python lists, every problem a BadRequest naming it;
`canvases` for pixels sent inline) and postprocess (`infer_response`: a Prediction to JSON tensors), kept apart
from the HTTP layer in `serve.py`. Only `canvases` touches torch: it runs in a worker thread, the rest on the
event loop (see batching.py for why the loop stays free of torch calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from model_server.batching import Prediction
from model_server.registry import BadRequest, LoadedModel, ModelRegistry
from model_server.reveal import BUBBLE_SIZE, IMAGE_SIZE

if TYPE_CHECKING:  # serve.py imports this module; the settings type is only for annotations
    from model_server.serve import ServerSettings

INPUTS = {  # name: (datatype, shape with -1 for any size)
    "image_key": ("BYTES", [-1]),
    "image": ("UINT8", [-1, IMAGE_SIZE, IMAGE_SIZE, 3]),
    "bubbles": ("INT32", [-1, -1, 2]),
    "noise_seed": ("INT64", [-1]),
}
OUTPUTS = {
    "classes": ("BYTES", [-1, -1]),
    "indices": ("INT64", [-1, -1]),
    "probabilities": ("FP32", [-1, -1]),
}


@dataclass(frozen=True)
class ParsedInfer:
    """A validated infer request: images by key or as pixels, bubbles, seeds and parameters."""

    keys: list[str] | None
    pixels: list | None  # flat row-major (B, 256, 256, 3) values when sent inline, checked by `canvases`
    bubbles: list[list[int]]  # per item, flat x0, y0, x1, y1, ... in 0..255, padding dropped
    seeds: list[int]
    top_k: int
    bubble_size: int
    attention: bool
    priority: str = "interactive"


# Waiting requests are batched in this order: a participant waiting on a live guess comes before
# the authoritative re-scoring of finished rounds, which nobody watches.
PRIORITIES = ("interactive", "bulk")


def _flatten(data: list) -> list:
    """Flatten nested lists: OIP sends row-major flat data, but nested data is accepted too."""
    while data and isinstance(data[0], list):
        data = [value for row in data for value in row]
    return data


def _tensor_input(inputs: dict[str, dict], name: str) -> tuple[list[int], list]:
    """Check one input's datatype and shape and return (shape, flat data)."""
    item = inputs[name]
    datatype, expected = INPUTS[name]
    if item.get("datatype") != datatype:
        raise BadRequest(f"input {name!r} must have datatype {datatype}, got {item.get('datatype')!r}")
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != len(expected)
        or not all(type(dim) is int and dim >= 0 for dim in shape)
        or any(want not in (-1, dim) for want, dim in zip(expected, shape, strict=True))
    ):
        raise BadRequest(f"input {name!r} must have shape {expected} (-1: any), got {shape!r}")
    data = item.get("data")
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r} needs a 'data' list")
    data = _flatten(data)
    if len(data) != math.prod(shape):
        raise BadRequest(f"input {name!r}: shape {shape} needs {math.prod(shape)} values, got {len(data)}")
    return shape, data


def _check_integers(name: str, data: list, low: int, high: int) -> None:
    """Refuse data that is not all integers in low..high (plain Python: small inputs, on the loop)."""
    if not all(type(value) is int for value in data):  # `type(...) is int` also refuses bools
        raise BadRequest(f"input {name!r} must hold integers")
    if data and (min(data) < low or max(data) > high):
        raise BadRequest(f"input {name!r} has values outside {low}..{high}")


def _bubble_rows(data: list, batch: int, count: int) -> list[list[int]]:
    """Split flat (B, N, 2) bubbles into per-item flat (x, y) lists, dropping (-1, -1) padding."""
    _check_integers("bubbles", data, -1, IMAGE_SIZE - 1)
    rows, width = [], 2 * count
    for item in range(batch):
        row, kept = data[item * width : (item + 1) * width], []
        for x, y in zip(row[0::2], row[1::2], strict=True):
            if x >= 0 and y >= 0:
                kept += (x, y)
            elif x != -1 or y != -1:  # coordinates are image pixels 0..255; padding is (-1, -1) only
                raise BadRequest("bubble coordinates out of range: x and y must be in 0..255 (or -1, -1)")
        rows.append(kept)
    return rows


def canvases(pixels: list, batch: int) -> list[torch.Tensor]:
    """Turn inline pixels, flat (B, 256, 256, 3), into canvases (3, 256, 256) uint8 (in a worker thread)."""
    try:
        values = torch.tensor(pixels)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise BadRequest(f"input 'image' must hold integers: {error}") from error
    if values.dtype != torch.int64:  # floats, bools or strings sneaked in
        raise BadRequest(f"input 'image' must hold integers, got {values.dtype}")
    if values.min() < 0 or values.max() > 255:
        raise BadRequest("input 'image' has values outside 0..255")
    images = values.to(torch.uint8).view(batch, IMAGE_SIZE, IMAGE_SIZE, 3).permute(0, 3, 1, 2)  # (B, 3, H, W)
    return list(images.contiguous())


def _parameter(params: dict, name: str, kind: type, default: Any, low: int = 1, high: int = 1) -> Any:
    """Return a request parameter checked for type (and range, for integers)."""
    value = params.get(name, default)
    if type(value) is not kind:
        raise BadRequest(f"parameter {name!r} must be a {kind.__name__}, got {value!r}")
    if kind is int and not low <= value <= high:
        raise BadRequest(f"parameter {name!r} must be in {low}..{high}, got {value}")
    return value


def parse_infer(body: dict, settings: ServerSettings, num_classes: int) -> ParsedInfer:
    """Validate an infer request body (preprocess) and return its tensors and parameters."""
    listed = body.get("inputs")
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        raise BadRequest("the body needs an 'inputs' list of tensors")
    inputs = {item.get("name"): item for item in listed}
    unknown = set(inputs) - set(INPUTS)
    if unknown:
        raise BadRequest(f"unknown inputs {sorted(map(str, unknown))}; expected {sorted(INPUTS)}")
    if ("image_key" in inputs) == ("image" in inputs):
        raise BadRequest("send exactly one of the inputs 'image_key' and 'image'")
    for name in ("bubbles", "noise_seed"):
        if name not in inputs:
            raise BadRequest(f"missing input {name!r}")
    shape, data = _tensor_input(inputs, "bubbles")
    batch, count = shape[0], shape[1]
    if not 1 <= batch <= settings.max_items:
        raise BadRequest(f"a request holds 1..{settings.max_items} items, got {batch}")
    if count > settings.max_bubbles:
        raise BadRequest(f"too many bubbles: {count} per item, at most {settings.max_bubbles}")
    bubbles = _bubble_rows(data, batch, count)
    seed_shape, seeds = _tensor_input(inputs, "noise_seed")
    _check_integers("noise_seed", seeds, 0, 2**63 - 1)
    keys, pixels = None, None
    if "image_key" in inputs:
        key_shape, keys = _tensor_input(inputs, "image_key")
        if not all(isinstance(key, str) for key in keys):
            raise BadRequest("input 'image_key' must hold strings")
        sizes = [key_shape[0], seed_shape[0]]
    else:
        pixel_shape, pixels = _tensor_input(inputs, "image")
        sizes = [pixel_shape[0], seed_shape[0]]
    if any(size != batch for size in sizes):
        raise BadRequest(f"inputs disagree on the batch size: bubbles {batch}, others {sizes}")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest("'parameters' must be an object")
    return ParsedInfer(
        keys=keys,
        pixels=pixels,
        bubbles=bubbles,
        seeds=seeds,
        top_k=_parameter(params, "top_k", int, min(5, num_classes), 1, num_classes),
        bubble_size=_parameter(params, "bubble_size", int, BUBBLE_SIZE, 1, IMAGE_SIZE),
        attention=_parameter(params, "attention", bool, False),
        priority=_priority(params),
    )


def _priority(params: dict) -> str:
    value = params.get("priority", PRIORITIES[0])
    if value not in PRIORITIES:
        raise BadRequest(f"parameter 'priority' must be one of {list(PRIORITIES)}, got {value!r}")
    return value


def _output(name: str, datatype: str, data: list, shape: list[int]) -> dict:
    """Build one OIP output tensor with row-major flat data."""
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def infer_response(loaded: LoadedModel, prediction: Prediction, request_id: Any) -> dict:
    """Turn a prediction into the OIP response (postprocess), with the model version."""
    shape = [len(prediction.indices), len(prediction.indices[0])]
    indices = [index for row in prediction.indices for index in row]
    outputs = [
        _output("classes", "BYTES", [loaded.classes[index] for index in indices], shape),
        _output("indices", "INT64", indices, shape),
        _output("probabilities", "FP32", [value for row in prediction.probabilities for value in row], shape),
    ]
    for number, (map_shape, data) in enumerate(prediction.attention):
        outputs.append(_output(f"attention_{number}", "FP32", data, map_shape))
    response = {"model_name": loaded.name, "model_version": loaded.version, "outputs": outputs}
    if request_id is not None:
        response["id"] = request_id
    return response


def _tensors(specs: dict[str, tuple[str, list[int]]]) -> list[dict]:
    """Describe tensors for metadata."""
    return [{"name": name, "datatype": kind, "shape": shape} for name, (kind, shape) in specs.items()]


def metadata(loaded: LoadedModel, registry: ModelRegistry, settings: ServerSettings) -> dict:
    """Describe a model version: OIP metadata plus class names and the request limits."""
    attention = {"attention_*": ("FP32", [-1, 1, -1, -1])}
    return {
        "name": loaded.name,
        "versions": registry.versions(loaded.name),
        "active_version": registry.active_version(loaded.name),
        "version": loaded.version,
        "platform": "pytorch",
        "arch": loaded.arch,
        "inputs": _tensors(INPUTS),
        "outputs": _tensors({**OUTPUTS, **attention}),
        "classes": list(loaded.classes),
        "parameters": {
            "top_k": min(5, len(loaded.classes)),
            "bubble_size": BUBBLE_SIZE,
            "attention": False,
            "priority": PRIORITIES[0],
            "max_bubbles": settings.max_bubbles,
            "max_items": settings.max_items,
        },
    }


def parse_load(body: dict) -> tuple[Path, str, bool]:
    """Validate a repository load body: checkpoint path, optional version name, activate flag."""
    checkpoint, version = body.get("checkpoint"), body.get("version", "")
    activate = body.get("activate", True)
    if not isinstance(checkpoint, str) or not checkpoint:
        raise BadRequest("the body needs a 'checkpoint' path")
    if not isinstance(version, str) or not isinstance(activate, bool):
        raise BadRequest("'version' must be a string and 'activate' a boolean")
    if not Path(checkpoint).is_file():
        raise BadRequest(f"checkpoint {checkpoint!r} does not exist on the server")
    return Path(checkpoint), version, activate


def repository_state(registry: ModelRegistry, name: str, version: str) -> dict:
    """Describe a model's versions after a repository action."""
    return {
        "name": name,
        "version": version,
        "active_version": registry.active_version(name),
        "versions": registry.versions(name),
    }
