"""Open Inference Protocol conformance: the standard v2 HTTP client (Triton's) drives every endpoint.

The client knows nothing of this project: what it needs comes from the server's metadata. The same tests run
against every architecture the server can load (config.PRESETS), each narrowed to random weights small enough
for a CPU, so a model kind that breaks the protocol (its attention outputs, say) fails here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from model_server.config import PRESETS, preset
from model_server.inference import infer as infer_in_process
from model_server.network import attention_shapes, build, save_checkpoint
from model_server.registry import load_model
from model_server.serve import ServerSettings
from model_server.tests.serving import CLASSES, make_images, run_server

MODEL = "partner"
TOKEN = "conformance-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUBBLES = np.array([[[128, 128], [20, 30], [250, 250]], [[5, 5], [-1, -1], [-1, -1]]], dtype=np.int32)
SEEDS = np.array([11, 2**62], dtype=np.int64)
KEYS = np.array([b"birds/a.png", b"birds/c.png"], dtype=np.object_)


def small_config(arch: str):
    """The architecture's own layout (stages, blocks, GALA placement) at a width a CPU test can afford."""
    return preset(arch, num_classes=len(CLASSES), widths=(4, 8, 8, 16), stem_width=8)


@dataclass
class Served:
    """A running server for one architecture, a standard client on it, and the model it serves."""

    client: triton.InferenceServerClient
    url: str
    arch: str
    checkpoint: Path
    pixels: np.ndarray  # (2, 256, 256, 3) uint8 test images


def skip_unless_attention_shapes_are_known(arch: str) -> None:
    """network.attention_shapes covers GALA at the block output so far; the newer kinds are a known gap."""
    config = preset(arch)
    if config.attention != "gala" or config.placement != "output":
        pytest.skip(f"attention outputs of {config.attention} at the block {config.placement} are not declared yet")


@pytest.fixture(scope="module", params=sorted(PRESETS))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    arch = request.param
    root = tmp_path_factory.mktemp(arch)
    torch.manual_seed(0)
    config = small_config(arch)
    save_checkpoint(root / "v1.pt", build(config), config, classes=CLASSES, version="v1")
    images = make_images(root / "images")
    settings = ServerSettings(
        checkpoint=root / "v1.pt", name=MODEL, image_root=images, admin_token=TOKEN, max_delay_ms=1, workers=1
    )
    pixels = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    with run_server(settings) as running:
        client = triton.InferenceServerClient(running.url.removeprefix("http://"), network_timeout=60)
        try:
            yield Served(client, running.url, arch, root / "v1.pt", pixels)
        finally:
            client.close()


def inputs(pixels: np.ndarray | None, *, binary: bool, keys: np.ndarray | None = None) -> list[triton.InferInput]:
    """Build the request's inputs as any client would from the metadata: one image input, bubbles, seeds."""
    image = (
        triton.InferInput("image_key", [len(keys)], "BYTES").set_data_from_numpy(keys, binary_data=binary)
        if keys is not None
        else triton.InferInput("image", list(pixels.shape), "UINT8").set_data_from_numpy(pixels, binary_data=binary)
    )
    return [
        image,
        triton.InferInput("bubbles", list(BUBBLES.shape), "INT32").set_data_from_numpy(BUBBLES, binary_data=binary),
        triton.InferInput("noise_seed", list(SEEDS.shape), "INT64").set_data_from_numpy(SEEDS, binary_data=binary),
    ]


def expected_top5(served: Served) -> tuple[np.ndarray, np.ndarray]:
    """The top-5 indices and probabilities the model computes in process for the test pixels."""
    loaded = load_model(MODEL, served.checkpoint, torch.device("cpu"))
    images = torch.from_numpy(served.pixels).permute(0, 3, 1, 2)
    # In a thread of its own, as the server's workers: infer keeps per-thread buffers made under inference mode,
    # which later in-place work outside it on the test thread (test_reveal) could not use.
    with ThreadPoolExecutor(1) as pool:
        indices, probabilities, _ = pool.submit(
            infer_in_process,
            *(loaded, images, torch.from_numpy(BUBBLES), SEEDS.tolist()),
            bubble_size=21,
            top_k=5,
            attention=False,
        ).result()
    return indices.numpy(), probabilities.numpy()


def test_the_server_is_live_ready_and_names_the_extensions_it_implements(served: Served) -> None:
    assert served.client.is_server_live()
    assert served.client.is_server_ready()
    meta = served.client.get_server_metadata()
    assert meta["name"] == "clickme-partner"
    assert {"binary_tensor_data", "model_configuration", "model_repository", "statistics"} <= set(meta["extensions"])


