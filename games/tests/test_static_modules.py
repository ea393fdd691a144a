"""With hashed static files, every ES module and every import inside one loads under its hashed name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from games.static_modules import import_map

pytestmark = pytest.mark.django_db

IMPORT = re.compile(r'from\s+"(\.{1,2}/[^"]+\.js)"')
STATIC = Path(__file__).resolve().parents[2] / "static"


@pytest.fixture
def hashed_static(settings, tmp_path: Path) -> Iterator[Path]:
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    import_map.cache_clear()
    yield tmp_path
    import_map.cache_clear()


def test_every_relative_import_maps_to_a_hashed_file_that_was_collected(hashed_static: Path) -> None:
    imports = import_map()["imports"]
    assert re.fullmatch(r"/static/games/api\.[0-9a-f]{12}\.js", imports["/static/games/api.js"])
    for hashed in imports.values():
        assert (hashed_static / hashed.removeprefix("/static/")).is_file(), hashed
    for module in STATIC.glob("*/*.js"):
        for target in IMPORT.findall(module.read_text()):
            # The browser resolves the import against the module's plain URL, then applies the map.
            resolved = (Path("/static") / module.parent.name / target).resolve()
            assert str(resolved) in imports, (module.name, target)


def test_pages_carry_the_import_map_before_any_module(hashed_static: Path, client) -> None:
    page = client.get("/").content.decode()
    assert '<script type="importmap">' in page and '"/static/games/main.js": "/static/games/main.' in page


def test_no_import_map_when_static_urls_are_not_hashed(client) -> None:
    import_map.cache_clear()
    assert "importmap" not in client.get("/").content.decode()
    import_map.cache_clear()
