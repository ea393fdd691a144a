"""Import of historical ClickMe data in the lab's CSV format, into the same rounds and maps as the game.

The CSV has a header with at least `image_path`, `clicks` and `user_id`; `clicks` is written
as pairs `[(x, y), (x, y)]` (or in braces, with or without spaces) or as JSON
`{"x":[...],"y":[...]}`. Coordinates are truncated to integers the way the lab's pipeline did
(`int(x)`). The whole file is checked before anything is written: any bad row fails the import
with one line per problem, and nothing is stored.

Coordinates are pixels of the 256×256 crop by default. With `native=True` they are pixels of the
image's original (as the lab recorded clicks on full-size ImageNet photos) and are mapped onto
the stored crop by the same resize-and-crop the image had (`native_to_crop`); bubbles that the
centre crop cuts away are dropped and reported in the summary, line by line, never silently
(docs/maps-and-reliability.md).

What an imported trial becomes, so that it is told apart from play yet feeds the same maps:
- its participant is "lab-<user_id>" (source anonymous, no consent recorded: the lab holds it);
- one play session per participant and experiment, with user agent IMPORT_AGENT;
- a round scored by the partner version LAB_VERSION ("lab-import"), outcome correct (the lab's
  trials are the ones that went into its maps), 0 points (no leaderboard credit), no recognition
  point, submitted when imported, in file order (so the first row per user and image is the
  "first submission" of the selection rule);
- its bubbles with seq in file order and t_ms = seq × the experiment's bubble interval (the lab's
  format has no timestamps).
Rounds get a client id derived from the row, so importing the same file twice adds nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TextIO

from django.db import transaction
from django.db.models import F

from games.models import IMAGE_SIZE, Click, Experiment, Image, ImageSet, Participant, PlaySession, Round
from games.partner import record_version
from games.services.scoring import refresh_image_counts
from maps.export_writers import lab_clicks_text
from maps.services import rebuild_maps

COLUMNS = ("image_path", "clicks", "user_id")
LAB_VERSION = "lab-import"
IMPORT_AGENT = "clickme-lab-import"
USERNAME_PREFIX = "lab-"
_NAMESPACE = uuid.UUID("6f1c1d9e-52b8-4d8e-9a53-8f2b3c0c1a7e")  # fixed: client ids must not change between runs
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")
_PAIRS = re.compile(rf"\s*(?:{_PAIR.pattern}\s*(?:,\s*{_PAIR.pattern}\s*)*,?\s*)?")


class LabImportError(ValueError):
    """The file cannot be imported; `errors` lists every problem found, one per line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the lab file:\n" + "\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class LabRow:
    """One trial of the file: its CSV line, the image it names, its user, and its bubbles."""

    line: int
    image_path: str
    user_id: str
    clicks: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    rows: int
    rounds_created: int
    rounds_existing: int
    participants_created: int
    clicks_created: int
    maps_rebuilt: int
    clicks_outside: int = 0
    outside: tuple[str, ...] = ()  # one line per row that lost bubbles outside the crop


