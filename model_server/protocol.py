"""Open Inference Protocol (KServe v2) tensors for the partner: request parsing and response building.

Preprocess (`parse_infer`: JSON or binary tensors to validated Python lists, every problem a BadRequest naming
it; `canvases` for pixels sent inline) and postprocess (`infer_response`: a Prediction to the requested output
tensors, JSON or binary), kept apart from the HTTP layer in `serve.py`. Only `canvases` touches torch: it runs
in a worker thread, the rest on the event loop (see batching.py for why the loop stays free of torch calls).
The tensors' names and types are the wire contract, wire.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from model_server.binary_data import decode_tensor, encode_tensor
from model_server.inference import Prediction
from model_server.registry import BadRequest, LoadedModel, ModelRegistry, NotFound
from model_server.reveal import BUBBLE_SIZE, IMAGE_SIZE
from model_server.wire import ATTENTION_PREFIX, DEFAULT_OUTPUTS, INPUTS, OUTPUTS, PRIORITIES, TensorSpec

if TYPE_CHECKING:  # serve.py imports this module; the settings type is only for annotations
    from model_server.serve import ServerSettings


def output_specs(loaded: LoadedModel) -> dict[str, TensorSpec]:
    """Return the outputs a model version can answer: the top-k tensors, then one map per GALA block."""
    maps = {
        f"{ATTENTION_PREFIX}{number}": TensorSpec(
            "FP32", [-1, 1, height, width], f"Attention map mean_c(A^2) of GALA block {number}, {height}x{width}."
        )
        for number, (height, width) in enumerate(loaded.attention_shapes)
    }
    return {**OUTPUTS, **maps}


@dataclass(frozen=True)
class RequestedOutput:
    """One output to answer, and whether as binary tensor data."""

    name: str
    binary: bool


@dataclass(frozen=True)
class ParsedInfer:
    """A validated infer request: images by key or as pixels, bubbles, seeds and parameters."""

    keys: list[str] | None
    pixels: list | bytes | None  # flat row-major (B, 256, 256, 3) values (JSON) or bytes (binary), for `canvases`
    bubbles: list[list[int]]  # per item, flat x0, y0, x1, y1, ... in 0..255, padding dropped
    seeds: list[int]
    top_k: int
    bubble_size: int
    attention: bool
    priority: str = "interactive"
    outputs: tuple[RequestedOutput, ...] = tuple(RequestedOutput(name, False) for name in DEFAULT_OUTPUTS)


def flatten(name: str, data: list, rank: int) -> list:
    """Return row-major flat data: OIP sends it flat, but data nested as the shape is accepted too.

    Nesting must be regular (every element of a level a list) and no deeper than the shape's rank, so a
    body can neither mix levels nor bury values deeper than the tensor has dimensions.
    """
    for _ in range(rank - 1):
        if not data or not isinstance(data[0], list):
            break
        if not all(isinstance(row, list) for row in data):
            raise BadRequest(f"input {name!r}: 'data' mixes nested lists and values")
        data = [value for row in data for value in row]
    if data and isinstance(data[0], list):
        raise BadRequest(f"input {name!r}: 'data' is nested deeper than its shape has dimensions")
    return data


def _tensor_input(inputs: dict[str, dict], name: str, binary: dict[str, memoryview]) -> tuple[list[int], list | bytes]:
    """Check one input's datatype and shape and return (shape, flat data) from JSON or binary data."""
    item = inputs[name]
    spec = INPUTS[name]
    if item.get("datatype") != spec.datatype:
        raise BadRequest(f"input {name!r} must have datatype {spec.datatype}, got {item.get('datatype')!r}")
    shape, expected = item.get("shape"), spec.shape
    if (
        not isinstance(shape, list)
        or len(shape) != len(expected)
        or not all(type(dim) is int and dim >= 0 for dim in shape)
        or any(want not in (-1, dim) for want, dim in zip(expected, shape, strict=True))
    ):
        raise BadRequest(f"input {name!r} must have shape {expected} (-1: any), got {shape!r}")
    if name in binary:
        return shape, decode_tensor(name, spec.datatype, shape, binary[name])
    data = item.get("data")
    if not isinstance(data, list):
        raise BadRequest(f"input {name!r} needs a 'data' list (or binary data: parameters.binary_data_size)")
    data = flatten(name, data, len(shape))
    if len(data) != math.prod(shape):
        raise BadRequest(f"input {name!r}: shape {shape} needs {math.prod(shape)} values, got {len(data)}")
    return shape, data


