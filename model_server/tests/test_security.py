"""The model server's edge: repository endpoints behind the admin token, no exposed server without one,
and JSON that is too deep or carries numbers as strings refused with a 400 that names the problem."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model_server.serve import ServerSettings, parse_args
from model_server.tests.serving import RunningServer, infer_body, make_checkpoint, make_images, run_server

TOKEN = "s3cret-admin-token"
GOOD = infer_body(["birds/a.png"], [[[10, 10], [20, 20]]], [1], top_k=2)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("security")
    make_checkpoint(root / "v1.pt", "v1")
    make_checkpoint(root / "v2.pt", "v2", seed=2)
    make_images(root / "images")
    return root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(checkpoint=root / "v1.pt", image_root=root / "images", admin_token=TOKEN)
    with run_server(settings) as running:
        yield running


REPOSITORY_CALLS = {
    "index": ("/v2/repository/index", {}),
    "load": ("/v2/repository/models/partner/load", {"checkpoint": "v2.pt", "activate": False}),
    "activate": ("/v2/repository/models/partner/activate", {"version": "v1"}),
    "unload one version": ("/v2/repository/models/partner/unload", {"version": "v2"}),
    "unload the model": ("/v2/repository/models/partner/unload", {}),
}


@pytest.mark.parametrize(("path", "body"), REPOSITORY_CALLS.values(), ids=REPOSITORY_CALLS.keys())
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN, f"Basic {TOKEN}"])
def test_every_repository_endpoint_refuses_requests_without_the_admin_token(
    server: RunningServer, path: str, body: dict, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(server.url + path, json=body, headers=headers)
    assert response.status_code == 401
    assert "admin bearer token" in response.json()["error"]
    assert server.state.registry.active_version("partner") == "v1"  # nothing changed


def test_the_repository_answers_with_the_admin_token(server: RunningServer, root: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"checkpoint": str(root / "v2.pt"), "activate": False}
    assert httpx.post(server.url + "/v2/repository/models/partner/load", json=body, headers=headers).status_code == 200
    unload = httpx.post(server.url + "/v2/repository/models/partner/unload", json={"version": "v2"}, headers=headers)
    assert unload.json()["versions"] == ["v1"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "model.internal", ""])
def test_the_server_refuses_to_start_on_a_reachable_host_without_a_token(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--checkpoint", "demo.pt", "--host", host])
    assert "--admin-token" in capsys.readouterr().err
    assert parse_args(["--checkpoint", "demo.pt", "--host", host, "--admin-token", TOKEN]).host == host
    assert parse_args(["--checkpoint", "demo.pt", "--host", "127.0.0.1"]).admin_token == ""


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"inputs": [], "parameters": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    ],
    ids=["a nesting bomb", "deep inside the parameters"],
)
def test_deeply_nested_json_is_a_400_naming_the_problem(server: RunningServer, body: bytes) -> None:
    for path in ("/v2/models/partner/infer", "/v2/repository/index"):
        response = httpx.post(server.url + path, content=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 400
        assert "nested too deeply" in response.json()["error"]


def test_tensor_data_nested_deeper_than_its_shape_is_a_400(server: RunningServer) -> None:
    body = copy.deepcopy(GOOD)
    body["inputs"][2]["data"] = [[[1]]]  # noise_seed has shape [1]
    response = httpx.post(server.url + "/v2/models/partner/infer", json=body)
    assert response.status_code == 400
    assert "nested deeper than its shape" in response.json()["error"]


@pytest.mark.parametrize(
    ("where", "edit", "message"),
    [
        ("a bubble coordinate", lambda body: body["inputs"][1]["data"][0][0].__setitem__(0, "5"), "must hold integers"),
        ("a noise seed", lambda body: body["inputs"][2].update(data=["1"]), "must hold integers"),
        ("a shape", lambda body: body["inputs"][2].update(shape=["1"]), "must have shape"),
        ("top_k", lambda body: body["parameters"].update(top_k="2"), "'top_k' must be a int"),
        ("bubble_size", lambda body: body["parameters"].update(bubble_size="21"), "'bubble_size' must be a int"),
    ],
)
def test_a_number_sent_as_a_string_is_a_400(server: RunningServer, where: str, edit, message: str) -> None:
    body = copy.deepcopy(GOOD)
    edit(body)
    response = httpx.post(server.url + "/v2/models/partner/infer", json=body)
    assert response.status_code == 400, where
    assert message in response.json()["error"]
