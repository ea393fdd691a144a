"""The partner clients: one per process and configuration, shared by guesses and threads, left open."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from games.partner import live_client, scoring_client
from model_server.client import PartnerClient


def live() -> PartnerClient:
    with live_client() as client:
        return client


def test_guesses_share_one_open_client_until_the_settings_change(settings) -> None:
    settings.MODEL_SERVER_URL = "http://127.0.0.1:9"
    first = live()
    assert live() is first
    assert not first._http.is_closed  # leaving the block must not close the shared client
    settings.MODEL_SERVER_TIMEOUT_MS = 2500
    assert live() is not first
    settings.MODEL_SERVER_URL = "http://127.0.0.1:10"
    with scoring_client() as scoring:
        assert scoring is not live()
        assert str(scoring._http.base_url) == "http://127.0.0.1:10"


def test_threads_asking_at_once_get_the_same_client(settings) -> None:
    settings.MODEL_SERVER_URL = "http://127.0.0.1:11"
    with ThreadPoolExecutor(8) as pool:
        clients = set(pool.map(lambda _: id(live()), range(64)))
    assert len(clients) == 1
