"""A moderator in Chromium: open a flagged session, replay a round, shadow-ban its player with a reason.

Drives Debian's Chromium through Playwright (never `playwright install`); no partner is needed,
the rounds are made already scored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from games.imaging import png_bytes
from games.models import ModerationAction, Participant
from games.tests.factories import ExperimentFactory, ImageFactory, PlaySessionFactory
from games.tests.moderation_data import flag, scored_round, staff_in

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


def picture() -> ContentFile:
    """A 256×256 picture with some structure, so revealed bubbles are visible in the screenshot."""
    y, x = np.mgrid[0:256, 0:256]
    rgb = np.stack([x, y, 255 - (x + y) // 2], axis=-1).astype(np.uint8)
    rgb[(x - 128) ** 2 + (y - 110) ** 2 < 50**2] = (230, 60, 40)
    return ContentFile(png_bytes(PILImage.fromarray(rgb)), name="crop.png")


@pytest.fixture
def flagged_session(transactional_db: None) -> object:
    experiment = ExperimentFactory()
    images = [ImageFactory(image_set=experiment.image_set, crop=picture()) for _ in range(2)]
    session = PlaySessionFactory(experiment=experiment)
    rounds = [scored_round(session=session, image=image, clicks=60) for image in images]
    flag(session, rounds[0], "periodic_timing")
    return session


def test_a_moderator_replays_a_flagged_round_and_shadow_bans_the_player(live_server, flagged_session, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    staff_in("moderators", "mona")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/games/playsession/")
        page.fill("#id_username", "mona")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")

        first_row = page.locator("#result_list tbody tr").first  # flagged first
        expect(first_row).to_contain_text("periodic_timing")
        expect(first_row.locator("svg.timing-histogram")).to_be_visible()
        first_row.locator("th a").click()

        canvas = page.locator("#replay-canvas")
        page.select_option("#replay-speed", "4")
        page.locator("[data-replay='0']").click()
        expect(canvas).to_have_attribute("data-state", "done")
        expect(canvas).to_have_attribute("data-shown", "60")
        expect(page.locator("#replay-caption")).to_contain_text("60 / 60 bubbles")

        page.get_by_role("link", name="shadow-ban participant").click()
        page.get_by_role("button", name="Shadow-ban participant").click()  # no reason yet: the form refuses
        expect(page.locator("textarea[name=reason]:invalid")).to_have_count(1)
        page.fill("textarea[name=reason]", "metronomic bubbles, 50 ms apart in every round")
        page.get_by_role("button", name="Shadow-ban participant").click()
        expect(page.locator(".messagelist")).to_contain_text("done for 1 of 1")

        page.locator("[data-replay='1']").click()  # the page is back: replay the other round for the record
        expect(canvas).to_have_attribute("data-state", "done")
        canvas.scroll_into_view_if_needed()
        shot = tmp_path / "moderation.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOTS / "moderation.png")
    participant = Participant.objects.get(pk=flagged_session.participant_id)
    assert participant.is_shadow_banned
    entry = ModerationAction.objects.get()
    assert (entry.kind, entry.actor.username, entry.participant_id) == ("shadow_ban", "mona", participant.pk)
    assert entry.reason == "metronomic bubbles, 50 ms apart in every round"
