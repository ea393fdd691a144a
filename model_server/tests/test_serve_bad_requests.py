"""Every kind of bad request gets a 4xx JSON error that names the problem, and nothing breaks."""

from __future__ import annotations

import copy
import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from model_server.protocol import canvases
from model_server.registry import BadRequest
from model_server.serve import ServerSettings
from model_server.tests.serving import RunningServer, infer_body, make_checkpoint, make_images, run_server

GOOD = infer_body(["birds/a.png"], [[[10, 10], [-1, -1]]], [1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("bad")
    images = make_images(root / "images")
    os.symlink(root, images / "escape")  # a symlink out of the image root
    settings = ServerSettings(
        checkpoint=make_checkpoint(root / "v1.pt", "v1"), image_root=images, max_body_bytes=256 * 1024
    )
    with run_server(settings) as running:
        yield running


def changed(edit: Callable[[dict], object]) -> dict:
    """Return a copy of the good request with one edit applied."""
    body = copy.deepcopy(GOOD)
    edit(body)
    return body


def key(name: str) -> dict:
    """Return the good request naming another image key."""
    return changed(lambda body: body["inputs"][0].update(data=[name]))


def bubbles(shape: list[int], data: list, datatype: str = "INT32") -> dict:
    """Return the good request with other bubbles."""
    return changed(lambda body: body["inputs"][1].update(shape=shape, data=data, datatype=datatype))


CASES = {
    "absolute key": (key("/etc/passwd"), "unsafe image key"),
    "dot-dot key": (key("birds/../../v1.pt"), "unsafe image key"),
    "backslash key": (key("birds\\a.png"), "unsafe image key"),
    "symlink out of the root": (key("escape/v1.pt"), "leaves the image root"),
    "unknown key": (key("birds/missing.png"), "unknown image key"),
    "not an image suffix": (key("notes.txt"), "not an image file"),
    "not an image inside": (key("birds/fake.png"), "not a readable image"),
    "wrong bubbles shape": (bubbles([1, 4], [1, 2, 3, 4]), "must have shape"),
    "wrong bubbles dtype": (bubbles([1, 1, 2], [1.0, 2.0], "FP32"), "datatype INT32"),
    "float data": (bubbles([1, 1, 2], [1.5, 2.0]), "must hold integers"),
    "data size mismatch": (bubbles([1, 2, 2], [1, 2]), "needs 4 values"),
    "too many bubbles": (bubbles([1, 501, 2], [5] * 1002), "too many bubbles"),
    "x out of range": (bubbles([1, 1, 2], [256, 3]), "outside -1..255"),
    "negative coordinate": (bubbles([1, 2, 2], [3, -1, 5, 5]), "out of range"),
    "missing seeds": (changed(lambda body: body["inputs"].pop(2)), "missing input 'noise_seed'"),
    "no image": (changed(lambda body: body["inputs"].pop(0)), "exactly one of"),
    "unknown input": (changed(lambda body: body["inputs"][0].update(name="picture")), "unknown inputs"),
    "batch mismatch": (changed(lambda body: body["inputs"][2].update(shape=[2], data=[1, 2])), "batch size"),
    "top_k too large": (changed(lambda body: body.update(parameters={"top_k": 11})), "'top_k' must be in"),
    "attention not a bool": (changed(lambda body: body.update(parameters={"attention": 1})), "'attention'"),
    "unknown priority": (
        changed(lambda body: body.update(parameters={"priority": "urgent"})),
        "'priority' must be one",
    ),
    "not an object": ([1, 2, 3], "JSON object"),
}


@pytest.mark.parametrize(("body", "message"), CASES.values(), ids=CASES.keys())
def test_bad_infer_requests_get_400_naming_the_problem(server: RunningServer, body: object, message: str) -> None:
    response = httpx.post(server.url + "/v2/models/partner/infer", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize("body", [GOOD, bubbles([1, 0, 2], [])], ids=["with bubbles", "no bubbles yet"])
def test_good_requests_pass(server: RunningServer, body: dict) -> None:
    assert httpx.post(server.url + "/v2/models/partner/infer", json=body).status_code == 200


def test_malformed_json_gets_400(server: RunningServer) -> None:
    response = httpx.post(server.url + "/v2/models/partner/infer", content=b'{"inputs": [')
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]


def test_an_oversized_body_gets_413(server: RunningServer) -> None:
    body = bubbles([1, 100_000, 2], [5] * 200_000)  # about 600 KB, over the 256 KB limit
    response = httpx.post(server.url + "/v2/models/partner/infer", json=body)
    assert response.status_code == 413
    assert "Maximum request body size" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/nobody/infer", "unknown model 'nobody'"),
        ("/v2/models/partner/versions/v9/infer", "has no version 'v9'"),
        ("/v2/nowhere", "Not Found: POST /v2/nowhere"),
    ],
)
def test_unknown_models_versions_and_routes_get_404(server: RunningServer, path: str, message: str) -> None:
    response = httpx.post(server.url + path, json=GOOD)
    assert response.status_code == 404
    assert message in response.json()["error"]