def _binary_inputs(listed: list[dict], raw: memoryview) -> dict[str, memoryview]:
    """Cut the binary section into the inputs that declare binary_data_size, in their order in the body."""
    sliced, offset = {}, 0
    for item in listed:
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequest(f"input {item.get('name')!r}: 'parameters' must be an object")
        size = params.get("binary_data_size")
        if size is None:
            continue
        if type(size) is not int or size < 0:
            raise BadRequest(f"input {item.get('name')!r}: binary_data_size must be a byte count, got {size!r}")
        if offset + size > len(raw):
            raise BadRequest(f"input {item.get('name')!r}: binary_data_size {size} runs past the body's binary data")
        sliced[item.get("name")] = raw[offset : offset + size]
        offset += size
    if offset != len(raw):
        raise BadRequest(f"the body has {len(raw)} bytes of binary data, but the inputs declare {offset}")
    return sliced


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


def canvases(pixels: list | bytes, batch: int) -> list[torch.Tensor]:
    """Turn inline pixels, flat (B, 256, 256, 3), into canvases (3, 256, 256) uint8 (in a worker thread)."""
    if isinstance(pixels, bytes):  # binary data: already bytes of the right count (binary_data.decode_tensor)
        values = torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
        return list(values.view(batch, IMAGE_SIZE, IMAGE_SIZE, 3).permute(0, 3, 1, 2).contiguous())
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


def parse_infer(
    body: dict, settings: ServerSettings, loaded: LoadedModel, binary: memoryview | None = None
) -> ParsedInfer:
    """Validate an infer request (preprocess): the JSON body, and the binary tensor data after it if any."""
    listed = body.get("inputs")
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        raise BadRequest("the body needs an 'inputs' list of tensors")
    inputs = {item.get("name"): item for item in listed}
    unknown = set(inputs) - set(INPUTS)
    if unknown:
        raise BadRequest(f"unknown inputs {sorted(map(str, unknown))}; expected {sorted(INPUTS)}")
    if ("image_key" in inputs) == ("image" in inputs):
        raise BadRequest("send exactly one of the inputs 'image_key' and 'image' (both are optional, one is needed)")
    for name in ("bubbles", "noise_seed"):
        if name not in inputs:
            raise BadRequest(f"missing input {name!r} (required)")
    raw = _binary_inputs(listed, binary if binary is not None else memoryview(b""))
    shape, data = _tensor_input(inputs, "bubbles", raw)
    batch, count = shape[0], shape[1]
    if not 1 <= batch <= settings.max_items:
        raise BadRequest(f"a request holds 1..{settings.max_items} items, got {batch}")
    if count > settings.max_bubbles:
        raise BadRequest(f"too many bubbles: {count} per item, at most {settings.max_bubbles}")
    bubbles = _bubble_rows(data, batch, count)
    seed_shape, seeds = _tensor_input(inputs, "noise_seed", raw)
    _check_integers("noise_seed", seeds, 0, 2**63 - 1)
    keys, pixels = None, None
    if "image_key" in inputs:
        key_shape, keys = _tensor_input(inputs, "image_key", raw)
        if not all(isinstance(key, str) for key in keys):
            raise BadRequest("input 'image_key' must hold strings")
        sizes = [key_shape[0], seed_shape[0]]
    else:
        pixel_shape, pixels = _tensor_input(inputs, "image", raw)
        sizes = [pixel_shape[0], seed_shape[0]]
    if any(size != batch for size in sizes):
        raise BadRequest(f"inputs disagree on the batch size: bubbles {batch}, others {sizes}")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest("'parameters' must be an object")
    num_classes = len(loaded.classes)
    attention = _parameter(params, "attention", bool, False)
    outputs = _requested_outputs(body, params, loaded, attention)
    return ParsedInfer(
        keys=keys,
        pixels=pixels,
        bubbles=bubbles,
        seeds=seeds,
        top_k=_parameter(params, "top_k", int, min(5, num_classes), 1, num_classes),
        bubble_size=_parameter(params, "bubble_size", int, BUBBLE_SIZE, 1, IMAGE_SIZE),
        attention=any(output.name.startswith(ATTENTION_PREFIX) for output in outputs),
        priority=_priority(params),
        outputs=outputs,
    )


