"""`manage.py export_dataset`: filters from the command line, increments, a summary of the manifest."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from maps.models import Export
from maps.tests.export_data import Played, add_round, play_experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def played() -> Played:
    return play_experiment()


def export_dataset(*args: str) -> str:
    out = io.StringIO()
    call_command("export_dataset", *args, "--no-progress", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_it_writes_under_out_and_prints_the_manifest_summary(played: Played, tmp_path: Path) -> None:
    slug = played.experiment.slug
    output = export_dataset("--experiment", slug, "--formats", "clicks_csv", "maps_hdf5", "--out", str(tmp_path))
    export = Export.objects.get()
    assert export.status == Export.Status.SUCCEEDED and export.created_by == played.experiment.owner
    directory = tmp_path / slug / Path(export.directory).name
    assert Path(export.directory) == directory and (directory / "maps.h5").is_file()
    manifest = json.loads((directory / "manifest.json").read_text())
    assert f"export {export.pk}: {manifest['dataset_version']}" in output
    assert "counts: rounds 10, participants 5, images 2, clicks 45, maps 2" in output and "maps.h5" in output


def test_it_filters_and_exports_increments(played: Played) -> None:
    slug = played.experiment.slug
    assert "rounds 14," in export_dataset("--experiment", slug, "--formats", "clicks_parquet", "--quality", "all")
    assert "rounds 5," in export_dataset("--experiment", slug, "--formats", "clicks_csv", "--from", "2024-03-02")
    assert "rounds 5," in export_dataset("--experiment", slug, "--formats", "clicks_csv", "--to", "2024-03-01")
    add_round(played.sessions[3], played.images[0], timezone.now(), version=played.version)
    assert "rounds 1," in export_dataset("--experiment", slug, "--formats", "clicks_csv", "--since-last")
    assert "rounds 0," in export_dataset("--experiment", slug, "--formats", "points_coco", "--since-last")


def test_it_explains_what_is_wrong(played: Played) -> None:
    with pytest.raises(CommandError, match="no experiment"):
        export_dataset("--experiment", "nope")
    with pytest.raises(CommandError, match="must come before"):
        export_dataset("--experiment", played.experiment.slug, "--from", "2024-03-02", "--to", "2024-03-01")
    with pytest.raises(CommandError, match="must be a date"):
        export_dataset("--experiment", played.experiment.slug, "--from", "March")