def test_loading_a_missing_checkpoint_gets_400(server: RunningServer, tmp_path: Path) -> None:
    body = {"checkpoint": str(tmp_path / "missing.pt")}
    response = httpx.post(server.url + "/v2/repository/models/partner/load", json=body)
    assert response.status_code == 400
    assert "does not exist" in response.json()["error"]


def test_loading_a_file_that_is_not_a_checkpoint_gets_400(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk")
    response = httpx.post(
        server.url + "/v2/repository/models/partner/load", json={"checkpoint": str(tmp_path / "junk.pt")}
    )
    assert response.status_code == 400
    assert "cannot load checkpoint" in response.json()["error"]
    assert httpx.post(server.url + "/v2/models/partner/infer", json=GOOD).status_code == 200


@pytest.mark.parametrize(
    ("value", "message"), [(256, "outside 0..255"), (1.5, "must hold integers"), ("x", "must hold integers")]
)
def test_inline_pixels_must_be_bytes(value: object, message: str) -> None:
    pixels = [0] * (256 * 256 * 3 - 1) + [value]
    with pytest.raises(BadRequest, match=message):
        canvases(pixels, 1)


def binary_request(header_length: str | None, sizes: dict[str, int], data: bytes) -> tuple[bytes, dict[str, str]]:
    """Return a body with the good request as JSON header, the given binary_data_size per input, then data."""
    body = copy.deepcopy(GOOD)
    for tensor in body["inputs"]:
        if tensor["name"] in sizes:
            tensor.pop("data")
            tensor["parameters"] = {"binary_data_size": sizes[tensor["name"]]}
    text = json.dumps(body).encode()
    length = str(len(text)) if header_length == "right" else header_length
    headers = {"Inference-Header-Content-Length": length} if length is not None else {}
    return text + data, headers


SEED = struct.pack("<q", 1)
BINARY_CASES = {
    "binary data without the header": (binary_request(None, {"noise_seed": 8}, SEED), "needs the Inference-Header"),
    "header not a number": (binary_request("many", {"noise_seed": 8}, SEED), "must be a byte count"),
    "header past the body": (binary_request("99999", {"noise_seed": 8}, SEED), "but the body has"),
    "sizes past the data": (binary_request("right", {"noise_seed": 16}, SEED), "runs past"),
    "data the inputs do not declare": (binary_request("right", {"noise_seed": 8}, SEED + SEED), "inputs declare 8"),
    "wrong byte count for the shape": (binary_request("right", {"noise_seed": 4}, SEED[:4]), "needs 8 bytes"),
    "a BYTES length cut short": (binary_request("right", {"image_key": 2}, b"\x05\x00"), "cut short"),
    "a BYTES element past the data": (binary_request("right", {"image_key": 5}, b"\x09\x00\x00\x00a"), "runs past"),
}


@pytest.mark.parametrize(("request_", "message"), BINARY_CASES.values(), ids=BINARY_CASES.keys())
def test_bad_binary_tensor_data_gets_400_naming_the_problem(
    server: RunningServer, request_: tuple[bytes, dict[str, str]], message: str
) -> None:
    content, headers = request_
    response = httpx.post(server.url + "/v2/models/partner/infer", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_data_that_mixes_nested_lists_and_values_gets_400(server: RunningServer) -> None:
    response = httpx.post(server.url + "/v2/models/partner/infer", json=bubbles([1, 2, 2], [[1, 2], 3, 4]))
    assert response.status_code == 400
    assert "mixes nested lists and values" in response.json()["error"]