def _priority(params: dict) -> str:
    """Read the priority: our names, or the protocol's integer levels (0 the default, 1 the highest, 2 bulk)."""
    value = params.get("priority", PRIORITIES[0])
    if type(value) is int and 0 <= value <= len(PRIORITIES):
        return PRIORITIES[max(value, 1) - 1]
    if value not in PRIORITIES:
        raise BadRequest(f"parameter 'priority' must be one of {list(PRIORITIES)} or 0..2, got {value!r}")
    return value


def _requested_outputs(body: dict, params: dict, loaded: LoadedModel, attention: bool) -> tuple[RequestedOutput, ...]:
    """Return the outputs to answer: those the request names, else the top-k ones (and the maps with attention)."""
    binary = _parameter(params, "binary_data_output", bool, False)
    available = output_specs(loaded)
    listed = body.get("outputs")
    if listed is None:
        names = [*DEFAULT_OUTPUTS, *(name for name in available if attention and name.startswith(ATTENTION_PREFIX))]
        return tuple(RequestedOutput(name, binary) for name in names)
    if not isinstance(listed, list) or not all(isinstance(item, dict) for item in listed):
        raise BadRequest("'outputs' must be a list of objects with a 'name'")
    outputs = []
    for item in listed:
        name, output_params = item.get("name"), item.get("parameters") or {}
        if name not in available:
            raise BadRequest(f"unknown output {name!r}; this model answers {list(available)}")
        if not isinstance(output_params, dict):
            raise BadRequest(f"output {name!r}: 'parameters' must be an object")
        if output_params.get("classification"):
            raise BadRequest("the classification extension is not supported: outputs are top-k already (top_k)")
        outputs.append(RequestedOutput(name, _parameter(output_params, "binary_data", bool, binary)))
    if not outputs:
        raise BadRequest("'outputs' names no output")
    return tuple(outputs)


def infer_response(
    loaded: LoadedModel, prediction: Prediction, request_id: Any, outputs: tuple[RequestedOutput, ...]
) -> tuple[dict, list[bytes]]:
    """Turn a prediction into the OIP response (postprocess): the JSON header and the binary tensors after it."""
    shape = [len(prediction.indices), len(prediction.indices[0])]
    indices = [index for row in prediction.indices for index in row]
    tensors = {
        "classes": (shape, lambda: [loaded.classes[index] for index in indices]),
        "indices": (shape, lambda: indices),
        "probabilities": (shape, lambda: [value for row in prediction.probabilities for value in row]),
    }
    for number, (map_shape, data) in enumerate(prediction.attention):
        tensors[f"{ATTENTION_PREFIX}{number}"] = (map_shape, lambda data=data: data)
    specs = output_specs(loaded)
    answered, binary = [], []
    for output in outputs:
        tensor_shape, data = tensors[output.name]
        tensor = {"name": output.name, "datatype": specs[output.name].datatype, "shape": tensor_shape}
        if output.binary:
            packed = encode_tensor(tensor["datatype"], data())
            tensor["parameters"] = {"binary_data_size": len(packed)}
            binary.append(packed)
        else:
            tensor["data"] = data()
        answered.append(tensor)
    response = {"model_name": loaded.name, "model_version": loaded.version, "outputs": answered}
    if request_id is not None:
        response["id"] = request_id
    return response, binary


def parse_load(body: dict, registry: ModelRegistry, name: str) -> tuple[Path, str, bool]:
    """Validate a repository load body: checkpoint path, optional version name, activate flag.

    Our fields may come at the top level or, as KServe request parameters, under "parameters"; a body with
    no checkpoint (what a standard client's load_model sends) reloads the model's last checkpoint.
    """
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise BadRequest("'parameters' must be an object")
    fields = {**params, **body}
    checkpoint = fields.get("checkpoint", registry.last_checkpoint(name))
    version, activate = fields.get("version", ""), fields.get("activate", True)
    if not isinstance(checkpoint, str) or not checkpoint:
        raise BadRequest(f"the body needs a 'checkpoint' path: the server has no earlier checkpoint of {name!r}")
    if not isinstance(version, str) or not isinstance(activate, bool):
        raise BadRequest("'version' must be a string and 'activate' a boolean")
    if not Path(checkpoint).is_file():
        raise BadRequest(f"checkpoint {checkpoint!r} does not exist on the server")
    return Path(checkpoint), version, activate


def repository_state(registry: ModelRegistry, name: str, version: str) -> dict:
    """Describe a model's versions after a repository action."""
    try:
        active, versions = registry.active_version(name), registry.versions(name)
    except NotFound:  # the whole model was just unloaded
        active, versions = None, []
    return {"name": name, "version": version, "active_version": active, "versions": versions}