def test_the_model_and_its_version_are_ready(served: Served) -> None:
    assert served.client.is_model_ready(MODEL)
    assert served.client.is_model_ready(MODEL, "v1")
    assert not served.client.is_model_ready(MODEL, "v9")
    assert not served.client.is_model_ready("nobody")


def test_metadata_says_which_inputs_are_optional_and_declares_every_attention_output(served: Served) -> None:
    meta = served.client.get_model_metadata(MODEL)
    assert meta["versions"] == ["v1"]
    optional = {tensor["name"]: tensor["parameters"]["optional"] for tensor in meta["inputs"]}
    assert optional == {"image_key": True, "image": True, "bubbles": False, "noise_seed": False}
    assert all("exactly one of" in tensor["parameters"]["description"] for tensor in meta["inputs"][:2])
    maps = [tensor for tensor in meta["outputs"] if tensor["name"].startswith("attention_")]
    sizes = attention_shapes(small_config(served.arch))
    assert [tensor["shape"] for tensor in maps] == [[-1, 1, height, width] for height, width in sizes]
    assert meta["parameters"]["top_k"] == 5
    assert served.client.get_model_metadata(MODEL, "v1")["version"] == "v1"


def test_an_unknown_model_has_no_metadata(served: Served) -> None:
    with pytest.raises(InferenceServerException, match="unknown model 'nobody'") as error:
        served.client.get_model_metadata("nobody")
    assert error.value.status() == "404"


def test_the_configuration_marks_the_image_inputs_optional_as_triton_does(served: Served) -> None:
    config = served.client.get_model_config(MODEL)
    assert config["name"] == MODEL
    assert [tensor.get("optional", False) for tensor in config["input"]] == [True, True, False, False]
    assert config["input"][1] == {"name": "image", "data_type": "TYPE_UINT8", "dims": [256, 256, 3], "optional": True}
    assert {tensor["name"] for tensor in config["output"]} >= {"classes", "indices", "probabilities"}


def test_the_clients_default_binary_request_answers_what_the_model_computes(served: Served) -> None:
    result = served.client.infer(MODEL, inputs(served.pixels, binary=True), request_id="binary-1")
    response = result.get_response()
    assert response["id"] == "binary-1"
    assert response["model_version"] == "v1"
    assert all("binary_data_size" in output["parameters"] for output in response["outputs"])
    indices, probabilities = expected_top5(served)
    assert (result.as_numpy("indices") == indices).all()
    assert np.allclose(result.as_numpy("probabilities"), probabilities, atol=1e-5)
    assert result.as_numpy("classes").tolist() == [[CLASSES[i].encode() for i in row] for row in indices]


def test_json_tensors_give_the_same_answer_as_binary_ones(served: Served) -> None:
    outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("classes", "indices", "probabilities")]
    as_json = served.client.infer(MODEL, inputs(served.pixels, binary=False), outputs=outputs)
    as_binary = served.client.infer(MODEL, inputs(served.pixels, binary=True))
    assert all("data" in output for output in as_json.get_response()["outputs"])
    assert (as_json.as_numpy("indices") == as_binary.as_numpy("indices")).all()
    # The client gives JSON strings as str and binary BYTES as bytes.
    assert as_json.as_numpy("classes").tolist() == [
        [name.decode() for name in row] for row in as_binary.as_numpy("classes")
    ]
    assert np.allclose(as_json.as_numpy("probabilities"), as_binary.as_numpy("probabilities"), atol=1e-6)


def test_image_keys_travel_as_binary_bytes_tensors(served: Served) -> None:
    by_key = served.client.infer(MODEL, inputs(None, binary=True, keys=KEYS))
    as_json = served.client.infer(MODEL, inputs(None, binary=False, keys=KEYS))
    assert by_key.as_numpy("indices").shape == (2, 5)
    assert (by_key.as_numpy("indices") == as_json.as_numpy("indices")).all()


