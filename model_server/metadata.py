"""What the server says about itself and its models: server metadata, model metadata and model configuration.

Model metadata is the protocol's (name, versions, platform, inputs, outputs) plus what a client needs to build
a request without reading our code: per tensor, `parameters` with `optional` and a description (which inputs
are alternatives), and the defaults of the request parameters. The configuration follows Triton's model
configuration JSON (the model_configuration extension), where optional inputs carry `"optional": true`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model_server import __version__
from model_server.protocol import output_specs
from model_server.registry import LoadedModel, ModelRegistry
from model_server.reveal import BUBBLE_SIZE
from model_server.wire import INPUTS, PRIORITIES, TensorSpec

if TYPE_CHECKING:  # serve.py imports this module; the settings type is only for annotations
    from model_server.serve import ServerSettings

SERVER_NAME = "clickme-partner"
# Triton's names for the extensions this server implements (server metadata lists them).
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics", "parameters"]
# Triton's model configuration names of the protocol's datatypes.
CONFIG_TYPES = {"BYTES": "TYPE_STRING", "UINT8": "TYPE_UINT8", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64",
                "FP32": "TYPE_FP32"}  # fmt: skip
PARAMETERS = {  # request parameter: (description, default as a function of the model)
    "top_k": "Guesses returned per item, 1..number of classes.",
    "bubble_size": "Side of a bubble's square, in canvas pixels.",
    "attention": "With no 'outputs' listed, also return every attention_* output.",
    "priority": "'interactive' (a participant waits) or 'bulk' (re-scoring); or the protocol's 0 (default), 1, 2.",
    "binary_data_output": "Return the outputs as binary tensor data (binary_tensor_data extension).",
}


def server_metadata() -> dict:
    """GET /v2: the server's name, version and the protocol extensions it implements."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def parameter_defaults(loaded: LoadedModel) -> dict:
    """Return the default of each request parameter for this model."""
    return {
        "top_k": min(5, len(loaded.classes)),
        "bubble_size": BUBBLE_SIZE,
        "attention": False,
        "priority": PRIORITIES[0],
        "binary_data_output": False,
    }


def _tensor(name: str, spec: TensorSpec) -> dict:
    """Describe one tensor for metadata: the protocol's fields, then ours under parameters."""
    return {
        "name": name,
        "datatype": spec.datatype,
        "shape": spec.shape,
        "parameters": {"optional": spec.optional, "description": spec.description},
    }


def model_metadata(loaded: LoadedModel, registry: ModelRegistry, settings: ServerSettings) -> dict:
    """GET /v2/models/{name}[/versions/{version}]: the protocol's metadata, class names and request limits."""
    defaults = parameter_defaults(loaded)
    return {
        "name": loaded.name,
        "versions": registry.versions(loaded.name),
        "active_version": registry.active_version(loaded.name),
        "version": loaded.version,
        "platform": "pytorch",
        "arch": loaded.arch,
        "inputs": [_tensor(name, spec) for name, spec in INPUTS.items()],
        "outputs": [_tensor(name, spec) for name, spec in output_specs(loaded).items()],
        "classes": list(loaded.classes),
        # Defaults of the request parameters, and the limits a request must keep.
        "parameters": {**defaults, "max_bubbles": settings.max_bubbles, "max_items": settings.max_items},
        "parameter_descriptions": PARAMETERS,
    }


def _config_tensor(name: str, spec: TensorSpec) -> dict:
    """Describe one tensor as Triton's configuration does: dims without the batch dimension."""
    tensor = {"name": name, "data_type": CONFIG_TYPES[spec.datatype], "dims": spec.shape[1:] or [1]}
    if not spec.shape[1:]:  # one value per item: Triton writes dims [1] reshaped to a scalar
        tensor["reshape"] = {"shape": []}
    if spec.optional:
        tensor["optional"] = True
    return tensor


def model_config(loaded: LoadedModel, settings: ServerSettings) -> dict:
    """GET /v2/models/{name}[/versions/{version}]/config: Triton-style configuration of a model version."""
    return {
        "name": loaded.name,
        "platform": "pytorch",
        "backend": "pytorch",
        "max_batch_size": settings.max_items,
        "input": [_config_tensor(name, spec) for name, spec in INPUTS.items()],
        "output": [_config_tensor(name, spec) for name, spec in output_specs(loaded).items()],
        "dynamic_batching": {
            "max_queue_delay_microseconds": round(settings.max_delay_ms * 1000),
            "preferred_batch_size": [settings.max_batch_size],
            "priority_levels": len(PRIORITIES),
            "default_priority_level": 1,
        },
        "parameters": {name: {"string_value": str(value)} for name, value in parameter_defaults(loaded).items()},
    }
