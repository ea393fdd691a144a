"""The partner client: answers, errors, bounded retries, and no torch import."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model_server.client import (
    GuessItem,
    PartnerClient,
    PartnerError,
    PartnerRequestError,
    PartnerUnavailable,
)
from model_server.serve import ServerSettings
from model_server.tests.serving import CLASSES, RunningServer, attention_sizes, make_checkpoint, make_images, run_server

ITEMS = [GuessItem("birds/a.png", [(100, 100), (0, 255), (30, 40)], seed=5), GuessItem("birds/c.png", [], seed=6)]
ANSWER = {
    "model_name": "partner",
    "model_version": "v7",
    "outputs": [
        {"name": "classes", "datatype": "BYTES", "shape": [1, 2], "data": ["cat", "dog"]},
        {"name": "indices", "datatype": "INT64", "shape": [1, 2], "data": [3, 1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.7, 0.2]},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("client")
    settings = ServerSettings(checkpoint=make_checkpoint(root / "v1.pt", "v1"), image_root=make_images(root / "images"))
    with run_server(settings) as running:
        yield running


def scripted(*replies: int | Exception) -> tuple[PartnerClient, list[httpx.Request]]:
    """Return a client whose transport answers with the given statuses (or raises) in order."""
    requests: list[httpx.Request] = []
    answers = iter(replies)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        reply = next(answers)
        if isinstance(reply, Exception):
            raise reply
        body = ANSWER if reply == 200 else {"error": f"status {reply}"}
        return httpx.Response(reply, json=body)

    client = PartnerClient("http://partner", retries=2, backoff=0.001, transport=httpx.MockTransport(handle))
    return client, requests


def test_it_guesses_over_real_http(server: RunningServer) -> None:
    with PartnerClient(server.url) as client:
        assert client.ready()
        assert client.metadata("partner")["classes"] == CLASSES
        guesses = client.guess("partner", ITEMS, top_k=3)
    assert len(guesses) == 2
    for guess in guesses:
        assert guess.model_version == "v1"
        assert guess.classes == [CLASSES[index] for index in guess.indices]
        assert guess.probabilities == sorted(guess.probabilities, reverse=True)
        assert len(guess.indices) == 3


def test_it_returns_attention_maps_per_item(server: RunningServer) -> None:
    with PartnerClient(server.url) as client:
        guesses = client.guess("partner", ITEMS, top_k=1, attention=True)
    sizes = [(len(grid), len(grid[0])) for grid in guesses[1].attention]
    assert sizes == attention_sizes()


def test_a_refused_request_raises_with_the_servers_message(server: RunningServer) -> None:
    with PartnerClient(server.url) as client, pytest.raises(PartnerRequestError, match="unknown image key") as error:
        client.guess("partner", [GuessItem("birds/none.png", [], seed=1)])
    assert error.value.status == 400


def test_a_server_that_is_down_is_unavailable_after_bounded_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with PartnerClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.001) as client:
        assert not client.ready()
        with pytest.raises(PartnerUnavailable, match="after 3 tries"):
            client.guess("partner", ITEMS)


def test_503_and_timeouts_are_retried_then_succeed() -> None:
    client, requests = scripted(503, httpx.ReadTimeout("slow"), 200)
    [guess] = client.guess("partner", ITEMS[:1], top_k=2)
    assert len(requests) == 3
    assert guess.classes == ["cat", "dog"]
    assert guess.model_version == "v7"
    sent = json.loads(requests[0].content)
    assert sent["inputs"][1]["shape"] == [1, 3, 2]
    assert sent["parameters"] == {"top_k": 2, "bubble_size": 21, "attention": False, "priority": "interactive"}


def test_overload_that_persists_raises_unavailable() -> None:
    client, requests = scripted(503, 503, 503)
    with pytest.raises(PartnerUnavailable, match="503"):
        client.guess("partner", ITEMS)
    assert len(requests) == 3


@pytest.mark.parametrize(
    ("status", "error"), [(400, PartnerRequestError), (404, PartnerRequestError), (500, PartnerError)]
)
def test_client_and_server_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    client, requests = scripted(status)
    with pytest.raises(error, match=f"status {status}"):
        client.guess("partner", ITEMS)
    assert len(requests) == 1


def test_importing_the_client_does_not_import_torch() -> None:
    code = "import sys, model_server.client; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
