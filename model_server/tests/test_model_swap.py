"""Loading and activating model versions at run time, under load, drops no request."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_server.client import GuessItem, PartnerClient, PartnerError, PartnerRequestError
from model_server.serve import ServerSettings
from model_server.tests.serving import RunningServer, make_checkpoint, make_images, run_server

ITEMS = [GuessItem("birds/a.png", [(100, 100), (120, 110)], seed=1), GuessItem("birds/b.jpg", [], seed=2)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("swap")
    make_checkpoint(root / "v1.pt", "v1", seed=1)
    make_checkpoint(root / "v2.pt", "v2", seed=2)
    make_images(root / "images")
    return root


@pytest.fixture
def server(root: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(checkpoint=root / "v1.pt", image_root=root / "images", max_delay_ms=2)
    with run_server(settings) as running:
        yield running


def test_swapping_the_active_version_under_load_drops_no_request(server: RunningServer, root: Path) -> None:
    stop, lock = threading.Event(), threading.Lock()
    seen: Counter[str] = Counter()
    failures: list[PartnerError] = []

    def keep_guessing() -> None:
        with PartnerClient(server.url, retries=0, timeout=30) as client:
            while not stop.is_set():
                try:
                    guesses = client.guess("partner", ITEMS, top_k=2)
                except PartnerError as error:
                    failures.append(error)
                    continue
                with lock:
                    seen.update(guess.model_version for guess in guesses)

    def answered() -> int:
        with lock:
            return sum(seen.values())

    threads = [threading.Thread(target=keep_guessing) for _ in range(4)]
    for thread in threads:
        thread.start()
    admin = PartnerClient(server.url)
    try:
        for step, version in enumerate(["v2", "v1", "v2", "v1"]):
            before = answered()
            while answered() < before + 8:  # let requests flow around every swap
                time.sleep(0.01)
            if step == 0:
                state = admin.load_version("partner", str(root / "v2.pt"), activate=True)
            else:
                state = admin.activate("partner", version)
            assert state["active_version"] == version
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert seen["v1"] > 0
    assert seen["v2"] > 0
    assert {guess.model_version for guess in admin.guess("partner", ITEMS)} == {"v1"}
    admin.close()


def test_a_version_can_be_asked_for_by_name_and_unloaded_when_inactive(server: RunningServer, root: Path) -> None:
    with PartnerClient(server.url) as client:
        client.load_version("partner", str(root / "v2.pt"), activate=False)
        assert client.metadata("partner")["versions"] == ["v1", "v2"]
        assert client.guess("partner", ITEMS, version="v2")[0].model_version == "v2"
        assert client.guess("partner", ITEMS)[0].model_version == "v1"
        with pytest.raises(PartnerRequestError, match="is active"):
            client.unload("partner", "v1")
        client.unload("partner", "v2")
        assert client.metadata("partner")["versions"] == ["v1"]


def test_repository_endpoints_need_the_admin_token_when_one_is_set(root: Path) -> None:
    settings = ServerSettings(checkpoint=root / "v1.pt", image_root=root / "images", admin_token="s3cret")
    with run_server(settings) as running:
        with PartnerClient(running.url) as anonymous, pytest.raises(PartnerRequestError) as refused:
            anonymous.load_version("partner", str(root / "v2.pt"))
        assert refused.value.status == 401
        with PartnerClient(running.url, admin_token="s3cret") as admin:
            assert admin.load_version("partner", str(root / "v2.pt"))["active_version"] == "v2"