def test_only_the_requested_outputs_come_back(served: Served) -> None:
    outputs = [triton.InferRequestedOutput("probabilities")]
    result = served.client.infer(MODEL, inputs(served.pixels, binary=True), outputs=outputs)
    assert [output["name"] for output in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("classes") is None


def test_attention_outputs_are_requested_by_the_names_the_metadata_declares(served: Served) -> None:
    skip_unless_attention_shapes_are_known(served.arch)
    declared = served.client.get_model_metadata(MODEL)["outputs"]
    maps = [tensor for tensor in declared if tensor["name"].startswith("attention_")]
    outputs = [triton.InferRequestedOutput(tensor["name"]) for tensor in [*maps, declared[0]]]
    result = served.client.infer(MODEL, inputs(served.pixels, binary=True), outputs=outputs)
    assert [output["name"] for output in result.get_response()["outputs"]] == [t["name"] for t in [*maps, declared[0]]]
    for tensor in maps:
        gate = result.as_numpy(tensor["name"])
        assert list(gate.shape) == [2, *tensor["shape"][1:]]
        assert gate.dtype == np.float32


def test_an_unknown_output_is_a_400_naming_it(served: Served) -> None:
    outputs = [triton.InferRequestedOutput("logits")]
    with pytest.raises(InferenceServerException, match="unknown output 'logits'") as error:
        served.client.infer(MODEL, inputs(served.pixels, binary=True), outputs=outputs)
    assert error.value.status() == "400"


def test_a_bad_request_is_a_400_with_the_servers_message(served: Served) -> None:
    both = [*inputs(served.pixels, binary=True), *inputs(None, binary=True, keys=KEYS)[:1]]
    with pytest.raises(InferenceServerException, match="exactly one of the inputs") as error:
        served.client.infer(MODEL, both)
    assert error.value.status() == "400"


def test_the_protocols_integer_priority_and_timeout_are_accepted(served: Served) -> None:
    result = served.client.infer(MODEL, inputs(served.pixels, binary=True), priority=2, timeout=10_000_000)
    assert result.as_numpy("indices").shape == (2, 5)


def test_statistics_count_the_items_inferred_per_model_version(served: Served) -> None:
    before = served.client.get_inference_statistics(MODEL)["model_stats"][0]
    served.client.infer(MODEL, inputs(served.pixels, binary=True))
    after = served.client.get_inference_statistics(MODEL, "v1")["model_stats"][0]
    assert (after["name"], after["version"]) == (MODEL, "v1")
    assert after["inference_count"] == before["inference_count"] + 2
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    every = served.client.get_inference_statistics()["model_stats"]
    assert [(entry["name"], entry["version"]) for entry in every] == [(MODEL, "v1")]


def test_the_repository_index_unload_and_load_need_the_token(served: Served) -> None:
    for call in (
        lambda **auth: served.client.get_model_repository_index(**auth),
        lambda **auth: served.client.unload_model(MODEL, **auth),
        lambda **auth: served.client.load_model(MODEL, **auth),
    ):
        with pytest.raises(InferenceServerException, match="admin bearer token") as error:
            call()
        assert error.value.status() == "401"
    assert served.client.get_model_repository_index(headers=AUTH) == [
        {"name": MODEL, "version": "v1", "state": "READY"}
    ]


def test_a_model_unloaded_and_loaded_again_by_the_client_serves_again(served: Served) -> None:
    served.client.unload_model(MODEL, headers=AUTH)
    assert not served.client.is_model_ready(MODEL)
    assert not served.client.is_server_ready()
    assert served.client.get_model_repository_index(headers=AUTH) == [
        {"name": MODEL, "state": "UNAVAILABLE", "reason": "unloaded"}
    ]
    served.client.load_model(MODEL, headers=AUTH)  # no config: the model's last checkpoint again
    assert served.client.is_model_ready(MODEL)
    assert served.client.infer(MODEL, inputs(served.pixels, binary=True)).as_numpy("indices").shape == (2, 5)


def guess_with_the_standard_client(url: str, model: str) -> list[str]:
    """Ask the partner for its top 3 guesses with nothing but the standard client (docs/model-server.md)."""
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)  # host:port, e.g. "127.0.0.1:8001"
    assert client.is_server_ready() and client.is_model_ready(model)
    pixels = np.zeros((1, 256, 256, 3), dtype=np.uint8)  # the 256x256 RGB canvas (or send "image_key")
    bubbles = np.array([[[128, 128], [140, 120]]], dtype=np.int32)  # (x, y) centres, padded with (-1, -1)
    seeds = np.array([42], dtype=np.int64)  # the same seed gives the same hidden-pixel noise
    inputs = [
        httpclient.InferInput("image", [1, 256, 256, 3], "UINT8"),
        httpclient.InferInput("bubbles", [1, 2, 2], "INT32"),
        httpclient.InferInput("noise_seed", [1], "INT64"),
    ]
    for tensor, data in zip(inputs, (pixels, bubbles, seeds), strict=True):
        tensor.set_data_from_numpy(data)  # binary tensor data, the client's default
    outputs = [httpclient.InferRequestedOutput("classes"), httpclient.InferRequestedOutput("probabilities")]
    result = client.infer(model, inputs, outputs=outputs, parameters={"top_k": 3})
    client.close()
    return [name.decode() for name in result.as_numpy("classes")[0]]


def test_the_documented_example_runs_and_is_in_the_docs_verbatim(served: Served) -> None:
    guesses = guess_with_the_standard_client(served.url.removeprefix("http://"), MODEL)
    assert len(guesses) == 3
    assert set(guesses) <= set(CLASSES)
    docs = (Path(__file__).parents[2] / "docs" / "model-server.md").read_text()
    assert inspect.getsource(guess_with_the_standard_client) in docs
