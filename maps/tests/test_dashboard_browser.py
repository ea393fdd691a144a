"""A researcher opens the dashboard in Chromium: charts, map overlays, reliability, and an export run to the end.

Drives Debian's Chromium through Playwright (never `playwright install`). The data is the demo
image set played by simulated participants whose bubbles gather around one part of each object,
as people's do, spread over a week and a half so the daily charts have something to show.
"""

from __future__ import annotations

import io
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image as PILImage

from games.models import Experiment, Image, Round
from games.tests.factories import ParticipantFactory, UserFactory
from maps.models import Export
from maps.services import compute_reliability, rebuild_maps
from maps.tests.browser import CHROMIUM, PASSWORD
from maps.tests.factories import scored_round

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


def bubbles_on(image: Image, rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """Bubble centres on the object, most of them near one part of it that every participant favours."""
    with image.mask.open("rb") as handle:
        ys, xs = np.nonzero(np.asarray(PILImage.open(io.BytesIO(handle.read()))) > 127)
    key = np.random.default_rng(image.pk).integers(len(xs))  # the image's telling part, shared by all
    weights = np.exp(-((xs - xs[key]) ** 2 + (ys - ys[key]) ** 2) / (2 * 30.0**2))
    picks = rng.choice(len(xs), size=count, p=weights / weights.sum())
    return [(int(xs[i]), int(ys[i])) for i in picks]


@pytest.fixture
def experiment(transactional_db: None) -> Experiment:
    """The demo set (one image per class) played by 3 to 9 participants per image over eleven days."""
    call_command("seed_demo", "--per-class", "1", "--no-progress", stdout=io.StringIO())
    experiment = Experiment.objects.get(slug="demo")
    experiment.target_maps_per_image = 8
    experiment.save()
    rng = np.random.default_rng(7)
    people = [ParticipantFactory() for _ in range(9)]
    start = timezone.now() - timedelta(days=10)
    for number, image in enumerate(experiment.image_set.images.order_by("pk")):
        for person in people[: 3 + (number * 2) % 7]:
            when = start + timedelta(days=int(rng.integers(11)), minutes=int(rng.integers(600)))
            round_ = scored_round(experiment=experiment, image=image, clicks=bubbles_on(image, rng, 24),
                                  participant=person)  # fmt: skip
            # started_at is auto_now_add: move the round's times back together, as if played then.
            Round.objects.filter(pk=round_.pk).update(started_at=when - timedelta(seconds=10), submitted_at=when,
                                                      scored_at=when)  # fmt: skip
    rebuild_maps(experiment_id=experiment.pk)
    compute_reliability(experiment_id=experiment.pk, iterations=10)
    return experiment


@pytest.mark.usefixtures("eager_tasks")
def test_a_researcher_sees_progress_maps_and_reliability_and_runs_an_export(
    live_server: object, experiment: Experiment, page: object, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    researcher = UserFactory(username="lab-researcher")
    researcher.set_password(PASSWORD)
    researcher.save()
    experiment.researchers.add(researcher)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: errors.append(response.url) if response.status >= 400 else None)

    page.goto(f"{live_server.url}/dashboard/")
    page.fill("#id_username", researcher.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click(f"text={experiment.title}")
    expect(page.locator("h1")).to_contain_text(experiment.title)

    for chart in ("#participants-per-image", "#rounds-per-day", "#participants-per-day", "#reliability-overall"):
        assert page.locator(f"{chart} rect.bar").count() > 0, chart
    overlays = page.locator("img.overlay")
    assert overlays.count() >= 3  # images with at least 5 participants
    for index in range(overlays.count()):
        overlays.nth(index).scroll_into_view_if_needed()
        expect(overlays.nth(index)).to_have_js_property("complete", True)
        assert overlays.nth(index).evaluate("img => img.naturalWidth") == 256

    page.click("#export-start")
    expect(page.locator("#export-status")).to_contain_text("succeeded", timeout=60_000)
    expect(page.locator("#export-list tr").first.locator("a")).to_have_count(8)  # 6 formats + index + manifest
    assert Export.objects.get().status == Export.Status.SUCCEEDED
    assert errors == []

    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=shot, full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOTS / "dashboard.png")
