"""Importing the lab's CSV: robust parsing, nothing partial, and the same maps as the same clicks played."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from games.models import Click, Image, Participant, PlaySession, Round
from games.tests.factories import ExperimentFactory, ImageFactory, ParticipantFactory
from maps.lab_import import (
    IMPORT_AGENT,
    LAB_VERSION,
    LabImportError,
    import_lab_csv,
    lab_csv_text,
    native_to_crop,
    parse_clicks,
    read_lab_csv,
)
from maps.models import ClickMap
from maps.services import build_click_map
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db


def file_bytes(field) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{(1,2),(3,4)}", [(1, 2), (3, 4)]),
        ("[(1, 2), (3, 4)]", [(1, 2), (3, 4)]),  # the notation the lab's current parser reads
        (" { ( 10 , 20 ) , (255,0), } ", [(10, 20), (255, 0)]),
        ("[(5.9,6.2)]", [(5, 6)]),  # the lab's int(): truncation
        ("{}", []),
        ('{"x": [1, 2.0], "y": [3, 4]}', [(1, 3), (2, 4)]),
        ('{"x":[],"y":[]}', []),
    ],
)
def test_parse_clicks_reads_both_notations(text: str, expected: list[tuple[int, int]]) -> None:
    assert parse_clicks(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("(1,2),(3,4)", "must be written"),
        ("{(1,2)(3,4)}", "comma-separated"),
        ("{(1,a)}", "comma-separated"),
        ("{(1,2,3)}", "comma-separated"),
        ('{"x": [1, 2], "y": [3]}', '"x" has 2 values'),
        ('{"x": [1], "z": [3]}', "need lists"),
        ('{"x": [true], "y": [3]}', "not a number"),
        ('{"x": [NaN], "y": [3]}', "not a finite number"),
        ('{"x": [1], "y": [3]', "must be written"),
        ('{"x": [1], "y": [3],}', "do not parse"),
        ("", "must be written"),
    ],
)
def test_parse_clicks_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        parse_clicks(text)


def test_every_bad_row_is_reported_and_nothing_is_stored() -> None:
    experiment = ExperimentFactory()
    ImageFactory(image_set=experiment.image_set, name="dog_0001")
    text = (
        "image_path,clicks,user_id\n"
        'imgs/dog_0001.png,"{(1,2),(3,4)}",u1\n'
        'imgs/dog_0001.png,"{(1,2),(300,4)}",u2\n'
        'imgs/dog_0001.png,"{(1,2)(3,4)}",u3\n'
        'imgs/dog_0001.png,"{(1,2)}",\n'
        'imgs/cat_0009.png,"{(1,2)}",u4\n'
    )
    with pytest.raises(LabImportError) as caught:
        import_lab_csv(stream=io.StringIO(text), experiment=experiment)
    assert [error.split(":")[0] for error in caught.value.errors] == ["line 3", "line 4", "line 5", "line 6"]
    assert "outside the 256×256 image" in caught.value.errors[0] and "no image of" in caught.value.errors[3]
    assert not Round.objects.exists() and not Participant.objects.exists() and not Click.objects.exists()


def test_missing_columns_and_out_of_image_bubbles_can_be_dropped() -> None:
    with pytest.raises(LabImportError, match="lacks the column"):
        read_lab_csv(io.StringIO("image,clicks,user_id\n"))
    rows = read_lab_csv(io.StringIO('image_path,clicks,user_id,extra\na.png,"{(-1,2),(3,4)}",u,x\n'), drop_outside=True)
    assert rows[0].clicks == ((3, 4),)


def test_ambiguous_names_are_refused() -> None:
    experiment = ExperimentFactory()
    ImageFactory(image_set=experiment.image_set, name="dog.png")
    ImageFactory(image_set=experiment.image_set, name="dog.jpg")
    with pytest.raises(LabImportError, match="matches several images"):
        import_lab_csv(stream=io.StringIO(lab_csv_text([("x/dog.jpeg", [(1, 1)], "u")])), experiment=experiment)


def test_lab_import_gives_the_same_maps_as_the_same_clicks_played() -> None:
    """Trials played in one experiment and the same trials imported into a twin give identical maps."""
    played = ExperimentFactory()
    images = [ImageFactory(image_set=played.image_set, name=f"n0144_{i:04d}") for i in range(2)]
    rng = np.random.default_rng(0)
    trials = []  # (image, user, clicks), in submission order
    for user in range(7):
        participant = ParticipantFactory()
        for image in images:
            clicks = [(int(x), int(y)) for x, y in rng.integers(0, 256, (int(rng.integers(1, 40)), 2))]
            trials.append((image, user, clicks))
            scored_round(experiment=played, image=image, participant=participant, clicks=clicks)
        if user == 0:  # played an image twice: only the first trial counts, in the game as in the import
            trials.append((images[0], user, [(9, 9)] * 5))
            scored_round(experiment=played, image=images[0], participant=participant, clicks=[(9, 9)] * 5)
    game_maps = {image.pk: build_click_map(experiment_id=played.pk, image_id=image.pk) for image in images}

    imported = ExperimentFactory(image_set=played.image_set)
    half = len(trials) // 2
    rows = [(f"ILSVRC/train/n0144/{image.name}.JPEG", clicks, f"subject{user}") for image, user, clicks in trials]
    path_text = lab_csv_text(rows[:half]) + lab_csv_text(rows[half:], as_json=True).split("\n", 1)[1]
    summary = import_lab_csv(stream=io.StringIO(path_text), experiment=imported)
    assert (summary.rows, summary.rounds_created, summary.participants_created, summary.maps_rebuilt) == (15, 15, 7, 2)

    for image in images:
        lab_map = ClickMap.objects.get(experiment=imported, image=image)
        game_map = game_maps[image.pk]
        assert (lab_map.participant_count, lab_map.click_count) == (game_map.participant_count, game_map.click_count)
        assert file_bytes(lab_map.counts) == file_bytes(game_map.counts)
        assert file_bytes(lab_map.heatmap) == file_bytes(game_map.heatmap)
    assert Image.objects.get(pk=images[0].pk).valid_rounds == 8 + 8  # 8 played + 8 imported rounds count


def test_imported_rounds_are_marked_and_a_second_import_adds_nothing(tmp_path) -> None:
    experiment = ExperimentFactory()
    ImageFactory(image_set=experiment.image_set, name="cat_0001")
    csv_path = tmp_path / "lab.csv"
    same_trial = ("cat_0001.png", [(1, 2), (3, 4)], "42")
    csv_path.write_text(lab_csv_text([same_trial, same_trial, ("cat_0001", [(5, 6), (7, 8), (9, 9)], "43")]))
    out = io.StringIO()
    call_command("import_lab_clicks", str(csv_path), "--experiment", experiment.slug, stdout=out)
    assert "3 rounds imported (0 already there), 2 new participants, 7 bubbles, 1 maps rebuilt" in out.getvalue()
    call_command("import_lab_clicks", str(csv_path), "--experiment", experiment.slug, stdout=out)
    assert "0 rounds imported (3 already there), 0 new participants" in out.getvalue()

    round_ = Round.objects.filter(participant__username="lab-42").order_by("pk").first()
    assert round_.status == Round.Status.SCORED and round_.outcome == Round.Outcome.CORRECT and round_.points == 0
    assert round_.partner_version.version == LAB_VERSION and round_.session.user_agent == IMPORT_AGENT
    assert list(round_.clicks.order_by("seq").values_list("x", "y", "t_ms")) == [(1, 2, 0), (3, 4, 50)]
    # lab-42 submitted cat_0001 twice: an image plays once per session, so the second is in a second one.
    assert PlaySession.objects.count() == 3 and Participant.objects.get(username="lab-43").source == "anonymous"
    with pytest.raises(CommandError, match="no experiment"):
        call_command("import_lab_clicks", str(csv_path), "--experiment", "nope")


def test_native_resolution_clicks_land_where_the_same_points_land_on_the_crop() -> None:
    """A 500×375 original: points marked on it are found on its crop (to_canvas) where the import puts them."""
    from PIL import Image as PILImage

    from games.imaging import png_bytes, prepare_image

    points = [(250, 187), (100, 40), (420, 300), (70, 370), (432, 0)]
    cut_away = [(20, 200), (480, 100)]  # in the strips left and right that the centre crop removes
    original = np.zeros((375, 500, 3), np.uint8)
    for x, y in points:
        original[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = 255  # a 5×5 mark (clipped at the border)
    prepared = prepare_image(png_bytes(PILImage.fromarray(original)), max_pixels=10**7, max_bytes=10**8)
    crop = np.asarray(prepared.crop.convert("L"), dtype=np.float64)
    assert prepared.original_size == (500, 375) and crop.shape == (256, 256)

    experiment = ExperimentFactory()
    ImageFactory(image_set=experiment.image_set, name="ILSVRC2012_val_00000001.JPEG",
                 original_width=500, original_height=375)  # fmt: skip
    text = lab_csv_text([("val/ILSVRC2012_val_00000001.JPEG", [*points, *cut_away], "u1")])
    summary = import_lab_csv(stream=io.StringIO(text), experiment=experiment, native=True)
    stored = list(Click.objects.order_by("seq").values_list("x", "y"))
    assert len(stored) == len(points)
    for (x, y), (cx, cy) in zip(points, stored, strict=True):
        # Where the mark landed: the brightness-weighted centre of the crop around the imported point.
        top, left = max(cy - 6, 0), max(cx - 6, 0)
        window = crop[top : cy + 7, left : cx + 7]
        rows, cols = np.mgrid[top : top + window.shape[0], left : left + window.shape[1]]
        centre = (float((cols * window).sum() / window.sum()), float((rows * window).sum() / window.sum()))
        if 2 <= x < 498 and 2 <= y < 373:  # whole marks: their centre is the point itself
            assert abs(centre[0] - cx) <= 0.75 and abs(centre[1] - cy) <= 0.75, (x, y, cx, cy, centre)
        else:  # a mark clipped at the image's edge: its centre moves inwards, the point lies at the edge
            assert window.sum() > 0 and (cx in (0, 255) or cy in (0, 255)), (x, y, cx, cy)
    assert summary.clicks_outside == 2 and summary.outside == (
        "line 2: dropped 2 outside the 256×256 centre crop (of 7 bubbles)",
    )
    with pytest.raises(LabImportError, match="outside the 500×375 original"):
        import_lab_csv(stream=io.StringIO(lab_csv_text([("ILSVRC2012_val_00000001", [(500, 10)], "u2")])),
                       experiment=experiment, native=True)  # fmt: skip


def test_native_to_crop_is_the_identity_for_a_256_original_and_centres_a_wide_one() -> None:
    assert all(native_to_crop(x, y, 256, 256) == (x, y) for x, y in [(0, 0), (17, 200), (255, 255)])
    # 500×375 → resized to 341×256, then 42 px cut from the left: the centre stays the centre.
    assert native_to_crop(250, 187, 500, 375) == (128, 128)
    assert native_to_crop(0, 0, 500, 375)[0] < 0 and native_to_crop(499, 374, 500, 375)[0] > 255
