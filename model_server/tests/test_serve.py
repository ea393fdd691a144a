"""The model server over real HTTP: health, metadata, inference, batching, caching and overload."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from model_server.network import load_checkpoint
from model_server.registry import decode_image
from model_server.reveal import noise_seed, pad_bubbles, reveal_batch
from model_server.serve import ServerSettings, parse_args
from model_server.tests.serving import (
    CLASSES,
    RunningServer,
    attention_sizes,
    infer_body,
    make_checkpoint,
    make_images,
    run_server,
)

BUBBLES = [[[128, 128], [20, 30], [250, 250]], [[5, 5], [-1, -1], [-1, -1]]]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    make_checkpoint(root / "v1.pt", "v1")
    make_images(root / "images")
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(checkpoint=root / "v1.pt", image_root=root / "images", max_delay_ms=30, workers=1)
    with run_server(settings) as running:
        yield running


def test_it_reports_live_and_ready(server: RunningServer) -> None:
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
    response = httpx.get(server.url + "/v2/health/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True}


def test_metadata_describes_inputs_outputs_versions_and_classes(server: RunningServer) -> None:
    meta = httpx.get(server.url + "/v2/models/partner").json()
    assert meta["name"] == "partner"
    assert meta["versions"] == ["v1"]
    assert meta["active_version"] == "v1"
    assert meta["classes"] == CLASSES
    assert {tensor["name"] for tensor in meta["inputs"]} == {"image_key", "image", "bubbles", "noise_seed"}
    assert {"classes", "indices", "probabilities"} <= {tensor["name"] for tensor in meta["outputs"]}
    assert httpx.get(server.url + "/v2/models/partner/versions/v1").json()["version"] == "v1"


def test_infer_answers_what_the_model_computes_in_process(server: RunningServer, root: Path) -> None:
    keys, seeds = ["birds/b.jpg", "birds/a.png"], [noise_seed(7, 0), noise_seed(7, 1)]
    body = infer_body(keys, BUBBLES, seeds, top_k=3)
    body["id"] = "request-1"
    response = httpx.post(server.url + "/v2/models/partner/infer", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == "v1"
    assert answer["id"] == "request-1"
    outputs = {output["name"]: output for output in answer["outputs"]}
    assert outputs["indices"]["shape"] == [2, 3]

    model, _ = load_checkpoint(root / "v1.pt")
    images = torch.stack([decode_image(root / "images" / key) for key in keys])
    bubbles, counts = pad_bubbles([[(128, 128), (20, 30), (250, 250)], [(5, 5)]])
    with torch.inference_mode():
        probabilities = model(reveal_batch(images, bubbles, counts, seeds)).softmax(1)
    top = probabilities.topk(3, dim=1)
    assert outputs["indices"]["data"] == top.indices.flatten().tolist()
    assert outputs["classes"]["data"] == [CLASSES[i] for i in top.indices.flatten().tolist()]
    assert torch.allclose(torch.tensor(outputs["probabilities"]["data"]), top.values.flatten(), atol=1e-5)


def test_pixels_sent_inline_give_the_same_answer_as_the_key(server: RunningServer, root: Path) -> None:
    by_key = httpx.post(server.url + "/v2/models/partner/infer", json=infer_body(["birds/c.png"], BUBBLES[:1], [3]))
    pixels = decode_image(root / "images" / "birds" / "c.png").permute(1, 2, 0)  # (256, 256, 3)
    body = infer_body(["unused"], BUBBLES[:1], [3])
    body["inputs"][0] = {
        "name": "image",
        "datatype": "UINT8",
        "shape": [1, 256, 256, 3],
        "data": pixels.flatten().tolist(),
    }
    inline = httpx.post(server.url + "/v2/models/partner/infer", json=body)
    assert inline.status_code == 200, inline.text
    assert inline.json()["outputs"][1] == by_key.json()["outputs"][1]


def test_attention_maps_come_back_when_asked(server: RunningServer) -> None:
    body = infer_body(["birds/a.png"], BUBBLES[:1], [1], attention=True)
    outputs = httpx.post(server.url + "/v2/models/partner/infer", json=body).json()["outputs"]
    maps = [output for output in outputs if output["name"].startswith("attention_")]
    assert [output["shape"] for output in maps] == [[1, 1, height, width] for height, width in attention_sizes()]


def test_repeated_image_keys_are_decoded_once(server: RunningServer) -> None:
    cache = server.state.images
    before = cache.stats()
    body = infer_body(["birds/c.png", "birds/c.png"], BUBBLES, [1, 2])
    for _ in range(3):
        assert httpx.post(server.url + "/v2/models/partner/infer", json=body).status_code == 200
    after = cache.stats()
    assert after["misses"] - before["misses"] <= 1  # at most the first request decodes it
    assert after["hits"] - before["hits"] >= 2


def test_concurrent_requests_are_merged_into_batches_up_to_the_maximum(root: Path) -> None:
    settings = ServerSettings(
        checkpoint=root / "v1.pt", image_root=root / "images", max_batch_size=4, max_delay_ms=500, workers=1
    )
    body, start = infer_body(["birds/a.png"], BUBBLES[:1], [1]), threading.Barrier(12)
    with run_server(settings) as running:

        def send(_: int) -> int:
            start.wait()
            return httpx.post(running.url + "/v2/models/partner/infer", json=body, timeout=30).status_code

        with ThreadPoolExecutor(12) as pool:
            assert list(pool.map(send, range(12))) == [200] * 12
        stats = running.state.batcher.stats()
    assert stats["batched_items"] == 12
    assert 3 <= stats["batches"] < 12  # merged, but never more than 4 items per batch


def test_a_full_queue_answers_503_at_once(root: Path) -> None:
    settings = ServerSettings(
        checkpoint=root / "v1.pt", image_root=root / "images", max_queue=1, max_delay_ms=1500, workers=1
    )
    with run_server(settings) as running, ThreadPoolExecutor(1) as pool:
        body = infer_body(["birds/a.png"], BUBBLES[:1], [1])
        url = running.url + "/v2/models/partner/infer"
        first = pool.submit(httpx.post, url, json=body)  # holds the only queue slot for 1.5 s
        deadline = time.monotonic() + 1.0
        while running.state.batcher.queued_items == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        started = time.perf_counter()
        second = httpx.post(url, json=body)
        assert second.status_code == 503
        assert "overloaded" in second.json()["error"]
        assert second.headers["Retry-After"] == "1"
        assert time.perf_counter() - started < 0.5  # answered at once, not after the 1.5 s batch delay
        assert first.result().status_code == 200


def test_image_files_become_the_central_256_square(tmp_path: Path) -> None:
    wide = np.zeros((300, 600, 3), dtype=np.uint8)
    wide[:, :100], wide[:, 100:500], wide[:, 500:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    canvas = decode_image(tmp_path / "wide.png")  # 600x300 -> 512x256 -> columns 128..383: green only
    assert canvas.shape == (3, 256, 256)
    assert canvas.dtype == torch.uint8
    assert canvas[1].min().item() == 255
    assert canvas[0].max().item() == 0


def test_settings_come_from_flags_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SERVER_CHECKPOINT", "/models/demo.pt")
    monkeypatch.setenv("MODEL_SERVER_MAX_BATCH_SIZE", "8")
    settings = parse_args(["--port", "9000", "--max-delay-ms", "2.5"])
    assert settings.checkpoint == Path("/models/demo.pt")
    assert (settings.max_batch_size, settings.port, settings.max_delay_ms) == (8, 9000, 2.5)
    with pytest.raises(SystemExit):
        parse_args(["--workers", "0"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_it_serves_on_the_gpu_in_bf16_and_channels_last(root: Path) -> None:
    settings = ServerSettings(checkpoint=root / "v1.pt", image_root=root / "images", device="cuda")
    with run_server(settings) as running:
        body = infer_body(["birds/a.png", "birds/b.jpg"], BUBBLES, [1, 2], attention=True)
        response = httpx.post(running.url + "/v2/models/partner/infer", json=body)
        assert response.status_code == 200, response.text
        loaded = running.state.registry.get("partner")
        assert loaded.device.type == "cuda"
        assert loaded.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