def native_to_crop(x: int, y: int, width: int, height: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """The crop pixel that original pixel (x, y) of a width × height image lands on.

    The crop is model_server.canvas.to_canvas's: the image resized so its short side is `size`
    (each side rounded, never below `size`), then the central size × size square cut out at
    ((W' − size) // 2, (H' − size) // 2). A resize maps pixel centres, so x goes to
    (x + 0.5) · W'/width − 0.5; the crop pixel is that coordinate rounded, minus the offset.
    The result may lie outside [0, size) where the crop cut the point away.
    """
    scale = size / min(width, height)
    resized_width, resized_height = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (resized_width - size) // 2, (resized_height - size) // 2
    return (
        math.floor((x + 0.5) * resized_width / width) - left,
        math.floor((y + 0.5) * resized_height / height) - top,
    )


def _coordinate(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return int(number)  # the lab's int(): truncation toward zero


def parse_clicks(text: str) -> list[tuple[int, int]]:
    """Bubble centres from `{(x,y),(x,y)}` or `{"x":[...],"y":[...]}`; ValueError says what is wrong."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}") and '"' in text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"clicks look like JSON but do not parse ({exc.msg})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("x"), list) or not isinstance(data.get("y"), list):
            raise ValueError('JSON clicks need lists "x" and "y"')
        if len(data["x"]) != len(data["y"]):
            raise ValueError(f'"x" has {len(data["x"])} values but "y" has {len(data["y"])}')
        return [(_coordinate(x), _coordinate(y)) for x, y in zip(data["x"], data["y"], strict=True)]
    if len(text) < 2 or (text[0], text[-1]) not in {("{", "}"), ("[", "]")}:
        raise ValueError('clicks must be written {(x,y),...} or {"x":[...],"y":[...]}')
    if not _PAIRS.fullmatch(text[1:-1]):
        raise ValueError("clicks must be a comma-separated list of (x,y) pairs of numbers")
    return [(_coordinate(x), _coordinate(y)) for x, y in _PAIR.findall(text[1:-1])]


def read_lab_csv(stream: TextIO, *, drop_outside: bool = False) -> list[LabRow]:
    """Every row of a lab CSV in crop coordinates, checked; LabImportError lists all bad rows.

    Bubbles outside the 256 × 256 crop are an error, or are dropped with `drop_outside`
    (the lab's own filter removed negative coordinates).
    """
    rows, errors = _read(stream)
    rows, more, _ = _fit(rows, None, native=False, drop_outside=drop_outside)
    if errors or more:
        raise LabImportError(_in_file_order(errors + more))
    return rows


def _in_file_order(errors: list[str]) -> list[str]:
    return sorted(errors, key=lambda error: int(error.split(":")[0].split()[1]))


def _read(stream: TextIO) -> tuple[list[LabRow], list[str]]:
    """Every row with its bubbles as written (not yet checked against any image), and the rows that do not parse."""
    reader = csv.DictReader(stream)
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise LabImportError([f"line 1: the header lacks the column(s) {', '.join(missing)}"])
    rows, errors = [], []
    for record in reader:
        line = reader.line_num
        image_path, user_id = (record.get("image_path") or "").strip(), (record.get("user_id") or "").strip()
        try:
            if not image_path or not user_id:
                raise ValueError("image_path and user_id must not be empty")
            if len(USERNAME_PREFIX + user_id) > Participant._meta.get_field("username").max_length:
                raise ValueError(f"user_id {user_id[:20]!r}… is too long")
            clicks = parse_clicks(record.get("clicks") or "")
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        rows.append(LabRow(line, image_path, user_id, tuple(clicks)))
    return rows, errors


def _fit(
    rows: list[LabRow], images: dict[int, Image] | None, *, native: bool, drop_outside: bool
) -> tuple[list[LabRow], list[str], list[tuple[str, int]]]:
    """The rows with bubbles in crop pixels; the errors; and for each row that lost bubbles, a line and how many.

    In crop coordinates a bubble outside 256 × 256 is an error unless `drop_outside`. In native
    coordinates a bubble outside the original is an error unless `drop_outside`, and one the
    centre crop cut away is dropped; every dropped bubble is reported.
    """
    fitted, errors, dropped = [], [], []
    for row in rows:
        clicks, cut = list(row.clicks), 0
        if native:
            image = images[row.line]
            width, height = image.original_width, image.original_height
            outside = [(x, y) for x, y in clicks if not (0 <= x < width and 0 <= y < height)]
            where = f"the {width}×{height} original"
        else:
            outside = [(x, y) for x, y in clicks if not (0 <= x < IMAGE_SIZE and 0 <= y < IMAGE_SIZE)]
            where = f"the {IMAGE_SIZE}×{IMAGE_SIZE} image"
        if outside and not drop_outside:
            errors.append(f"line {row.line}: {len(outside)} bubble(s) outside {where}, e.g. {outside[0]}")
            continue
        off = set(outside)
        clicks = [point for point in clicks if point not in off]
        if native:
            mapped = [native_to_crop(x, y, width, height) for x, y in clicks]
            clicks = [(x, y) for x, y in mapped if 0 <= x < IMAGE_SIZE and 0 <= y < IMAGE_SIZE]
            cut = len(mapped) - len(clicks)
        if outside or cut:
            parts = [f"{len(outside)} outside {where}"] if outside else []
            parts += [f"{cut} outside the {IMAGE_SIZE}×{IMAGE_SIZE} centre crop"] if cut else []
            message = f"line {row.line}: dropped {' and '.join(parts)} (of {len(row.clicks)} bubbles)"
            dropped.append((message, len(outside) + cut))
        fitted.append(LabRow(row.line, row.image_path, row.user_id, tuple(clicks)))
    return fitted, errors, dropped


def _image_lookup(image_set: ImageSet) -> dict[str, list[Image]]:
    """Images by name and by file stem (a name without its extension)."""
    lookup: dict[str, list[Image]] = defaultdict(list)
    for image in image_set.images.all():
        keys = {image.name, PurePosixPath(image.name).name, PurePosixPath(image.name).stem}
        for key in keys:
            lookup[key].append(image)
    return lookup


def _resolve(rows: list[LabRow], image_set: ImageSet) -> tuple[dict[int, Image], list[str]]:
    """The image of every row (by line), by its path's file name, then its stem; and the rows without one."""
    lookup, found, errors = _image_lookup(image_set), {}, []
    for row in rows:
        path = PurePosixPath(row.image_path.replace("\\", "/"))
        candidates = lookup.get(path.name) or lookup.get(path.stem) or []
        if len({image.pk for image in candidates}) == 1:
            found[row.line] = candidates[0]
        elif candidates:
            errors.append(f"line {row.line}: {row.image_path!r} matches several images of {image_set}")
        else:
            errors.append(f"line {row.line}: no image of {image_set} is named like {row.image_path!r}")
    return found, errors


def _client_ids(rows: list[LabRow], images: dict[int, Image], experiment: Experiment) -> dict[int, uuid.UUID]:
    """A client round id per row from its content and its repeat number, stable across imports."""
    seen: Counter[str] = Counter()
    ids = {}
    for row in rows:
        key = f"{experiment.slug}\n{images[row.line].pk}\n{row.user_id}\n{row.clicks}"
        ids[row.line] = uuid.uuid5(_NAMESPACE, f"{key}\n{seen[key]}")
        seen[key] += 1
    return ids


def _participants(usernames: set[str]) -> tuple[dict[str, Participant], int]:
    """The participants of these usernames, created where missing; and how many were created."""
    names = sorted(usernames)
    found: dict[str, Participant] = {}
    for start in range(0, len(names), 5000):  # under SQLite's limit on query parameters
        found.update(
            Participant.objects.filter(username__in=names[start : start + 5000]).in_bulk(field_name="username")
        )
    missing = [Participant(username=name, source=Participant.Source.ANONYMOUS) for name in names if name not in found]
    for participant in Participant.objects.bulk_create(missing, batch_size=1000):
        found[participant.username] = participant
    return found, len(missing)


@dataclass
class _ImportSession:
    """An import session as rows are placed in it: its row (None until created), images and rounds so far."""

    session: PlaySession | None
    images: set[int]
    rounds: int


def _place_rows(rows: list[LabRow], owners: list[Participant], images: dict[int, Image], experiment: Experiment):
    """Each row's import session and position: its participant's first import session without its image.

    An image plays once per session, so a participant's second submission of an image (the lab's
    data has them) goes into their second import session, made when needed. Returns the
    (session, position) of each row, after creating the sessions that were missing.
    """
    of_participant: dict[int, list[_ImportSession]] = defaultdict(list)
    existing = PlaySession.objects.filter(experiment=experiment, user_agent=IMPORT_AGENT).order_by("pk")
    contents = defaultdict(set)
    for session_id, image_id in Round.objects.filter(session__in=existing).values_list("session_id", "image_id"):
        contents[session_id].add(image_id)
    for session in existing:
        seen = contents[session.pk]
        of_participant[session.participant_id].append(_ImportSession(session, set(seen), len(seen)))
    placed = []
    for row, owner in zip(rows, owners, strict=True):
        image_id = images[row.line].pk
        sessions = of_participant[owner.pk]
        target = next((s for s in sessions if image_id not in s.images), None)
        if target is None:
            target = _ImportSession(None, set(), 0)
            sessions.append(target)
        target.images.add(image_id)
        placed.append((target, target.rounds, owner))
        target.rounds += 1
    new = [s for sessions in of_participant.values() for s in sessions if s.session is None]
    owner_of = {id(target): owner for target, _, owner in placed}
    made = PlaySession.objects.bulk_create(
        [PlaySession(participant=owner_of[id(s)], experiment=experiment, user_agent=IMPORT_AGENT) for s in new],
        batch_size=1000,
    )
    for target, session in zip(new, made, strict=True):
        target.session = session
    return [(target.session, position) for target, position, _ in placed]


def import_lab_rows(
    *,
    rows: list[LabRow],
    experiment: Experiment,
    image_set: ImageSet | None = None,
    dropped: list[tuple[str, int]] | None = None,
) -> ImportSummary:
    """Store checked rows (bubbles in crop pixels) as imported rounds and bubbles in one transaction, then
    rebuild their maps; `dropped` (what `_fit` reported) goes into the summary."""
    images, errors = _resolve(rows, image_set or experiment.image_set)
    if errors:
        raise LabImportError(errors)
    client_ids = _client_ids(rows, images, experiment)
    with transaction.atomic():
        version = record_version(partner=experiment.partner, version=LAB_VERSION)
        participants, created_participants = _participants({USERNAME_PREFIX + row.user_id for row in rows})
        imported = Round.objects.filter(experiment=experiment, session__user_agent=IMPORT_AGENT)
        done = set(imported.values_list("client_round_id", flat=True))
        fresh = [row for row in rows if client_ids[row.line] not in done]
        settings = experiment.game_settings()
        owners = [participants[USERNAME_PREFIX + row.user_id] for row in fresh]
        places = _place_rows(fresh, owners, images, experiment)
        created = Round.objects.bulk_create(
            [
                Round(session=session, participant=owner, experiment=experiment, image=images[row.line],
                      client_round_id=client_ids[row.line], position=position, settings=settings,
                      bubble_count=len(row.clicks))
                for row, owner, (session, position) in zip(fresh, owners, places, strict=True)
            ],
            batch_size=1000,
        )  # fmt: skip
        # Scored in a second step: started_at is only set on insert, and submission must not precede it.
        # Imported rounds are never left playing, so the ones playing are exactly those just created.
        imported.filter(status=Round.Status.PLAYING).update(
            status=Round.Status.SCORED, outcome=Round.Outcome.CORRECT, client_outcome=Round.Outcome.CORRECT,
            points=0, partner_version=version, submitted_at=F("started_at"), scored_at=F("started_at"),
        )  # fmt: skip
        interval = experiment.bubble_interval_ms
        clicks = Click.objects.bulk_create(
            (
                Click(round=round_, seq=seq, x=x, y=y, t_ms=seq * interval)
                for round_, row in zip(created, fresh, strict=True)
                for seq, (x, y) in enumerate(row.clicks)
            ),
            batch_size=5000,
        )
    touched = sorted({round_.image_id for round_ in created})
    for image_id in touched:
        refresh_image_counts(image_id=image_id)
    maps = rebuild_maps(experiment_id=experiment.pk, image_ids=touched) if touched else 0
    dropped = dropped or []
    lost, lines = sum(count for _, count in dropped), tuple(message for message, _ in dropped)
    return ImportSummary(
        len(rows), len(created), len(rows) - len(fresh), created_participants, len(clicks), maps, lost, lines
    )


def import_lab_csv(
    *,
    stream: TextIO,
    experiment: Experiment,
    image_set: ImageSet | None = None,
    drop_outside: bool = False,
    native: bool = False,
) -> ImportSummary:
    """Check a whole lab CSV, then import it (nothing is stored if any row is bad).

    `native`: coordinates are pixels of each image's original, mapped onto its stored crop.
    """
    rows, errors = _read(stream)
    images, unknown = _resolve(rows, image_set or experiment.image_set)
    known = [row for row in rows if row.line in images]
    fitted, misplaced, dropped = _fit(known, images, native=native, drop_outside=drop_outside)
    if errors or unknown or misplaced:  # every problem at once, in file order
        raise LabImportError(_in_file_order(errors + unknown + misplaced))
    return import_lab_rows(rows=fitted, experiment=experiment, image_set=image_set, dropped=dropped)


def lab_csv_text(rows: list[tuple[str, list[tuple[int, int]], str]], *, as_json: bool = False) -> str:
    """Write trials in the lab's format, e.g. to hand data back or in tests: pairs as `[(x, y), (x, y)]`, the
    notation serre-lab's current parser reads (export_writers.lab_clicks_text), or JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for image_path, clicks, user_id in rows:
        if as_json:
            text = json.dumps({"x": [x for x, _ in clicks], "y": [y for _, y in clicks]})
        else:
            text = lab_clicks_text(clicks)
        writer.writerow([image_path, text, user_id])
    return buffer.getvalue()
