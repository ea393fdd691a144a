"""gunicorn's settings live in one file that every production way of serving the site reads."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "clickme_site" / "gunicorn_conf.py"


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    for name in ("WEB_WORKERS", "WEB_THREADS", "WEB_KEEPALIVE_S"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_the_defaults_are_gthread_a_worker_per_core_and_a_keep_alive_longer_than_a_players_pause(monkeypatch) -> None:
    conf = settings(monkeypatch)
    assert conf["worker_class"] == "gthread" and conf["threads"] == 16
    assert conf["workers"] >= 1 and conf["keepalive"] >= 60  # a player pauses 2-5 s between rounds


def test_the_environment_sizes_it(monkeypatch) -> None:
    conf = settings(monkeypatch, WEB_WORKERS="3", WEB_THREADS="8", WEB_KEEPALIVE_S="30")
    assert (conf["workers"], conf["threads"], conf["keepalive"]) == (3, 8, 30)


@pytest.mark.parametrize(("name", "value"), [("WEB_WORKERS", "two"), ("WEB_THREADS", "0"), ("WEB_KEEPALIVE_S", "-1")])
def test_a_bad_value_stops_the_start_naming_the_variable(monkeypatch, name: str, value: str) -> None:
    with pytest.raises(SystemExit, match=name):
        settings(monkeypatch, **{name: value})


@pytest.mark.parametrize("path", ["Dockerfile", "docker-compose.yml", "Procfile.prod", "bench/stack.py"])
def test_every_production_way_of_serving_reads_it(path: str) -> None:
    assert "clickme_site/gunicorn_conf.py" in (ROOT / path).read_text()
