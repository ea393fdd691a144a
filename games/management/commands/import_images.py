"""`manage.py import_images PATH`: load an image set from class folders or a CSV manifest."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from games.imaging import IMAGE_SUFFIXES, MASK_SUFFIX
from games.models import ImageSet
from games.services.imports import ImportOutcome, import_image


@dataclass(frozen=True)
class Entry:
    """One file to import, with its class and optional mask."""

    path: Path
    category: str
    mask: Path | None
    is_catch_trial: bool = False


class Command(BaseCommand):
    help = (
        "Import images from a folder of class sub-folders (PATH/<class>/<file>) or a CSV manifest "
        "with columns path,class[,mask][,catch_trial]. Each image is stored as its original and a "
        "256×256 centre crop; bad files are rejected with a reason and never stop the batch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="A folder of class sub-folders, or a .csv manifest.")
        parser.add_argument("--image-set", help="Image set to import into (default: the folder's name).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: object, path: Path, image_set: str | None, no_progress: bool, **options: object) -> None:
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        entries = read_manifest(path) if path.is_file() else scan_folder(path)
        if not entries:
            raise CommandError(f"no images found in {path}")
        set_name = image_set or (path.stem if path.is_file() else path.name)
        target, _ = ImageSet.objects.get_or_create(name=set_name)

        outcomes: list[ImportOutcome] = []
        for entry in tqdm(entries, desc=f"importing into {target}", unit="image", disable=no_progress):
            outcomes.append(import_entry(entry, target))
        self.report(outcomes)

    def report(self, outcomes: list[ImportOutcome]) -> None:
        """Print the totals, then every rejected file with its reason."""
        totals = Counter(outcome.status for outcome in outcomes)
        self.stdout.write(
            f"imported {totals['imported']}, already present {totals['duplicate']}, rejected {totals['rejected']}"
        )
        for outcome in outcomes:
            if outcome.status == "rejected":
                self.stdout.write(self.style.WARNING(f"  rejected {outcome.name}: {outcome.reason}"))


def import_entry(entry: Entry, image_set: ImageSet) -> ImportOutcome:
    """Read one entry's files from disk and hand them to the import service."""
    name = entry.path.stem
    try:
        data = entry.path.read_bytes()
        mask_data = entry.mask.read_bytes() if entry.mask else None
    except OSError as exc:
        return ImportOutcome(name, "rejected", f"cannot read file ({exc.strerror or exc})")
    return import_image(
        image_set=image_set,
        category_name=entry.category,
        name=name,
        data=data,
        mask_data=mask_data,
        is_catch_trial=entry.is_catch_trial,
    )


def scan_folder(root: Path) -> list[Entry]:
    """Every image file in `root/<class>/`, in a stable order, with its mask if present."""
    entries = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(p for p in class_dir.iterdir() if p.is_file()):
            if file.name.endswith(MASK_SUFFIX) or file.name.startswith("."):
                continue
            if file.suffix.lower() not in IMAGE_SUFFIXES and file.suffix:
                continue
            mask = file.with_name(file.stem + MASK_SUFFIX)
            entries.append(Entry(file, class_dir.name, mask if mask.is_file() else None))
    return entries


def read_manifest(manifest: Path) -> list[Entry]:
    """Entries of a CSV manifest; relative paths are taken from the manifest's folder."""
    try:
        with manifest.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"cannot read manifest {manifest}: {exc}") from None
    if not rows or not {"path", "class"} <= set(rows[0]):
        raise CommandError(f"{manifest} must be a CSV with a header containing 'path' and 'class'")
    base = manifest.parent
    entries = []
    for row in rows:
        path = base / (row["path"] or "").strip()
        mask = (row.get("mask") or "").strip()
        catch = (row.get("catch_trial") or "").strip().lower() in {"1", "true", "yes"}
        entries.append(Entry(path, row["class"] or "", base / mask if mask else None, catch))
    return entries
